package mapping

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

// fuzzEngines covers every payload format, grouped and per point.
func fuzzEngines(t testing.TB) []*Engine {
	configs := [][]Route{
		nil,
		{{Match: "**", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "json", QoS: 1}},
		{{Match: "**", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "value", QoS: 1}},
		{{Match: "**", Topic: "{gateway}/{adapter}/{device}", Payload: "senml", QoS: 1}},
		{{Match: "**", Topic: "{gateway}/{device}/{point}/s", Payload: "senml", QoS: 1}},
		{
			{Match: "*/*/a*", Topic: "x/{point}", Payload: "value"},
			{Match: "**/*b*/**", Drop: true},
			{Match: "*/d*/*", Topic: "{device}", Payload: "senml"},
		},
	}
	var es []*Engine
	for _, routes := range configs {
		e, err := New("gw-01", routes)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

// kind picks a value from the fuzzer's inputs.
func fuzzValue(k uint8, num float64, i int64, s string, raw []byte) bridge.Value {
	switch k % 7 {
	case 0:
		return bridge.Number(num)
	case 1:
		return bridge.Int(i)
	case 2:
		return bridge.Bool(i&1 == 1)
	case 3:
		return bridge.String(s)
	case 4:
		return bridge.Bytes(raw)
	case 5:
		return bridge.Number(math.Float64frombits(uint64(i)))
	}
	return bridge.Value{}
}

// FuzzMap maps random frames through engines of every payload format, and
// twice through one that reports by exception (then Due and Flush): Map
// never panics, topics are always publishable and JSON/SenML payloads always
// parse. Seeds: testdata/fuzz/FuzzMap.
func FuzzMap(f *testing.F) {
	engines := fuzzEngines(f)
	f.Fuzz(func(t *testing.T, adapter, device, name1, name2 string, kinds uint8, num float64, i int64, s string, raw []byte, bad, unit string, ms int64) {
		frame := bridge.Frame{
			Adapter: adapter,
			Device:  device,
			Time:    time.UnixMilli(ms).Add(time.Duration(i % 1e6)),
			Points: []bridge.Point{
				{Name: name1, Value: fuzzValue(kinds, num, i, s, raw), Unit: unit},
				{Name: name2, Value: fuzzValue(kinds>>4, num, i, s, raw), Bad: bad},
				{Name: name1 + "_2", Value: fuzzValue(kinds>>2, num, i, s, raw), Bad: unit},
			},
		}
		for ei, e := range engines {
			msgs, skipped := e.MapCount(&frame, nil)
			if skipped < 0 || skipped > len(frame.Points) {
				t.Fatalf("engine %d: skipped %d", ei, skipped)
			}
			for _, m := range msgs {
				if m.Topic == "" || len(m.Topic) > maxTopicLen || strings.ContainsAny(m.Topic, "+#\x00") || !utf8.ValidString(m.Topic) {
					t.Fatalf("engine %d: bad topic %q", ei, m.Topic)
				}
				if bridge.CheckTopicText(m.Topic, true) != nil {
					t.Fatalf("engine %d: topic %q", ei, m.Topic)
				}
				if cap(m.Payload) != len(m.Payload) {
					t.Fatalf("engine %d: payload with spare capacity", ei)
				}
				switch {
				case bytes.HasPrefix(m.Payload, []byte(`{"time":"`)):
					var obj map[string]json.RawMessage
					if err := json.Unmarshal(m.Payload, &obj); err != nil {
						t.Fatalf("engine %d: invalid JSON %v: %q", ei, err, m.Payload)
					}
				case bytes.HasPrefix(m.Payload, []byte(`[{"bn":"`)):
					var pack []map[string]json.RawMessage
					if err := json.Unmarshal(m.Payload, &pack); err != nil || len(pack) == 0 {
						t.Fatalf("engine %d: invalid SenML %v: %q", ei, err, m.Payload)
					}
				case ei == 2 || (ei == 5 && strings.HasPrefix(m.Topic, "x/")):
					// value: anything goes, but never empty for a bad point
				default:
					t.Fatalf("engine %d: unexpected payload %q on %q", ei, m.Payload, m.Topic)
				}
			}
		}
		// Report by exception: the frame twice, then what Due and Flush
		// release, on a fresh engine (no state from other inputs).
		e := mustEngine(t,
			Route{Match: "**/b*", Topic: "v/{device}/{point}", Payload: "value", Deadband: 0.5, MaxInterval: time.Minute},
			Route{Match: "**/a*", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "json", Deadband: 0.5, MinInterval: 10 * time.Second, MaxInterval: time.Minute},
			Route{Match: "**", Topic: "{device}/s", Payload: "senml", MinInterval: 10 * time.Second, MaxInterval: 10 * time.Second},
		)
		now := time.UnixMilli(ms)
		msgs := e.MapAt(now, &frame, nil)
		frame.Points[0].Value, frame.Points[1].Value = frame.Points[1].Value, frame.Points[0].Value
		msgs = e.MapAt(now.Add(time.Second), &frame, msgs)
		msgs, _ = e.Due(now.Add(time.Hour), msgs)
		msgs = e.Flush(msgs)
		for _, m := range msgs {
			if m.Topic == "" || bridge.CheckTopicText(m.Topic, true) != nil || cap(m.Payload) != len(m.Payload) {
				t.Fatalf("rbe: topic %q", m.Topic)
			}
			if !strings.HasPrefix(m.Topic, "v/") && !json.Valid(m.Payload) {
				t.Fatalf("rbe: invalid JSON on %q: %q", m.Topic, m.Payload)
			}
		}
		if s := e.RBEStats(); s.Tracked != 0 || s.Held != 0 {
			t.Fatalf("rbe: after Flush %+v", s)
		}
	})
}

// FuzzRoute compiles random routes: validation never panics, and a valid
// route maps names to a publishable topic.
func FuzzRoute(f *testing.F) {
	f.Add("coap/**", "{gateway}/{adapter}/{device}/{point}", "coap", "dev", "pt")
	f.Add("**/a*b*/**", "x/{device}-{point}/y", "a", "ab", "b")
	f.Add("*/*/*_temp", "{gateway}/{{point}", "m", "b", "s_temp")
	f.Add("a/**/**/b", "$x/{point}/set", "a", "x", "b")
	f.Fuzz(func(t *testing.T, match, topic, adapter, device, point string) {
		r := Route{Match: match, Topic: topic, Payload: "json", QoS: 1}
		if len(ValidateRoute(r)) > 0 {
			if _, err := New("gw", []Route{r}); err == nil {
				t.Fatal("New accepted a route ValidateRoute refused")
			}
			return
		}
		e, err := New("gw", []Route{r})
		if err != nil {
			t.Fatal(err)
		}
		sel := e.Select(adapter, device, point)
		g, _ := compileGlob(match)
		if want := g.match(adapter, device, point); (sel == 0) != want {
			t.Fatalf("Select = %d, match = %v", sel, want)
		}
		f := bridge.Frame{Adapter: adapter, Device: device, Points: []bridge.Point{{Name: point, Value: bridge.Int(1)}}}
		for _, m := range e.Map(&f, nil) {
			if bridge.CheckTopicText(m.Topic, true) != nil || m.Topic == "" {
				t.Fatalf("topic %q", m.Topic)
			}
		}
	})
}
