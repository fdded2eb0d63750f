package mapping

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

// rbeT0 is the origin of the report-by-exception sequences: arrival times
// and reading times are offsets from it.
var rbeT0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// rbeStep is one step of a sequence: map a frame that arrives at `at`, or,
// with no frame, call Due at `at`. want lists the messages, "topic payload".
type rbeStep struct {
	at   time.Duration
	f    *bridge.Frame
	want []string
	// next, when not 0, is what NextDue (after a frame) or Due returns,
	// as an offset from rbeT0; -1 means nothing scheduled.
	next time.Duration
}

// fr is a frame of adapter "m" read when it arrives (the step's at).
func fr(device string, pts ...bridge.Point) *bridge.Frame {
	return &bridge.Frame{Adapter: "m", Device: device, Points: pts}
}

// frRead is a frame read at rbeT0+read, whatever its arrival.
func frRead(device string, read time.Duration, pts ...bridge.Point) *bridge.Frame {
	return &bridge.Frame{Adapter: "m", Device: device, Time: rbeT0.Add(read), Points: pts}
}

func num(name string, v float64) bridge.Point {
	return bridge.Point{Name: name, Value: bridge.Number(v)}
}
func integer(name string, v int64) bridge.Point {
	return bridge.Point{Name: name, Value: bridge.Int(v)}
}
func boolean(name string, v bool) bridge.Point {
	return bridge.Point{Name: name, Value: bridge.Bool(v)}
}
func str(name, v string) bridge.Point { return bridge.Point{Name: name, Value: bridge.String(v)} }
func bad(name, reason string) bridge.Point {
	return bridge.Point{Name: name, Value: bridge.Number(0), Bad: reason}
}

func mustEngine(t testing.TB, routes ...Route) *Engine {
	t.Helper()
	e, err := New("gw", routes)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func msgLines(msgs []bridge.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Topic+" "+string(m.Payload))
	}
	return out
}

// runSteps runs the steps in order on e and checks every message.
func runSteps(t *testing.T, e *Engine, steps []rbeStep) {
	t.Helper()
	for i, s := range steps {
		now := rbeT0.Add(s.at)
		var msgs []bridge.Message
		var next time.Time
		what := "Due"
		if s.f != nil {
			f := *s.f
			if f.Time.IsZero() {
				f.Time = now
			}
			what = fmt.Sprintf("Map %s/%s", f.Adapter, f.Device)
			msgs = e.MapAt(now, &f, nil)
			next = e.NextDue()
		} else {
			msgs, next = e.Due(now, nil)
		}
		for _, m := range msgs {
			checkMessage(t, m)
		}
		if got := msgLines(msgs); strings.Join(got, "\n") != strings.Join(s.want, "\n") {
			t.Errorf("step %d (%s at +%v):\n got: %q\nwant: %q", i, what, s.at, got, s.want)
		}
		switch {
		case s.next == -1 && !next.IsZero():
			t.Errorf("step %d (%s at +%v): next = +%v, want nothing scheduled", i, what, s.at, next.Sub(rbeT0))
		case s.next > 0 && !next.Equal(rbeT0.Add(s.next)):
			if next.IsZero() {
				t.Errorf("step %d (%s at +%v): nothing scheduled, want next +%v", i, what, s.at, s.next)
			} else {
				t.Errorf("step %d (%s at +%v): next = +%v, want +%v", i, what, s.at, next.Sub(rbeT0), s.next)
			}
		}
	}
}

const sec = time.Second

// Routes of the sequences: one message per point with the bare value, and
// one JSON message per device.
func valueRoute(deadband float64, minI, maxI time.Duration) Route {
	return Route{Match: "m/**", Topic: "{device}/{point}", Payload: PayloadValue, QoS: 1,
		Deadband: deadband, MinInterval: minI, MaxInterval: maxI}
}

func jsonRoute(deadband float64, minI, maxI time.Duration) Route {
	return Route{Match: "m/**", Topic: "{device}", Payload: PayloadJSON, QoS: 1,
		Deadband: deadband, MinInterval: minI, MaxInterval: maxI}
}

func TestRBESequences(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		steps  []rbeStep
	}{
		{"deadband numbers", []Route{valueRoute(0.5, 0, 0)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 20)), want: []string{"d/t 20"}, next: -1},
			{at: 1 * sec, f: fr("d", num("t", 20.25)), want: nil},
			{at: 2 * sec, f: fr("d", num("t", 20.5)), want: []string{"d/t 20.5"}}, // exactly deadband: sent
			{at: 3 * sec, f: fr("d", num("t", 20.25)), want: nil},                 // compared to 20.5, not 20.25
			{at: 4 * sec, f: fr("d", num("t", 20)), want: []string{"d/t 20"}},
			{at: 5 * sec, f: fr("d", num("t", 19.75)), want: nil},
			{at: 6 * sec, f: fr("d", num("t", math.Copysign(0, -1))), want: []string{"d/t -0"}},
			{at: 7 * sec, f: fr("d", num("t", 0)), want: nil},                                // -0 and 0 are 0 apart
			{at: 8 * sec, f: fr("d", num("u", 0)), want: []string{"d/u 0"}},                  // another point: its first value
			{at: 9 * sec, f: fr("e", num("t", 0)), want: []string{"e/t 0"}},                  // another device
			{at: 10 * sec, f: fr("d", num("t", 0.25), num("u", 1)), want: []string{"d/u 1"}}, // per point
			{at: 11 * sec, f: fr("d", integer("t", 1)), want: []string{"d/t 1"}},             // integer against number: numeric
			{at: 12 * sec, f: fr("d", num("t", 1.25)), want: nil},
		}},
		{"deadband integers", []Route{valueRoute(2, 0, 0)}, []rbeStep{
			{at: 0, f: fr("d", integer("n", 10)), want: []string{"d/n 10"}},
			{at: 1 * sec, f: fr("d", integer("n", 11)), want: nil},
			{at: 2 * sec, f: fr("d", integer("n", 8)), want: []string{"d/n 8"}},
			{at: 3 * sec, f: fr("d", integer("n", math.MaxInt64)), want: []string{"d/n 9223372036854775807"}},
			{at: 4 * sec, f: fr("d", integer("n", math.MaxInt64-1)), want: nil}, // exact, no float rounding
			{at: 5 * sec, f: fr("d", integer("n", math.MinInt64)), want: []string{"d/n -9223372036854775808"}},
		}},
		{"deadband non-numeric: on change", []Route{valueRoute(100, 0, 0)}, []rbeStep{
			{at: 0, f: fr("d", str("s", "on"), boolean("b", true)), want: []string{"d/s on", "d/b true"}},
			{at: 1 * sec, f: fr("d", str("s", "on"), boolean("b", true)), want: nil},
			{at: 2 * sec, f: fr("d", str("s", "off"), boolean("b", true)), want: []string{"d/s off"}},
			{at: 3 * sec, f: fr("d", str("s", "off"), boolean("b", false)), want: []string{"d/b false"}}, // a bool is not a number: 1→0 is a change
			{at: 4 * sec, f: fr("d", num("s", 1)), want: []string{"d/s 1"}},                              // a change of kind is a change
			{at: 5 * sec, f: fr("d", num("s", 50)), want: nil},
			{at: 6 * sec, f: fr("d", num("s", math.NaN())), want: []string{"d/s NaN"}},
			{at: 7 * sec, f: fr("d", num("s", math.NaN())), want: nil}, // non-finite: on change
			{at: 8 * sec, f: fr("d", num("s", math.Inf(1))), want: []string{"d/s +Inf"}},
			{at: 9 * sec, f: fr("d", num("s", math.Inf(1))), want: nil},
			{at: 10 * sec, f: fr("d", num("s", 1e300)), want: []string{"d/s 1e+300"}},
			{at: 11 * sec, f: fr("d", bridge.Point{Name: "r", Value: bridge.Bytes([]byte("ab"))}), want: []string{"d/r ab"}},
			{at: 12 * sec, f: fr("d", bridge.Point{Name: "r", Value: bridge.Bytes([]byte("ab"))}), want: nil},
			{at: 13 * sec, f: fr("d", bridge.Point{Name: "r", Value: bridge.Bytes([]byte("ac"))}), want: []string{"d/r ac"}},
		}},
		{"deadband 0 passes everything", []Route{valueRoute(0, 0, 10*sec)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 1)), want: []string{"d/t 1"}, next: 10 * sec},
			{at: 1 * sec, f: fr("d", num("t", 1)), want: []string{"d/t 1"}, next: 11 * sec},
		}},
		{"min_interval: the latest wins, sent when the interval ends", []Route{valueRoute(0, 5*sec, 0)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 1)), want: []string{"d/t 1"}, next: -1},
			{at: 1 * sec, f: fr("d", num("t", 2)), want: nil, next: 5 * sec},
			{at: 2 * sec, f: fr("d", num("t", 3)), want: nil, next: 5 * sec},
			{at: 4 * sec, want: nil, next: 5 * sec},
			{at: 5 * sec, want: []string{"d/t 3"}, next: -1},
			{at: 6 * sec, f: fr("d", num("t", 4)), want: nil, next: 10 * sec},      // the interval counts from the held send
			{at: 10*sec + 500*time.Millisecond, want: []string{"d/t 4"}, next: -1}, // a late Due: counts from now
			{at: 15 * sec, f: fr("d", num("t", 5)), want: nil, next: 15*sec + 500*time.Millisecond},
			{at: 15*sec + 500*time.Millisecond, want: []string{"d/t 5"}, next: -1},
			{at: 30 * sec, f: fr("d", num("t", 6)), want: []string{"d/t 6"}, next: -1}, // after the interval: at once
			{at: 30 * sec, f: fr("e", num("t", 6)), want: []string{"e/t 6"}},           // per device
			{at: 31 * sec, f: fr("d", num("t", 7), num("u", 7)), want: []string{"d/u 7"}, next: 35 * sec},
		}},
		{"min_interval: the held value keeps its reading time", []Route{jsonRoute(0, 10*sec, 0)}, []rbeStep{
			{at: 0, f: frRead("d", -1*sec, num("t", 1)), want: []string{`d {"time":"2026-11-25T09:59:59.000Z","t":1}`}},
			{at: 3 * sec, f: frRead("d", 2*sec, num("t", 2)), want: nil, next: 10 * sec},
			{at: 10 * sec, want: []string{`d {"time":"2026-11-25T10:00:02.000Z","t":2}`}, next: -1},
		}},
		{"max_interval: heartbeat of the last value", []Route{valueRoute(0, 0, 10*sec)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 1)), want: []string{"d/t 1"}, next: 10 * sec},
			{at: 9 * sec, want: nil, next: 10 * sec},
			{at: 10 * sec, want: []string{"d/t 1"}, next: 20 * sec},
			{at: 20 * sec, want: []string{"d/t 1"}, next: 30 * sec},
			{at: 25 * sec, f: fr("d", num("t", 2)), want: []string{"d/t 2"}, next: 35 * sec},
			{at: 34 * sec, want: nil, next: 35 * sec},
			{at: 50 * sec, want: []string{"d/t 2"}, next: 60 * sec}, // a late Due sends once, and counts from now
		}},
		{"max_interval: heartbeat JSON keeps the reading's time", []Route{jsonRoute(0, 0, time.Minute)}, []rbeStep{
			{at: 0, f: frRead("d", -2*sec, num("a", 1), str("b", "x")), want: []string{`d {"time":"2026-11-25T09:59:58.000Z","a":1,"b":"x"}`}},
			{at: time.Minute, want: []string{`d {"time":"2026-11-25T09:59:58.000Z","a":1,"b":"x"}`}, next: 2 * time.Minute},
		}},
		{"deadband and max_interval: the heartbeat sends the newest reading", []Route{jsonRoute(1, 0, 10*sec)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 20)), want: []string{`d {"time":"2026-11-25T10:00:00.000Z","t":20}`}},
			{at: 4 * sec, f: fr("d", num("t", 20.5)), want: nil, next: 10 * sec},
			{at: 10 * sec, want: []string{`d {"time":"2026-11-25T10:00:04.000Z","t":20.5}`}, next: 20 * sec},
			{at: 11 * sec, f: fr("d", num("t", 21.25)), want: nil}, // compared to 20.5, the value the heartbeat sent
			{at: 12 * sec, f: fr("d", num("t", 21.5)), want: []string{`d {"time":"2026-11-25T10:00:12.000Z","t":21.5}`}, next: 22 * sec},
		}},
		{"all three", []Route{valueRoute(1, 5*sec, 20*sec)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 20)), want: []string{"d/t 20"}, next: 20 * sec},
			{at: 1 * sec, f: fr("d", num("t", 20.5)), want: nil, next: 20 * sec},  // deadband
			{at: 2 * sec, f: fr("d", num("t", 22)), want: nil, next: 5 * sec},     // passes deadband: held
			{at: 3 * sec, f: fr("d", num("t", 23)), want: nil, next: 5 * sec},     // latest wins
			{at: 4 * sec, f: fr("d", num("t", 20.25)), want: nil, next: 20 * sec}, // back within deadband: nothing held
			{at: 5 * sec, want: nil, next: 20 * sec},
			{at: 6 * sec, f: fr("d", num("t", 25)), want: []string{"d/t 25"}, next: 26 * sec},
			{at: 7 * sec, f: fr("d", num("t", 30)), want: nil, next: 11 * sec},
			{at: 11 * sec, want: []string{"d/t 30"}, next: 31 * sec},
			{at: 12 * sec, f: fr("d", num("t", 30.5)), want: nil, next: 31 * sec},
			{at: 31 * sec, want: []string{"d/t 30.5"}, next: 51 * sec},          // heartbeat: newest reading
			{at: 33 * sec, f: fr("d", num("t", 40)), want: nil, next: 36 * sec}, // the heartbeat counts for min_interval
			{at: 36 * sec, want: []string{"d/t 40"}, next: 56 * sec},
		}},
		{"min_interval equal to max_interval: exactly one per interval", []Route{valueRoute(0, 10*sec, 10*sec)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 1)), want: []string{"d/t 1"}, next: 10 * sec},
			{at: 3 * sec, f: fr("d", num("t", 2)), want: nil, next: 10 * sec},
			{at: 10 * sec, want: []string{"d/t 2"}, next: 20 * sec},
			{at: 20 * sec, want: []string{"d/t 2"}, next: 30 * sec},
		}},
		{"whole frame: only the points that pass", []Route{jsonRoute(1, 0, 0)}, []rbeStep{
			{at: 0, f: fr("d", num("a", 1), num("b", 10), str("c", "x")),
				want: []string{`d {"time":"2026-11-25T10:00:00.000Z","a":1,"b":10,"c":"x"}`}},
			{at: 1 * sec, f: fr("d", num("a", 1.5), num("b", 12), str("c", "x")),
				want: []string{`d {"time":"2026-11-25T10:00:01.000Z","b":12}`}},
			{at: 2 * sec, f: fr("d", num("a", 1.5), num("b", 12), str("c", "x")), want: nil}, // nothing passes: no message
			{at: 3 * sec, f: fr("d", num("a", 2), bad("b", "timeout"), str("c", "y")),
				want: []string{`d {"time":"2026-11-25T10:00:03.000Z","a":2,"c":"y","errors":{"b":"timeout"}}`}},
			{at: 4 * sec, f: fr("d", num("a", 2), num("b", 12), str("c", "y")), // b was reset by the error
				want: []string{`d {"time":"2026-11-25T10:00:04.000Z","b":12}`}},
			{at: 5 * sec, f: fr("d", num("a", 2), bad("b", "timeout")), // errors always pass
				want: []string{`d {"time":"2026-11-25T10:00:05.000Z","errors":{"b":"timeout"}}`}},
			{at: 6 * sec, f: fr("d", bad("b", "timeout")),
				want: []string{`d {"time":"2026-11-25T10:00:06.000Z","errors":{"b":"timeout"}}`}},
			{at: 7 * sec, f: fr("d", bridge.Point{Name: "n"}), want: []string{`d {"time":"2026-11-25T10:00:07.000Z","n":null}`}},
			{at: 8 * sec, f: fr("d", bridge.Point{Name: "n"}), want: nil}, // no value, again: no change
		}},
		{"whole frame: held points by reading time", []Route{jsonRoute(0, 10*sec, 0)}, []rbeStep{
			{at: 0, f: fr("d", num("a", 1), num("b", 1), num("c", 1)),
				want: []string{`d {"time":"2026-11-25T10:00:00.000Z","a":1,"b":1,"c":1}`}, next: -1},
			{at: 2 * sec, f: fr("d", num("a", 2), num("b", 2)), want: nil, next: 10 * sec},
			{at: 4 * sec, f: fr("d", num("b", 3), num("a", 3)), want: nil},
			{at: 5 * sec, f: fr("d", num("c", 4)), want: nil},
			{at: 6 * sec, f: fr("e", num("a", 5)), want: []string{`e {"time":"2026-11-25T10:00:06.000Z","a":5}`}},
			{at: 10 * sec, want: []string{
				`d {"time":"2026-11-25T10:00:04.000Z","b":3,"a":3}`, // frame order of the newest reading
				`d {"time":"2026-11-25T10:00:05.000Z","c":4}`,
			}, next: -1},
			{at: 12 * sec, f: fr("d", num("a", 6), bad("b", "crc error")), // b: bad passes; a: held
				want: []string{`d {"time":"2026-11-25T10:00:12.000Z","errors":{"b":"crc error"}}`}, next: 20 * sec},
			{at: 13 * sec, f: fr("d", num("b", 7)), want: []string{`d {"time":"2026-11-25T10:00:13.000Z","b":7}`}}, // reset: a first value
			{at: 20 * sec, want: []string{`d {"time":"2026-11-25T10:00:12.000Z","a":6}`}},
		}},
		{"whole frame senml: heartbeat keeps the unit", []Route{{Match: "m/**", Topic: "{device}", Payload: PayloadSenML, QoS: 1, MaxInterval: 10 * sec}}, []rbeStep{
			{at: 0, f: fr("d", bridge.Point{Name: "t", Value: bridge.Number(21.5), Unit: "Cel"}, num("x", math.NaN())),
				want: []string{`d [{"bn":"gw/m/d/","bt":1795600800,"n":"t","u":"Cel","v":21.5}]`}, next: 10 * sec},
			{at: 10 * sec, want: []string{`d [{"bn":"gw/m/d/","bt":1795600800,"n":"t","u":"Cel","v":21.5}]`}, next: 20 * sec}, // NaN has no SenML form: not tracked
		}},
		{"value: errors reset the point and drop a held value", []Route{valueRoute(1, 10*sec, 30*sec)}, []rbeStep{
			{at: 0, f: fr("d", num("t", 1)), want: []string{"d/t 1"}, next: 30 * sec},
			{at: 1 * sec, f: fr("d", num("t", 5)), want: nil, next: 10 * sec},
			{at: 2 * sec, f: fr("d", bad("t", "timeout")), want: nil, next: -1}, // nothing to publish in "value", and no heartbeat
			{at: 10 * sec, want: nil, next: -1},
			{at: 11 * sec, f: fr("d", num("t", 1)), want: []string{"d/t 1"}, next: 41 * sec}, // first value again
			{at: 12 * sec, f: fr("d", bridge.Point{Name: "t"}), want: nil},                   // no value: nothing, not a reading
			{at: 41 * sec, want: []string{"d/t 1"}},
		}},
		{"a route without report by exception is untouched", []Route{
			{Match: "m/plain/*", Topic: "{device}/{point}", Payload: PayloadValue},
			valueRoute(1, 0, 0),
		}, []rbeStep{
			{at: 0, f: fr("plain", num("t", 1)), want: []string{"plain/t 1"}, next: -1},
			{at: 1, f: fr("plain", num("t", 1)), want: []string{"plain/t 1"}, next: -1},
			{at: 2, f: fr("d", num("t", 1)), want: []string{"d/t 1"}},
			{at: 3, f: fr("d", num("t", 1)), want: nil},
			{at: 4, f: &bridge.Frame{Adapter: "x", Device: "d", Points: []bridge.Point{num("t", 1)}},
				want: []string{`gw/x/d {"time":"2026-11-25T10:00:00.000Z","t":1}`}},
		}},
		{"a drop route ignores the keys", []Route{{Match: "m/**", Drop: true, Deadband: 1, MinInterval: sec}}, []rbeStep{
			{at: 0, f: fr("d", num("t", 1)), want: nil, next: -1},
		}},
		{"names and topics that cannot be published are not tracked", []Route{{Match: "**", Topic: "{point}/{device}", Payload: PayloadValue, Deadband: 1}}, []rbeStep{
			{at: 0, f: fr("d", num("$t", 1)), want: nil},
			{at: 1, f: fr("d", num("t/x", 1)), want: nil},
			{at: 2, f: fr("d", num("t", 1)), want: []string{"t/d 1"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, mustEngine(t, tc.routes...), tc.steps)
		})
	}
}

func TestRBEEviction(t *testing.T) {
	e := mustEngine(t, valueRoute(1, 10*sec, 0))
	e.rbe.max = 2
	runSteps(t, e, []rbeStep{
		{at: 0, f: fr("a", num("t", 1)), want: []string{"a/t 1"}},
		{at: 1 * sec, f: fr("b", num("t", 1)), want: []string{"b/t 1"}},
		{at: 2 * sec, f: fr("a", num("t", 5)), want: nil, next: 10 * sec},            // a: held, and now the newest
		{at: 3 * sec, f: fr("c", num("t", 1)), want: []string{"c/t 1"}},              // evicts b (oldest reading), which held nothing
		{at: 4 * sec, f: fr("b", num("t", 1.5)), want: []string{"b/t 1.5", "a/t 5"}}, // b is new again; evicts a, whose held value goes out at once
		{at: 10 * sec, want: nil, next: -1},
		{at: 11 * sec, f: fr("c", num("t", 1.5)), want: nil}, // c is still tracked
	})
	if s := e.RBEStats(); s.Tracked != 2 || s.Evicted != 2 || s.Held != 0 {
		t.Errorf("stats = %+v", s)
	}
	if MaxTracked < 1000 || newRBEState().max != MaxTracked {
		t.Errorf("MaxTracked = %d", MaxTracked)
	}
}

func TestRBEAdopt(t *testing.T) {
	kept := valueRoute(1, 10*sec, 0)
	changed := Route{Match: "m/x/*", Topic: "x/{point}", Payload: PayloadValue, Deadband: 1, MinInterval: 10 * sec}
	old := mustEngine(t, changed, kept)
	runSteps(t, old, []rbeStep{
		{at: 0, f: fr("d", num("t", 1), num("u", 1)), want: []string{"d/t 1", "d/u 1"}},
		{at: 0, f: fr("e", num("t", 1)), want: []string{"e/t 1"}},
		{at: 0, f: fr("x", num("t", 1)), want: []string{"x/t 1"}},
		{at: 1 * sec, f: fr("d", num("t", 5)), want: nil, next: 10 * sec},
		{at: 2 * sec, f: fr("x", num("t", 5)), want: nil, next: 10 * sec},
	})
	changed.QoS = 2
	// The new file: the changed route, then a new route that takes d/u, then
	// the unchanged one (in another place).
	e := mustEngine(t, changed, Route{Match: "m/d/u", Topic: "new/{point}", Payload: PayloadValue}, kept)
	e.Adopt(old)
	if s := e.RBEStats(); s.Tracked != 2 || s.Held != 1 {
		t.Errorf("new engine after Adopt: %+v, want d/t (held) and e/t", s)
	}
	if s := old.RBEStats(); s.Tracked != 1 || s.Held != 1 {
		t.Errorf("old engine after Adopt: %+v, want only x/t, held", s)
	}
	// The old engine passes everything through now.
	runSteps(t, old, []rbeStep{
		{at: 3 * sec, f: fr("e", num("t", 1)), want: []string{"e/t 1"}},
	})
	if msgs := old.Flush(nil); strings.Join(msgLines(msgs), ";") != "x/t 5" {
		t.Errorf("old.Flush = %q, want the held value of the changed route", msgLines(msgs))
	}
	if s := old.RBEStats(); s.Tracked != 0 {
		t.Errorf("old engine after Flush: %+v", s)
	}
	runSteps(t, e, []rbeStep{
		{at: 4 * sec, f: fr("e", num("t", 1.5)), want: nil},                 // state kept: within deadband
		{at: 5 * sec, f: fr("x", num("t", 5.5)), want: []string{"x/t 5.5"}}, // changed route: reset
		{at: 6 * sec, f: fr("d", num("u", 1)), want: []string{"new/u 1"}},   // another route now
		{at: 7 * sec, f: fr("d", num("t", 7)), want: nil, next: 10 * sec},   // still within d/t's interval
		{at: 10 * sec, want: []string{"d/t 7"}, next: -1},                   // held, published by the new engine
	})
	// Adopt twice, or from an engine without state: nothing happens.
	e2 := mustEngine(t, kept)
	e2.Adopt(old)
	e2.Adopt(mustEngine(t))
	e2.Adopt(nil)
	e2.Adopt(e2)
	if s := e2.RBEStats(); s.Tracked != 0 {
		t.Errorf("%+v", s)
	}
	// A new engine without report by exception: old keeps only held values.
	old2 := mustEngine(t, kept)
	runSteps(t, old2, []rbeStep{
		{at: 0, f: fr("d", num("t", 1), num("u", 1)), want: []string{"d/t 1", "d/u 1"}},
		{at: 1 * sec, f: fr("d", num("t", 5)), want: nil},
	})
	mustEngine(t).Adopt(old2)
	if s := old2.RBEStats(); s.Tracked != 1 || s.Held != 1 {
		t.Errorf("%+v", s)
	}
	if got := msgLines(old2.Flush(nil)); strings.Join(got, ";") != "d/t 5" {
		t.Errorf("Flush = %q", got)
	}
}

func TestRBEAdoptCarriesEvictions(t *testing.T) {
	r := valueRoute(1, 0, 0)
	old := mustEngine(t, r)
	old.rbe.max = 1
	old.MapAt(rbeT0, fr("a", num("t", 1)), nil)
	old.MapAt(rbeT0, fr("b", num("t", 1)), nil)
	e := mustEngine(t, r)
	e.Adopt(old)
	if s := e.RBEStats(); s.Evicted != 1 || s.Tracked != 1 {
		t.Errorf("%+v", s)
	}
}

func TestRBEFlush(t *testing.T) {
	e := mustEngine(t, jsonRoute(0, 10*sec, 10*sec))
	runSteps(t, e, []rbeStep{
		{at: 0, f: fr("d", num("a", 1), num("b", 1)), want: []string{`d {"time":"2026-11-25T10:00:00.000Z","a":1,"b":1}`}},
		{at: 1 * sec, f: fr("d", num("a", 2), num("b", 2)), want: nil},
		{at: 2 * sec, f: fr("c", num("a", 2)), want: []string{`c {"time":"2026-11-25T10:00:02.000Z","a":2}`}},
	})
	got := msgLines(e.Flush(nil))
	want := []string{`d {"time":"2026-11-25T10:00:01.000Z","a":2,"b":2}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Flush = %q, want %q (held values only)", got, want)
	}
	if msgs, next := e.Due(rbeT0.Add(time.Hour), nil); len(msgs) != 0 || !next.IsZero() {
		t.Errorf("after Flush, Due = %q, %v", msgLines(msgs), next)
	}
	// Engines without report by exception.
	plain := mustEngine(t)
	if msgs, next := plain.Due(time.Time{}, nil); len(msgs) != 0 || !next.IsZero() || !plain.NextDue().IsZero() ||
		len(plain.Flush(nil)) != 0 || plain.RBEStats() != (RBEStats{}) {
		t.Error("an engine without report by exception has state")
	}
}

// TestRBEWallClock: Map, MapCount and Due with a zero time read the clock.
func TestRBEWallClock(t *testing.T) {
	e := mustEngine(t, valueRoute(0, time.Hour, 0))
	f := bridge.Frame{Adapter: "m", Device: "d", Time: rbeT0, Points: []bridge.Point{num("t", 1)}}
	if got := msgLines(e.Map(&f, nil)); len(got) != 1 {
		t.Fatalf("first: %q", got)
	}
	f.Points[0] = num("t", 2)
	if got, skipped := e.MapCount(&f, nil); len(got) != 0 || skipped != 0 {
		t.Fatalf("second, within the hour: %q", msgLines(got))
	}
	next := e.NextDue()
	if d := time.Until(next); d < 59*time.Minute || d > time.Hour {
		t.Errorf("next due in %v", d)
	}
	if msgs, _ := e.Due(time.Time{}, nil); len(msgs) != 0 {
		t.Errorf("Due now: %q", msgLines(msgs))
	}
	if msgs, _ := e.Due(next, nil); strings.Join(msgLines(msgs), "") != "d/t 2" {
		t.Errorf("Due at next: %q", msgLines(msgs))
	}
}

// TestRBEFrameNotRetained: the state owns its strings and bytes.
func TestRBEFrameNotRetained(t *testing.T) {
	e := mustEngine(t, valueRoute(1, 10*sec, 0))
	name := []byte("pt")
	raw := []byte("v1")
	mk := func(v string) *bridge.Frame {
		copy(raw, v)
		return &bridge.Frame{Adapter: "m", Device: "d", Time: rbeT0, Points: []bridge.Point{
			{Name: string(name), Value: bridge.Bytes(raw)},
		}}
	}
	e.MapAt(rbeT0, mk("v1"), nil)
	e.MapAt(rbeT0.Add(sec), mk("v2"), nil)
	copy(raw, "zz") // the adapter reuses its buffer
	msgs, _ := e.Due(rbeT0.Add(10*sec), nil)
	if got := strings.Join(msgLines(msgs), ";"); got != "d/pt v2" {
		t.Errorf("Due = %q, want the held bytes as they were", got)
	}
}

func TestValidateRouteRBE(t *testing.T) {
	base := Route{Match: "**", Topic: "{device}", Payload: PayloadJSON}
	tests := []struct {
		mod   func(*Route)
		field string // "" = valid
	}{
		{func(r *Route) { r.Deadband = 0.5; r.MinInterval = sec; r.MaxInterval = sec }, ""},
		{func(r *Route) { r.MaxInterval = sec }, ""},
		{func(r *Route) { r.Deadband = -1 }, "deadband"},
		{func(r *Route) { r.Deadband = math.NaN() }, "deadband"},
		{func(r *Route) { r.Deadband = math.Inf(1) }, "deadband"},
		{func(r *Route) { r.MinInterval = -sec }, "min_interval"},
		{func(r *Route) { r.MaxInterval = -sec }, "max_interval"},
		{func(r *Route) { r.MinInterval = 2 * sec; r.MaxInterval = sec }, "max_interval"},
		{func(r *Route) { r.Drop = true; r.Topic = ""; r.Payload = ""; r.Deadband = -1 }, ""},
	}
	for i, tc := range tests {
		r := base
		tc.mod(&r)
		errs := ValidateRoute(r)
		var fields []string
		for _, err := range errs {
			fe, ok := err.(*FieldError)
			if !ok {
				t.Fatalf("%d: %T", i, err)
			}
			fields = append(fields, fe.Field)
		}
		if got := strings.Join(fields, ","); got != tc.field {
			t.Errorf("%d: %+v: fields %q (%v), want %q", i, r, got, errs, tc.field)
		}
		if _, err := New("gw", []Route{r}); (err == nil) != (tc.field == "") {
			t.Errorf("%d: New: %v", i, err)
		}
	}
}

// TestRBEConcurrent maps, and calls Due, NextDue and RBEStats, from several
// goroutines (run with -race).
func TestRBEConcurrent(t *testing.T) {
	e := mustEngine(t, valueRoute(0.5, 3*time.Millisecond, 7*time.Millisecond), jsonRoute(1, 0, 5*time.Millisecond))
	e.rbe.max = 50
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var msgs []bridge.Message
			for i := range 500 {
				now := rbeT0.Add(time.Duration(i) * time.Millisecond)
				f := bridge.Frame{Adapter: "m", Device: fmt.Sprintf("d%d", (g*7+i)%80), Time: now,
					Points: []bridge.Point{num("a", float64(i%5)), str("s", fmt.Sprint(i%3))}}
				msgs = e.MapAt(now, &f, msgs[:0])
				if i%10 == 0 {
					msgs, _ = e.Due(now, msgs[:0])
					_ = e.NextDue()
					_ = e.RBEStats()
				}
			}
		})
	}
	wg.Wait()
	if s := e.RBEStats(); s.Tracked > 50 || s.Held < 0 {
		t.Errorf("%+v", s)
	}
}

// TestRBEDocExample is the timeline of docs/configuration.md ("Report by
// exception"), message for message.
func TestRBEDocExample(t *testing.T) {
	e, err := New("gw-01", []Route{{Match: "coap/cellar/*", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: PayloadJSON, QoS: 1, Uplink: true,
		Deadband: 0.5, MinInterval: 10 * sec, MaxInterval: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	temp := func(v float64) *bridge.Frame {
		return &bridge.Frame{Adapter: "coap", Device: "cellar", Points: []bridge.Point{num("temperature", v)}}
	}
	const topic = "gw-01/coap/cellar/temperature "
	runSteps(t, e, []rbeStep{
		{at: 0, f: temp(20.0), want: []string{topic + `{"time":"2026-11-25T10:00:00.000Z","temperature":20}`}},
		{at: 3 * sec, f: temp(20.2)},
		{at: 5 * sec, f: temp(21.0), next: 10 * sec},
		{at: 7 * sec, f: temp(21.4), next: 10 * sec},
		{at: 10 * sec, want: []string{topic + `{"time":"2026-11-25T10:00:07.000Z","temperature":21.4}`}},
		{at: 12 * sec, f: temp(21.7)},
		{at: 25 * sec, f: temp(23.0), want: []string{topic + `{"time":"2026-11-25T10:00:25.000Z","temperature":23}`}},
		{at: 30 * sec, f: temp(20.0), next: 35 * sec},
		{at: 33 * sec, f: temp(23.2), next: 85 * sec},
		{at: 84 * sec},
		{at: 85 * sec, want: []string{topic + `{"time":"2026-11-25T10:00:33.000Z","temperature":23.2}`}, next: 145 * sec},
		{at: 100 * sec, f: &bridge.Frame{Adapter: "coap", Device: "cellar", Points: []bridge.Point{bad("temperature", "timeout")}},
			want: []string{topic + `{"time":"2026-11-25T10:01:40.000Z","errors":{"temperature":"timeout"}}`}, next: -1},
		{at: 102 * sec, f: temp(23.1), want: []string{topic + `{"time":"2026-11-25T10:01:42.000Z","temperature":23.1}`}},
	})
}
