package mapping

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 21.5, 40, 0.1, 1e-6, 9.99999e-7, 1e-7, 1.5e-7, 1e20, 1e21, 1e-300,
		5e-324, math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.125, 1 << 53, 1<<53 + 2, 3.14159, 1e100, 1.2345e-10}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vals = append(vals, math.Float64frombits(r.Uint64()))
	}
	for _, f := range vals {
		if !finite(f) {
			continue
		}
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := bridge.AppendFloat(nil, f); !bytes.Equal(got, want) {
			t.Errorf("AppendFloat(%v) = %s, encoding/json %s", f, got, want)
		}
	}
}

func TestAppendTime(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		tm := time.Unix(r.Int64N(300e9)-62e9, r.Int64N(1e9)).In(time.FixedZone("x", int(r.Int64N(50000))-25000))
		want := tm.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if got := string(appendTime(nil, tm)); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
		ms := tm.UnixMilli()
		got, _ := strconv.ParseFloat(string(appendEpoch(nil, tm)), 64)
		if math.Abs(got*1000-float64(ms)) > 0.5 {
			t.Fatalf("appendEpoch(%v) = %v, want %d ms", tm, got, ms)
		}
	}
}

// randomFrame builds a frame with every kind of value, bad points and
// awkward strings.
func randomFrame(r *rand.Rand, n int) bridge.Frame {
	strs := []string{"", "plain", `q"uote`, "back\\slash", "nl\n", "\x00\x1f", "\xff\xfe", "grün", "\u2028", "🌱"}
	f := bridge.Frame{Adapter: "coap", Device: "dev", Time: time.UnixMilli(r.Int64N(4e12))}
	for i := range n {
		p := bridge.Point{Name: fmt.Sprintf("p%d", i)}
		switch r.IntN(7) {
		case 0:
			p.Value = bridge.Number(r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20)))
		case 1:
			p.Value = bridge.Int(int64(r.Uint64()))
		case 2:
			p.Value = bridge.Bool(r.IntN(2) == 0)
		case 3:
			p.Value = bridge.String(strs[r.IntN(len(strs))] + strs[r.IntN(len(strs))])
		case 4:
			b := make([]byte, r.IntN(20))
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			p.Value = bridge.Bytes(b)
		case 5:
			p.Value = bridge.Number([]float64{math.NaN(), math.Inf(1), math.Inf(-1)}[r.IntN(3)])
		case 6:
			p.Bad = strs[r.IntN(len(strs))] + "timeout"
		}
		if r.IntN(3) == 0 {
			p.Unit = strs[r.IntN(len(strs))]
		}
		f.Points = append(f.Points, p)
	}
	return f
}

// validString is s as JSON carries it: each byte of invalid UTF-8 becomes
// U+FFFD.
func validString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

func TestJSONRoundTrip(t *testing.T) {
	e, err := New("gw", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		f := randomFrame(r, 1+r.IntN(12))
		msgs := e.Map(&f, nil)
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		dec := json.NewDecoder(bytes.NewReader(msgs[0].Payload))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("%v: %s", err, msgs[0].Payload)
		}
		if obj["time"] != f.Time.UTC().Format("2006-01-02T15:04:05.000Z") {
			t.Errorf("time %v for %v", obj["time"], f.Time)
		}
		errs, _ := obj["errors"].(map[string]any)
		good := 0
		for _, p := range f.Points {
			if !p.Good() {
				if errs[p.Name] != validString(p.Bad) {
					t.Errorf("errors[%s] = %v, want %q", p.Name, errs[p.Name], p.Bad)
				}
				continue
			}
			good++
			checkJSONValue(t, p, obj[p.Name])
		}
		if len(obj) != good+1+min(len(errs), 1) {
			t.Errorf("%d keys for %d good points: %s", len(obj), good, msgs[0].Payload)
		}
	}
}

func checkJSONValue(t *testing.T, p bridge.Point, got any) {
	t.Helper()
	v := p.Value
	switch v.Kind {
	case bridge.KindNumber:
		if !finite(v.Num) {
			if got != nil {
				t.Errorf("%s: %v, want null", p.Name, got)
			}
			return
		}
		f, err := got.(json.Number).Float64()
		if err != nil || f != v.Num {
			t.Errorf("%s: %v, want %v", p.Name, got, v.Num)
		}
	case bridge.KindInt:
		i, err := got.(json.Number).Int64()
		if err != nil || i != v.Int {
			t.Errorf("%s: %v, want %v", p.Name, got, v.Int)
		}
	case bridge.KindBool:
		if got != v.Bool {
			t.Errorf("%s: %v, want %v", p.Name, got, v.Bool)
		}
	case bridge.KindString:
		if got != validString(v.Str) {
			t.Errorf("%s: %q, want %q", p.Name, got, v.Str)
		}
	case bridge.KindBytes:
		b, err := base64.StdEncoding.DecodeString(got.(string))
		if err != nil || !bytes.Equal(b, v.Bytes) {
			t.Errorf("%s: %v, want %x", p.Name, got, v.Bytes)
		}
	}
}

type senmlRecord struct {
	BN *string      `json:"bn"`
	BT *float64     `json:"bt"`
	N  string       `json:"n"`
	U  *string      `json:"u"`
	V  *json.Number `json:"v"`
	VB *bool        `json:"vb"`
	VS *string      `json:"vs"`
	VD *string      `json:"vd"`
}

func TestSenMLRoundTrip(t *testing.T) {
	e, err := New("gw-01", []Route{{Match: "**", Topic: "{gateway}/{adapter}/{device}", Payload: "senml", QoS: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		f := randomFrame(r, 1+r.IntN(12))
		var want []bridge.Point
		for _, p := range f.Points {
			if senmlOK(&p) {
				want = append(want, p)
			}
		}
		msgs := e.Map(&f, nil)
		if len(want) == 0 {
			if len(msgs) != 0 {
				t.Errorf("message without records: %s", msgs[0].Payload)
			}
			continue
		}
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		dec := json.NewDecoder(bytes.NewReader(msgs[0].Payload))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		var pack []senmlRecord
		if err := dec.Decode(&pack); err != nil {
			t.Fatalf("%v: %s", err, msgs[0].Payload)
		}
		if len(pack) != len(want) {
			t.Fatalf("%d records, want %d: %s", len(pack), len(want), msgs[0].Payload)
		}
		if pack[0].BN == nil || *pack[0].BN != "gw-01/coap/dev/" || pack[0].BT == nil {
			t.Fatalf("first record lacks bn/bt: %s", msgs[0].Payload)
		}
		if ms := math.Round(*pack[0].BT * 1000); int64(ms) != f.Time.UnixMilli() {
			t.Errorf("bt %v, want %d ms", *pack[0].BT, f.Time.UnixMilli())
		}
		for i, rec := range pack {
			p := want[i]
			if i > 0 && (rec.BN != nil || rec.BT != nil) {
				t.Errorf("record %d repeats base fields", i)
			}
			if rec.N != p.Name {
				t.Errorf("n %q, want %q", rec.N, p.Name)
			}
			if (rec.U == nil) != (p.Unit == "") || (rec.U != nil && *rec.U != validString(p.Unit)) {
				t.Errorf("%s: unit %v, want %q", p.Name, rec.U, p.Unit)
			}
			fields := 0
			for _, set := range []bool{rec.V != nil, rec.VB != nil, rec.VS != nil, rec.VD != nil} {
				if set {
					fields++
				}
			}
			if fields != 1 {
				t.Fatalf("%s: %d value fields", p.Name, fields)
			}
			switch v := p.Value; v.Kind {
			case bridge.KindNumber:
				if f, err := rec.V.Float64(); err != nil || f != v.Num {
					t.Errorf("%s: v %v, want %v", p.Name, rec.V, v.Num)
				}
			case bridge.KindInt:
				if i, err := rec.V.Int64(); err != nil || i != v.Int {
					t.Errorf("%s: v %v, want %v", p.Name, rec.V, v.Int)
				}
			case bridge.KindBool:
				if rec.VB == nil || *rec.VB != v.Bool {
					t.Errorf("%s: vb %v", p.Name, rec.VB)
				}
			case bridge.KindString:
				if rec.VS == nil || *rec.VS != validString(v.Str) {
					t.Errorf("%s: vs %v", p.Name, rec.VS)
				}
			case bridge.KindBytes:
				if rec.VD == nil || strings.ContainsAny(*rec.VD, "=+/") {
					t.Fatalf("%s: vd %v is not unpadded base64url", p.Name, rec.VD)
				}
				b, err := base64.RawURLEncoding.DecodeString(*rec.VD)
				if err != nil || !bytes.Equal(b, v.Bytes) {
					t.Errorf("%s: vd %v, want %x", p.Name, *rec.VD, v.Bytes)
				}
			}
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	e, err := New("gw", []Route{{Match: "**", Topic: "{device}/{point}", Payload: "value"}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 1000 {
		f := randomFrame(r, 1+r.IntN(12))
		msgs := e.Map(&f, nil)
		i := 0
		for _, p := range f.Points {
			if !hasValue(&p) {
				continue
			}
			m := msgs[i]
			i++
			if m.Topic != "dev/"+p.Name {
				t.Fatalf("topic %q for %q", m.Topic, p.Name)
			}
			var ok bool
			switch v := p.Value; v.Kind {
			case bridge.KindNumber:
				f, err := strconv.ParseFloat(string(m.Payload), 64)
				ok = err == nil && (f == v.Num || math.IsNaN(f) && math.IsNaN(v.Num))
			case bridge.KindInt:
				ok = string(m.Payload) == strconv.FormatInt(v.Int, 10)
			case bridge.KindBool:
				ok = string(m.Payload) == strconv.FormatBool(v.Bool)
			case bridge.KindString:
				ok = string(m.Payload) == v.Str
			case bridge.KindBytes:
				ok = bytes.Equal(m.Payload, v.Bytes)
			}
			if !ok {
				t.Errorf("%s: payload %q for %+v", p.Name, m.Payload, p.Value)
			}
		}
		if i != len(msgs) {
			t.Fatalf("%d messages, want %d", len(msgs), i)
		}
	}
}

func TestMapCount(t *testing.T) {
	e, err := New("gw", []Route{{Match: "coap/x/*", Drop: true}})
	if err != nil {
		t.Fatal(err)
	}
	f := bridge.Frame{Adapter: "coap", Device: "dev", Points: []bridge.Point{
		{Name: "a", Value: bridge.Int(1)}, {Name: "b/c"}, {Name: "time"}, {Name: ""}, {Name: "d", Bad: "timeout"},
	}}
	msgs, skipped := e.MapCount(&f, nil)
	if len(msgs) != 1 || skipped != 3 {
		t.Errorf("%d messages, %d skipped; want 1, 3", len(msgs), skipped)
	}
	f.Device = "a+b"
	if msgs, skipped := e.MapCount(&f, nil); len(msgs) != 0 || skipped != 5 {
		t.Errorf("bad device: %d messages, %d skipped", len(msgs), skipped)
	}
	f.Device = "x" // dropped points are not counted
	if msgs, skipped := e.MapCount(&f, nil); len(msgs) != 0 || skipped != 3 {
		t.Errorf("drop: %d messages, %d skipped", len(msgs), skipped)
	}
	if msgs, skipped := e.MapCount(nil, nil); msgs != nil || skipped != 0 {
		t.Error("nil frame")
	}
	long := strings.Repeat("x", maxTopicLen)
	e, _ = New("gw", []Route{{Match: "**", Topic: "t/{point}", Payload: "json"}})
	f = bridge.Frame{Adapter: "coap", Device: "dev", Points: []bridge.Point{{Name: long}, {Name: "ok"}}}
	if msgs, skipped := e.MapCount(&f, nil); len(msgs) != 1 || skipped != 1 || msgs[0].Topic != "t/ok" {
		t.Errorf("long topic: %d messages, %d skipped", len(msgs), skipped)
	}
}

func TestMapAppendsToDst(t *testing.T) {
	e, _ := New("gw", nil)
	f := bridge.Frame{Adapter: "coap", Device: "dev", Points: []bridge.Point{{Name: "a", Value: bridge.Int(1)}}}
	dst := []bridge.Message{{Topic: "keep"}}
	dst = e.Map(&f, dst)
	if len(dst) != 2 || dst[0].Topic != "keep" || dst[1].Topic != "gw/coap/dev" {
		t.Fatalf("%+v", dst)
	}
	// Appending to a payload must not clobber the next one.
	e, _ = New("gw", []Route{{Match: "**", Topic: "{point}", Payload: "value"}})
	f.Points = append(f.Points, bridge.Point{Name: "b", Value: bridge.Int(2)})
	msgs := e.Map(&f, nil)
	_ = append(msgs[0].Payload, "xxxx"...)
	if string(msgs[1].Payload) != "2" {
		t.Fatalf("payloads share capacity: %q", msgs[1].Payload)
	}
}

// TestManyRoutesAndPoints goes beyond the stack scratch of Map and checks
// that the result does not depend on it.
func TestManyRoutesAndPoints(t *testing.T) {
	var routes []Route
	for i := range 100 {
		routes = append(routes, Route{Match: fmt.Sprintf("coap/dev/p%d", i%50), Topic: fmt.Sprintf("r%d/{point}", i), Payload: "value", Uplink: true})
	}
	routes = append(routes, Route{Match: "coap/dev/*", Topic: "rest", Payload: "json"})
	e, err := New("gw", routes)
	if err != nil {
		t.Fatal(err)
	}
	var f bridge.Frame
	f.Adapter, f.Device = "coap", "dev"
	for i := 199; i >= 0; i-- {
		f.Points = append(f.Points, bridge.Point{Name: fmt.Sprintf("p%d", i), Value: bridge.Int(int64(i))})
	}
	msgs := e.Map(&f, nil)
	if len(msgs) != 51 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs[:50] {
		if want := fmt.Sprintf("r%d/p%d", i, i); m.Topic != want || string(m.Payload) != strconv.Itoa(i) {
			t.Errorf("message %d: %s %s, want %s", i, m.Topic, m.Payload, want)
		}
	}
	var obj map[string]any
	if err := json.Unmarshal(msgs[50].Payload, &obj); err != nil || len(obj) != 151 {
		t.Errorf("rest: %v, %d keys", err, len(obj))
	}
	if !strings.HasPrefix(string(msgs[50].Payload), `{"time":"0001-01-01T00:00:00.000Z","p199":199,"p198":198,`) {
		t.Errorf("rest is not in frame order: %.80s", msgs[50].Payload)
	}
}

func TestMapConcurrent(t *testing.T) {
	e, _ := New("gw", []Route{{Match: "coap/**", Topic: "{device}/{point}", Payload: "senml"}})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 11))
			var dst []bridge.Message
			for range 500 {
				f := randomFrame(r, 8)
				dst = e.Map(&f, dst[:0])
				for _, m := range dst {
					if !json.Valid(m.Payload) {
						t.Errorf("invalid: %s", m.Payload)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestMapAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -cover and -race")
	}
	for _, tt := range []struct {
		name   string
		routes []Route
		max    float64
	}{
		{"json", nil, 2},
		{"value", []Route{{Match: "**", Topic: "{gateway}/{adapter}/{device}/{point}", Payload: "value"}}, 2},
		{"senml", []Route{{Match: "**", Topic: "{gateway}/{adapter}/{device}", Payload: "senml"}}, 2},
	} {
		e, err := New("gw-01", tt.routes)
		if err != nil {
			t.Fatal(err)
		}
		f := benchFrame()
		dst := e.Map(&f, nil)
		n := testing.AllocsPerRun(100, func() { dst = e.Map(&f, dst[:0]) })
		if n > tt.max {
			t.Errorf("%s: %v allocations per frame, want <= %v", tt.name, n, tt.max)
		}
	}
}

func TestNamesWithMultibyte(t *testing.T) {
	e, _ := New("gw", []Route{{Match: "**", Topic: "{device}/{point}", Payload: "value"}})
	f := bridge.Frame{Adapter: "coap", Device: "grün", Points: []bridge.Point{
		{Name: "日本", Value: bridge.Int(1)}, {Name: "ü+", Value: bridge.Int(2)}, {Name: "ü\u0085", Value: bridge.Int(3)},
	}}
	msgs := e.Map(&f, nil)
	if len(msgs) != 1 || msgs[0].Topic != "grün/日本" || !utf8.ValidString(msgs[0].Topic) {
		t.Fatalf("%+v", msgs)
	}
}

func TestDollarTopic(t *testing.T) {
	e, _ := New("gw", []Route{{Match: "x/**", Topic: "{point}", Payload: "value"}, {Match: "**", Topic: "{device}/{point}", Payload: "value"}})
	f := bridge.Frame{Adapter: "coap", Device: "$SYS", Points: []bridge.Point{{Name: "a", Value: bridge.Int(1)}}}
	if msgs, skipped := e.MapCount(&f, nil); len(msgs) != 0 || skipped != 1 {
		t.Errorf("$ device: %+v, %d skipped", msgs, skipped)
	}
	f = bridge.Frame{Adapter: "x", Device: "d", Points: []bridge.Point{{Name: "$a", Value: bridge.Int(1)}, {Name: "a$", Value: bridge.Int(2)}}}
	if msgs, skipped := e.MapCount(&f, nil); len(msgs) != 1 || skipped != 1 || msgs[0].Topic != "a$" {
		t.Errorf("$ point: %+v, %d skipped", msgs, skipped)
	}
}
