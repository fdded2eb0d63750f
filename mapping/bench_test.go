package mapping

import (
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

// benchFrame is a typical Modbus poll: six points, one of them bad.
func benchFrame() bridge.Frame {
	return bridge.Frame{
		Adapter: "modbus",
		Device:  "boiler",
		Time:    time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC),
		Points: []bridge.Point{
			{Name: "supply_temp", Value: bridge.Number(71.25), Unit: "Cel"},
			{Name: "return_temp", Value: bridge.Number(54.5), Unit: "Cel"},
			{Name: "flow", Value: bridge.Number(3.2), Unit: "m3/h"},
			{Name: "pressure", Value: bridge.Int(1500), Unit: "mbar"},
			{Name: "pump_on", Value: bridge.Bool(true)},
			{Name: "burner_state", Bad: "timeout"},
		},
	}
}

func benchMap(b *testing.B, routes []Route) {
	e, err := New("gw-01", routes)
	if err != nil {
		b.Fatal(err)
	}
	f := benchFrame()
	dst := e.Map(&f, nil)
	bytes := 0
	for _, m := range dst {
		bytes += len(m.Topic) + len(m.Payload)
	}
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	for b.Loop() {
		dst = e.Map(&f, dst[:0])
	}
}

// Some routes that do not match the frame, as a real config has.
var otherRoutes = []Route{
	{Match: "coap/greenhouse/*", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "value", QoS: 1, Uplink: true},
	{Match: "uart/**", Topic: "{gateway}/serial/{device}", Payload: "json", QoS: 0},
	{Match: "**/debug_*", Drop: true},
}

func BenchmarkMapJSON(b *testing.B) {
	benchMap(b, otherRoutes)
}

func BenchmarkMapValuePerPoint(b *testing.B) {
	benchMap(b, append(otherRoutes[:3:3],
		Route{Match: "modbus/boiler/*", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "value", QoS: 1, Uplink: true}))
}

func BenchmarkMapSenML(b *testing.B) {
	benchMap(b, append(otherRoutes[:3:3],
		Route{Match: "modbus/**", Topic: "{gateway}/{adapter}/{device}", Payload: "senml", QoS: 1, Uplink: true}))
}

// BenchmarkMapManyRoutes: 50 routes, the frame matches the last one.
func BenchmarkMapManyRoutes(b *testing.B) {
	var routes []Route
	for range 49 {
		routes = append(routes, Route{Match: "coap/*/x*", Topic: "{device}/{point}", Payload: "value"})
	}
	routes = append(routes, Route{Match: "**/*_temp", Topic: "{gateway}/temps/{device}", Payload: "json", QoS: 1})
	benchMap(b, routes)
}
