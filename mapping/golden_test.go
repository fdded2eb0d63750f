package mapping

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*/expected.txt")

const goldenGateway = "gw-01"

// goldenPoint is a point in frames.json. Value is read by Kind: number (a
// JSON number, or a string such as "NaN", "-0", "+Inf"), integer (exact
// int64), bool, string, bytes (hex). Hex, when set, gives the raw bytes of a
// string (for invalid UTF-8). Kind "none" has no value.
type goldenPoint struct {
	Name  string          `json:"name"`
	Kind  string          `json:"kind"`
	Value json.RawMessage `json:"value"`
	Hex   string          `json:"hex"`
	Unit  string          `json:"unit"`
	Bad   string          `json:"bad"`
}

type goldenFrame struct {
	Adapter string        `json:"adapter"`
	Device  string        `json:"device"`
	Time    string        `json:"time"`
	Points  []goldenPoint `json:"points"`
}

// goldenRoute is a route in routes.json; omitted keys take the default
// route's values, as in gateway.toml.
type goldenRoute struct {
	Match   *string `json:"match"`
	Topic   *string `json:"topic"`
	Payload *string `json:"payload"`
	QoS     *byte   `json:"qos"`
	Retain  *bool   `json:"retain"`
	Uplink  *bool   `json:"uplink"`
	Drop    *bool   `json:"drop"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadRoutes(t *testing.T, path string) []Route {
	var grs []goldenRoute
	readJSON(t, path, &grs)
	routes := make([]Route, len(grs))
	for i, g := range grs {
		r := DefaultRoute()
		r.Match = ""
		set(&r.Match, g.Match)
		set(&r.Topic, g.Topic)
		set(&r.Payload, g.Payload)
		set(&r.QoS, g.QoS)
		set(&r.Retain, g.Retain)
		set(&r.Uplink, g.Uplink)
		set(&r.Drop, g.Drop)
		routes[i] = r
	}
	return routes
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func loadFrames(t *testing.T, path string) []bridge.Frame {
	var gfs []goldenFrame
	readJSON(t, path, &gfs)
	frames := make([]bridge.Frame, len(gfs))
	for i, g := range gfs {
		ts, err := time.Parse(time.RFC3339Nano, g.Time)
		if err != nil {
			t.Fatalf("%s: frame %d: %v", path, i, err)
		}
		f := bridge.Frame{Adapter: g.Adapter, Device: g.Device, Time: ts}
		for j, gp := range g.Points {
			v, err := gp.value()
			if err != nil {
				t.Fatalf("%s: frame %d point %d: %v", path, i, j, err)
			}
			f.Points = append(f.Points, bridge.Point{Name: gp.Name, Value: v, Unit: gp.Unit, Bad: gp.Bad})
		}
		frames[i] = f
	}
	return frames
}

func (gp goldenPoint) value() (bridge.Value, error) {
	raw := strings.TrimSpace(string(gp.Value))
	var hexBytes []byte
	if gp.Hex != "" {
		var err error
		if hexBytes, err = hex.DecodeString(strings.ReplaceAll(gp.Hex, " ", "")); err != nil {
			return bridge.Value{}, err
		}
	}
	if raw == "" && gp.Hex == "" && gp.Kind != "bytes" {
		// No value: the kind's zero value (typical of a bad point).
		for k := bridge.KindNone; k <= bridge.KindBytes; k++ {
			if k.String() == gp.Kind {
				return bridge.Value{Kind: k}, nil
			}
		}
	}
	switch gp.Kind {
	case "none", "":
		return bridge.Value{}, nil
	case "number":
		if s, err := strconv.Unquote(raw); err == nil {
			raw = s
		}
		f, err := strconv.ParseFloat(raw, 64)
		return bridge.Number(f), err
	case "integer":
		i, err := strconv.ParseInt(raw, 10, 64)
		return bridge.Int(i), err
	case "bool":
		b, err := strconv.ParseBool(raw)
		return bridge.Bool(b), err
	case "string":
		if hexBytes != nil {
			return bridge.String(string(hexBytes)), nil
		}
		var s string
		err := json.Unmarshal(gp.Value, &s)
		return bridge.String(s), err
	case "bytes":
		if hexBytes == nil {
			hexBytes = []byte{}
		}
		return bridge.Bytes(hexBytes), nil
	}
	return bridge.Value{}, fmt.Errorf("unknown kind %q", gp.Kind)
}

// formatMessage is one line of expected.txt: topic qos= retain= uplink=
// then payload=<raw> when the payload is printable UTF-8 on one line, else
// payload:q=<Go-quoted>.
func formatMessage(m bridge.Message) string {
	p := string(m.Payload)
	pay := "payload=" + p
	if !printable(p) {
		pay = "payload:q=" + strconv.Quote(p)
	}
	return fmt.Sprintf("%s qos=%d retain=%v uplink=%v %s", m.Topic, m.QoS, m.Retain, m.Uplink, pay)
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 10 {
		t.Fatalf("only %d golden cases", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			routes := loadRoutes(t, filepath.Join(dir, "routes.json"))
			frames := loadFrames(t, filepath.Join(dir, "frames.json"))
			e, err := New(goldenGateway, routes)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			var msgs []bridge.Message
			for i := range frames {
				f := &frames[i]
				msgs = e.Map(f, msgs[:0])
				fmt.Fprintf(&out, "# frame %d: %s/%s, %d points, %d messages\n", i, f.Adapter, f.Device, len(f.Points), len(msgs))
				for _, m := range msgs {
					out.WriteString(formatMessage(m))
					out.WriteByte('\n')
					checkMessage(t, m)
				}
			}
			path := filepath.Join(dir, "expected.txt")
			if *update {
				if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("output differs from %s (go test -run TestGolden -update to accept):\n%s", path, diff(string(want), got))
			}
		})
	}
}

// checkMessage checks what holds for every message, whatever the golden
// file says: JSON payloads are valid JSON, topics are publishable.
func checkMessage(t *testing.T, m bridge.Message) {
	t.Helper()
	if err := bridge.CheckTopicText(m.Topic, true); err != nil || m.Topic == "" {
		t.Errorf("topic %q: %v", m.Topic, err)
	}
	if bytes.HasPrefix(m.Payload, []byte(`{"time":`)) || bytes.HasPrefix(m.Payload, []byte(`[{"bn":`)) {
		if !json.Valid(m.Payload) {
			t.Errorf("invalid JSON on %s: %s", m.Topic, m.Payload)
		}
	}
	if cap(m.Payload) != len(m.Payload) {
		t.Errorf("payload on %s has spare capacity", m.Topic)
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
