package mapping

import (
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

// benchRBE maps the bench frame through a route that reports by exception,
// 100ms apart on the arrival clock, the first point moving by step each
// frame (the others never change); Due runs every 10 frames, as a timer
// would. It reports messages per frame.
func benchRBE(b *testing.B, r Route, step float64) {
	e, err := New("gw-01", append(otherRoutes[:3:3], r))
	if err != nil {
		b.Fatal(err)
	}
	f := benchFrame()
	now := f.Time
	dst := e.MapAt(now, &f, nil)
	b.ReportAllocs()
	msgs, frames := 0, 0
	for b.Loop() {
		now = now.Add(100 * time.Millisecond)
		f.Points[0].Value.Num += step
		dst = e.MapAt(now, &f, dst[:0])
		msgs += len(dst)
		frames++
		if frames%10 == 0 {
			dst, _ = e.Due(now, dst[:0])
			msgs += len(dst)
		}
	}
	b.ReportMetric(float64(msgs)/float64(frames), "msgs/frame")
}

// BenchmarkMapRBEValueSkip: per-point values, nothing passes the deadband
// (the state lookup alone).
func BenchmarkMapRBEValueSkip(b *testing.B) {
	benchRBE(b, Route{Match: "modbus/boiler/*", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "value", QoS: 1, Uplink: true,
		Deadband: 1}, 0)
}

// BenchmarkMapRBEValue: per-point values with deadband, min_interval and
// max_interval; the first point moves past the deadband every frame and is
// held by min_interval.
func BenchmarkMapRBEValue(b *testing.B) {
	benchRBE(b, Route{Match: "modbus/boiler/*", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "value", QoS: 1, Uplink: true,
		Deadband: 0.5, MinInterval: time.Second, MaxInterval: time.Minute}, 1)
}

// BenchmarkMapRBEJSON: one JSON message per frame with deadband; the first
// point passes every frame, the others never.
func BenchmarkMapRBEJSON(b *testing.B) {
	benchRBE(b, Route{Match: "modbus/**", Topic: "{gateway}/{adapter}/{device}", Payload: "json", QoS: 1, Uplink: true,
		Deadband: 0.5}, 1)
}

// BenchmarkMapRBEOtherRoute: the engine has a route that reports by
// exception, but the frame does not take it.
func BenchmarkMapRBEOtherRoute(b *testing.B) {
	benchMap(b, append(otherRoutes[:3:3],
		Route{Match: "coap/**", Topic: "{gateway}/{adapter}/{device}", Payload: "json", QoS: 1, Deadband: 1}))
}

// BenchmarkRBEDue: Due over 10,000 tracked points of which 100 are due.
func BenchmarkRBEDue(b *testing.B) {
	e, err := New("gw-01", []Route{{Match: "**", Topic: "{device}/{point}", Payload: "value", QoS: 1, MaxInterval: 100 * time.Second}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f := bridge.Frame{Adapter: "a", Time: now, Points: make([]bridge.Point, 100)}
	for d := range 100 {
		f.Device = "d" + string(rune('A'+d/26)) + string(rune('a'+d%26))
		for p := range f.Points {
			f.Points[p] = bridge.Point{Name: "p" + string(rune('A'+p/26)) + string(rune('a'+p%26)), Value: bridge.Int(int64(p))}
		}
		e.MapAt(now.Add(time.Duration(d)*time.Second), &f, nil)
	}
	var dst []bridge.Message
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		dst, _ = e.Due(now, dst[:0])
	}
}
