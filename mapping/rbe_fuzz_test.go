package mapping

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

// rbeModel is a plain restatement of report by exception (see the package
// documentation), with no heap, list or grouping, for FuzzRBE to compare
// the engine with.
type rbeModel struct {
	deadband   float64
	minI, maxI time.Duration
	max        int
	seq        int
	points     map[string]*modelPoint // "route|device|point"
}

type modelPoint struct {
	route, device, point string
	last, sent           bridge.Value
	lastTime, sentAt     time.Time
	held                 bool
	seq                  int // recency of the newest reading
}

// obs is one point in one message: "topic|time|point=value"; time only in
// JSON payloads, errors as point=!reason.
func (p *modelPoint) obs(v bridge.Value, t time.Time) string {
	if p.route == "m" {
		return fmt.Sprintf("%s/%s||%s=%s", p.device, p.point, p.point, v.AppendText(nil))
	}
	return fmt.Sprintf("j/%s|%s|%s=%s", p.device, appendTime(nil, t), p.point, v.AppendJSON(nil))
}

func (m *rbeModel) moved(old, v bridge.Value) bool {
	if m.deadband == 0 {
		return true
	}
	a, aok := old.Float()
	b, bok := v.Float()
	if aok && bok && old.Kind != bridge.KindBool && v.Kind != bridge.KindBool {
		if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
			return !(math.IsNaN(a) && math.IsNaN(b) || a == b)
		}
		return math.Abs(a-b) >= m.deadband
	}
	return old.Kind != v.Kind || string(old.AppendJSON(nil)) != string(v.AppendJSON(nil))
}

// frame returns the observations Map must produce.
func (m *rbeModel) frame(route string, f *bridge.Frame, now time.Time) []string {
	var out []string
	for _, pt := range f.Points {
		k := route + "|" + f.Device + "|" + pt.Name
		if pt.Bad != "" {
			delete(m.points, k)
			if route == "j" {
				out = append(out, fmt.Sprintf("j/%s|%s|%s=!%s", f.Device, appendTime(nil, f.Time), pt.Name, pt.Bad))
			}
			continue
		}
		if route == "m" && pt.Value.Kind == bridge.KindNone {
			continue
		}
		m.seq++
		p := m.points[k]
		if p == nil {
			if len(m.points) >= m.max {
				var victim *modelPoint
				var vk string
				for k2, p2 := range m.points {
					if victim == nil || p2.seq < victim.seq {
						victim, vk = p2, k2
					}
				}
				delete(m.points, vk)
				if victim.held {
					out = append(out, victim.obs(victim.last, victim.lastTime))
				}
			}
			p = &modelPoint{route: route, device: f.Device, point: pt.Name, last: pt.Value, lastTime: f.Time, seq: m.seq}
			m.points[k] = p
			p.sent, p.sentAt = pt.Value, now
			out = append(out, p.obs(pt.Value, f.Time))
			continue
		}
		p.last, p.lastTime, p.seq = pt.Value, f.Time, m.seq
		switch {
		case !m.moved(p.sent, pt.Value):
			p.held = false
		case m.minI > 0 && now.Sub(p.sentAt) < m.minI:
			p.held = true
		default:
			p.sent, p.sentAt, p.held = pt.Value, now, false
			out = append(out, p.obs(pt.Value, f.Time))
		}
	}
	return out
}

// due returns the observations Due must produce at now, and the next time.
func (m *rbeModel) due(now time.Time) ([]string, time.Time) {
	var out []string
	var next time.Time
	for _, p := range m.points {
		var at time.Time
		switch {
		case p.held:
			at = p.sentAt.Add(m.minI)
		case m.maxI > 0:
			at = p.sentAt.Add(m.maxI)
		default:
			continue
		}
		if !at.After(now) {
			out = append(out, p.obs(p.last, p.lastTime))
			p.sent, p.sentAt, p.held = p.last, now, false
			if m.maxI > 0 {
				at = now.Add(m.maxI)
			} else {
				continue
			}
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return out, next
}

func (m *rbeModel) flush() []string {
	var out []string
	for _, p := range m.points {
		if p.held {
			out = append(out, p.obs(p.last, p.lastTime))
		}
	}
	clear(m.points)
	return out
}

// observe splits messages into sorted observations.
func observe(t *testing.T, msgs []bridge.Message) []string {
	var out []string
	for _, msg := range msgs {
		if !strings.HasPrefix(msg.Topic, "j/") {
			_, point, _ := strings.Cut(msg.Topic, "/")
			out = append(out, fmt.Sprintf("%s||%s=%s", msg.Topic, point, msg.Payload))
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(msg.Payload, &obj); err != nil {
			t.Fatalf("%s: %v: %s", msg.Topic, err, msg.Payload)
		}
		var ts string
		if err := json.Unmarshal(obj["time"], &ts); err != nil {
			t.Fatal(err)
		}
		n := 0
		for k, v := range obj {
			switch k {
			case "time":
			case "errors":
				var errs map[string]string
				if err := json.Unmarshal(v, &errs); err != nil {
					t.Fatal(err)
				}
				for p, r := range errs {
					out = append(out, fmt.Sprintf("%s|%s|%s=!%s", msg.Topic, ts, p, r))
					n++
				}
			default:
				out = append(out, fmt.Sprintf("%s|%s|%s=%s", msg.Topic, ts, k, v))
				n++
			}
		}
		if n == 0 {
			t.Fatalf("%s: a message without points: %s", msg.Topic, msg.Payload)
		}
	}
	slices.Sort(out)
	return out
}

// fuzzRBEValue picks a value: few of them, so that sequences repeat and
// come back within the deadband.
func fuzzRBEValue(b byte) bridge.Point {
	switch b % 12 {
	case 0, 1, 2, 3, 4:
		return bridge.Point{Value: bridge.Number([]float64{0, 0.5, 1, 1.5, 3}[b%12])}
	case 5:
		return bridge.Point{Value: bridge.Number(math.NaN())}
	case 6:
		return bridge.Point{Value: bridge.Int(int64(b >> 5))}
	case 7:
		return bridge.Point{Value: bridge.Bool(b&0x10 != 0)}
	case 8:
		return bridge.Point{Value: bridge.String(strconv.Itoa(int(b >> 6)))}
	case 9:
		return bridge.Point{Bad: "timeout"}
	case 10:
		return bridge.Point{} // a good point without a value
	}
	return bridge.Point{Value: bridge.Number(math.Inf(1))}
}

// FuzzRBE runs a sequence of frames and Due calls through an engine with
// report by exception on a per-point "value" route and a whole-frame
// "json" route, and compares every step, and the final Flush, with
// rbeModel. Seeds: testdata/fuzz/FuzzRBE.
func FuzzRBE(f *testing.F) {
	f.Add(uint8(2), uint8(2), uint8(3), uint8(4), []byte{0, 3, 0, 4, 3, 1, 8, 3, 2, 2, 3, 16, 1, 1, 3, 0x42, 0, 0})
	f.Add(uint8(0), uint8(1), uint8(0), uint8(2), []byte{1, 3, 5, 0x11, 3, 9, 0x22, 3, 1, 2, 0, 0, 0x71, 2, 7, 2, 0, 0})
	f.Add(uint8(1), uint8(0), uint8(2), uint8(9), []byte{0x10, 3, 3, 0x14, 3, 7, 0x20, 1, 8, 0x24, 1, 6, 0x90, 0, 0})
	f.Fuzz(func(t *testing.T, db, minS, maxS, capacity uint8, ops []byte) {
		deadband := []float64{0, 0.5, 1, 2}[db%4]
		minI := time.Duration(minS%4) * time.Second
		maxI := time.Duration(maxS%6) * time.Second
		if maxI > 0 && maxI < minI {
			maxI = minI
		}
		e := mustEngine(t,
			Route{Match: "m/**", Topic: "{device}/{point}", Payload: PayloadValue, Deadband: deadband, MinInterval: minI, MaxInterval: maxI},
			Route{Match: "j/**", Topic: "j/{device}", Payload: PayloadJSON, Deadband: deadband, MinInterval: minI, MaxInterval: maxI},
		)
		if e.rbe == nil {
			return // no key set: no report by exception (TestRBESequences covers it)
		}
		e.rbe.max = int(capacity%8) + 1
		m := &rbeModel{deadband: deadband, minI: minI, maxI: maxI, max: e.rbe.max, points: map[string]*modelPoint{}}
		now := rbeT0
		for i := 0; i+2 < len(ops) && i < 3*200; i += 3 {
			op, sel, val := ops[i], ops[i+1], ops[i+2]
			now = now.Add(time.Duration(op>>2) * 250 * time.Millisecond)
			var got, want []string
			switch op % 4 {
			case 0, 1:
				route := []string{"m", "j"}[op%2]
				fr := bridge.Frame{Adapter: route, Device: "d" + strconv.Itoa(int(sel>>4)%3), Time: now}
				for j, name := range []string{"a", "b", "c"} {
					if sel&(1<<j) != 0 {
						p := fuzzRBEValue(val + byte(j)*37)
						p.Name = name
						fr.Points = append(fr.Points, p)
					}
				}
				want = m.frame(route, &fr, now)
				got = observe(t, e.MapAt(now, &fr, nil))
			case 2:
				var msgs []bridge.Message
				var next, wantNext time.Time
				msgs, next = e.Due(now, nil)
				got = observe(t, msgs)
				want, wantNext = m.due(now)
				if !next.Equal(wantNext) {
					t.Fatalf("op %d: Due next = %v, want %v", i/3, next, wantNext)
				}
			default:
				// Jump to the next due time, as a timer would.
				if next := e.NextDue(); !next.IsZero() && next.After(now) {
					now = next
				}
				msgs, _ := e.Due(now, nil)
				got = observe(t, msgs)
				want, _ = m.due(now)
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("op %d at +%v:\n got %q\nwant %q", i/3, now.Sub(rbeT0), got, want)
			}
			st := e.RBEStats()
			held := 0
			for _, p := range m.points {
				if p.held {
					held++
				}
			}
			if st.Tracked != len(m.points) || st.Held != held {
				t.Fatalf("op %d: stats %+v, model tracks %d, %d held", i/3, st, len(m.points), held)
			}
		}
		got := observe(t, e.Flush(nil))
		want := m.flush()
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Flush:\n got %q\nwant %q", got, want)
		}
	})
}
