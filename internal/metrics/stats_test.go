package metrics

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestStatsJSON(t *testing.T) {
	start := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	now := start.Add(time.Hour + 1500*time.Millisecond)
	m := New(func() Snapshot { return fullSnapshot() }, Options{Start: start})
	for range 4 {
		m.Frame("coap", "t1")
	}
	m.Frame("coap", "t2")
	m.Frame("plc", "boiler")
	for range 98 {
		m.ObserveLatency(200 * time.Microsecond) // (100µs, 250µs]
	}
	m.ObserveLatency(700 * time.Millisecond) // (500ms, 1s]
	m.ObserveLatency(800 * time.Millisecond)

	b := m.StatsJSON(now)
	if bytes.ContainsAny(b, "\n ") {
		t.Errorf("not compact: %s", b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := map[string]any{
		"time":              "2026-11-25T10:00:01.500Z",
		"gateway":           "gw-01",
		"uptime_s":          3601.0,
		"frames":            6.0,
		"frames_by_adapter": map[string]any{"coap": 5.0, "plc": 1.0, "meter": 0.0},
		// coap: 4+3+2+1; plc: decode 5 + backpressure 1 + requests 6+2+3+1+4;
		// meter: 2+3+6+7+1.
		"errors": map[string]any{"coap": 10.0, "plc": 22.0, "meter": 19.0},
		"adapters": map[string]any{
			"coap":  map[string]any{"up": true, "restarts": 0.0},
			"plc":   map[string]any{"up": false, "restarts": 3.0},
			"meter": map[string]any{"up": true, "restarts": 1.0},
		},
		"queue":  map[string]any{"messages": 12.0, "bytes": 3456.0, "oldest_age_s": 1.5, "dropped": 21.0},
		"uplink": map[string]any{"connected": true, "reconnects": 3.0},
		"broker": map[string]any{"clients": 3.0, "dropped": 8.0},
	}
	lat, _ := got["latency_ms"].(map[string]any)
	delete(got, "latency_ms")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stats\n got %v\nwant %v", got, want)
	}
	if lat["count"] != 100.0 {
		t.Errorf("latency count %v, want 100", lat["count"])
	}
	if p50, _ := lat["p50"].(float64); p50 <= 0.1 || p50 > 0.25 {
		t.Errorf("p50 %v ms, want in (0.1, 0.25]", lat["p50"])
	}
	if p99, _ := lat["p99"].(float64); p99 <= 500 || p99 > 1000 {
		t.Errorf("p99 %v ms, want in (500, 1000]", lat["p99"])
	}

	// The next message covers only what happened since: nothing.
	var msg StatsMessage
	if err := json.Unmarshal(m.StatsJSON(now.Add(time.Minute)), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.LatencyMS.Count != 0 || msg.LatencyMS.P50 != nil || msg.LatencyMS.P99 != nil {
		t.Errorf("empty interval latency %+v", msg.LatencyMS)
	}
	if msg.Frames != 6 || msg.UptimeS != 3661 {
		t.Errorf("second message: frames %d, uptime %d", msg.Frames, msg.UptimeS)
	}
	m.ObserveLatency(3 * time.Millisecond)
	msg = m.Stats(now.Add(2 * time.Minute))
	if msg.LatencyMS.Count != 1 || *msg.LatencyMS.P50 <= 2.5 || *msg.LatencyMS.P50 > 5 {
		t.Errorf("third interval latency count %d p50 %v", msg.LatencyMS.Count, *msg.LatencyMS.P50)
	}
}

// Without an uplink and a broker, their objects are absent and the queue
// is zeros; the field set is the documented one.
func TestStatsJSONMinimal(t *testing.T) {
	m := New(func() Snapshot { return Snapshot{Gateway: "gw-02"} }, Options{})
	b := m.StatsJSON(time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("CET", 3600)))
	want := `{"time":"2026-01-02T02:04:05.006Z","gateway":"gw-02","uptime_s":0,"frames":0,"frames_by_adapter":{},"errors":{},"adapters":{},"queue":{"messages":0,"bytes":0,"oldest_age_s":0,"dropped":0},"latency_ms":{"count":0}}`
	if string(b) != want {
		t.Errorf("stats\n got %s\nwant %s", b, want)
	}
}
