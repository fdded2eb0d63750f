package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lines splits the output into lines, without the final newline.
func lines(buf *bytes.Buffer) []string {
	s := strings.TrimSuffix(buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	log, _ := New(&buf, Options{Now: clk.Now})
	log.With("adapter", "coap").Info("reading", "device", "d1", "value", 21.5)
	log.Debug("not shown")
	want := "time=2026-03-04T05:06:07.000Z level=INFO msg=reading adapter=coap device=d1 value=21.5\n"
	if got := buf.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestJSONFormat(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	log, _ := New(&buf, Options{Format: "json", Now: clk.Now})
	log.With("adapter", "modbus").WithGroup("req").Error("read failed", "unit", 3, "err", errors.New("timeout"))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	want := map[string]any{
		"time":    "2026-03-04T05:06:07Z",
		"level":   "ERROR",
		"msg":     "read failed",
		"adapter": "modbus",
		"req":     map[string]any{"unit": 3.0, "err": "timeout"},
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", m, want)
	}
}

func TestJournaldText(t *testing.T) {
	var buf bytes.Buffer
	log, _ := New(&buf, Options{Level: "debug", Journald: true})
	ctx := context.Background()
	log.Debug("d")
	log.Info("i", "adapter", "a")
	log.Warn("w")
	log.Error("e")
	log.Log(ctx, slog.LevelInfo+2, "info+2")
	log.Log(ctx, slog.LevelWarn-1, "warn-1")
	log.Log(ctx, slog.LevelError+4, "error+4")
	log.Log(ctx, slog.LevelDebug-4, "debug-4")
	want := []string{
		"<7>level=DEBUG msg=d",
		"<6>level=INFO msg=i adapter=a",
		"<4>level=WARN msg=w",
		"<3>level=ERROR msg=e",
		"<6>level=INFO+2 msg=info+2",
		"<6>level=INFO+3 msg=warn-1",
		"<3>level=ERROR+4 msg=error+4",
	}
	got := lines(&buf)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestJournaldJSON(t *testing.T) {
	var buf bytes.Buffer
	log, _ := New(&buf, Options{Format: "json", Journald: true})
	log.With("adapter", "uart").Warn("frame dropped", "port", "/dev/ttyUSB0")
	line := buf.String()
	if !strings.HasPrefix(line, `<4>{"level":"WARN",`) {
		t.Fatalf("no priority prefix: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "<4>")), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["time"]; ok {
		t.Fatalf("time under journald: %q", line)
	}
	if m["adapter"] != "uart" || m["port"] != "/dev/ttyUSB0" || m["msg"] != "frame dropped" {
		t.Fatalf("got %v", m)
	}
}

func TestNotJournaldHasTimeNoPrefix(t *testing.T) {
	var buf bytes.Buffer
	log, _ := New(&buf, Options{})
	log.Error("e")
	if !regexp.MustCompile(`^time=\S+ level=ERROR msg=e\n$`).MatchString(buf.String()) {
		t.Fatalf("got %q", buf.String())
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  string
	}{
		{"debug", "DIWE"},
		{"", "IWE"},
		{"info", "IWE"},
		{"warn", "WE"},
		{"error", "E"},
	} {
		var buf bytes.Buffer
		log, _ := New(&buf, Options{Level: tc.level, Journald: true})
		log.Debug("D")
		log.Info("I")
		log.Warn("W")
		log.Error("E")
		var got strings.Builder
		for _, l := range lines(&buf) {
			got.WriteString(l[strings.Index(l, "msg=")+4:])
		}
		if got.String() != tc.want {
			t.Errorf("level %q: got %q, want %q", tc.level, got.String(), tc.want)
		}
	}
}

func TestInvalidOptions(t *testing.T) {
	if err := (Options{Level: "verbose"}).Validate(); err == nil {
		t.Error("Validate accepted level verbose")
	}
	if err := (Options{Format: "xml"}).Validate(); err == nil {
		t.Error("Validate accepted format xml")
	}
	if err := (Options{Level: "warn", Format: "json"}).Validate(); err != nil {
		t.Error(err)
	}

	var buf bytes.Buffer
	log, ctl := New(&buf, Options{Level: "verbose", Format: "xml", Journald: true})
	got := lines(&buf)
	if len(got) != 1 || !strings.HasPrefix(got[0], "<4>level=WARN msg=\"invalid logging options") ||
		!strings.Contains(got[0], "verbose") || !strings.Contains(got[0], "xml") {
		t.Fatalf("got %q", got)
	}
	if o := ctl.Options(); o.Level != "info" || o.Format != "text" {
		t.Fatalf("fallback options %+v", o)
	}

	buf.Reset()
	if err := ctl.Set(Options{Level: "debug", Format: "yaml"}); err == nil {
		t.Fatal("Set accepted format yaml")
	}
	log.Debug("hidden")
	log.Info("shown")
	if got := lines(&buf); len(got) != 1 || got[0] != "<6>level=INFO msg=shown" {
		t.Fatalf("a refused Set changed something: %q", got)
	}
}

func TestOptionsRoundTrip(t *testing.T) {
	_, ctl := New(&bytes.Buffer{}, Options{})
	want := Options{Level: "info", Format: "text", RepeatWindow: DefaultRepeatWindow, Burst: DefaultBurst, MaxKeys: DefaultMaxKeys}
	if got := ctl.Options(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	o := ctl.Options()
	o.Level, o.Format, o.RepeatWindow = "error", "json", -1
	if err := ctl.Set(o); err != nil {
		t.Fatal(err)
	}
	if got := ctl.Options(); got.Level != "error" || got.Format != "json" || got.RepeatWindow != -1 {
		t.Fatalf("got %+v", got)
	}
}

// TestSetReachesDerivedLoggers: a level or format change applies to loggers
// made with With and WithGroup before it, which keep their attributes.
func TestSetReachesDerivedLoggers(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	root, ctl := New(&buf, Options{Now: clk.Now})
	dev := root.With("adapter", "x").WithGroup("g").With("k", 1)
	dev.Info("one", "v", 2)
	if err := ctl.Set(Options{Format: "json", Level: "warn", Journald: true, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	dev.Info("hidden")
	dev.Warn("two", "v", 3)
	root.Warn("three")
	later := dev.With("late", true) // derived after the change
	if err := ctl.Set(Options{Level: "debug", Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	dev.Debug("four")
	later.Debug("five")

	want := []string{
		`time=2026-03-04T05:06:07.000Z level=INFO msg=one adapter=x g.k=1 g.v=2`,
		`<4>{"level":"WARN","msg":"two","adapter":"x","g":{"k":1,"v":3}}`,
		`<4>{"level":"WARN","msg":"three"}`,
		`time=2026-03-04T05:06:07.000Z level=DEBUG msg=four adapter=x g.k=1`,
		`time=2026-03-04T05:06:07.000Z level=DEBUG msg=five adapter=x g.k=1 g.late=true`,
	}
	got := lines(&buf)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDerivedCacheRebuiltOncePerChange: a derived handler builds its inner
// handler once per generation, not per record.
func TestDerivedCacheRebuiltOncePerChange(t *testing.T) {
	root, ctl := New(&bytes.Buffer{}, Options{})
	h := root.With("adapter", "x").Handler().(*Handler)
	root.Info("warm")
	slog.New(h).Info("a")
	b1 := h.built.Load()
	slog.New(h).Info("b")
	if h.built.Load() != b1 {
		t.Fatal("rebuilt without a change")
	}
	if err := ctl.Set(Options{Level: "debug"}); err != nil { // same format: no rebuild
		t.Fatal(err)
	}
	slog.New(h).Info("c")
	if h.built.Load() != b1 {
		t.Fatal("rebuilt after a level-only change")
	}
	if err := ctl.Set(Options{Format: "json"}); err != nil {
		t.Fatal(err)
	}
	slog.New(h).Info("d")
	if b2 := h.built.Load(); b2 == b1 || b2.gen != b1.gen+1 {
		t.Fatal("not rebuilt after a format change")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorReturned(t *testing.T) {
	for _, jd := range []bool{false, true} {
		log, _ := New(failingWriter{}, Options{Journald: jd})
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "x", 0)
		if err := log.Handler().Handle(context.Background(), r); err == nil {
			t.Errorf("journald=%v: no error from a failing writer", jd)
		}
	}
}

// TestConcurrent logs from many goroutines through derived loggers while the
// format and level change; the writer is not safe for concurrent use, so
// the race detector catches two Writes at once, and every Write must be
// exactly one whole line.
func TestConcurrent(t *testing.T) {
	w := &lineCheckWriter{}
	root, ctl := New(w, Options{Level: "debug"})
	const goroutines, perG = 8, 400
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var setter sync.WaitGroup
	setter.Go(func() {
		formats := []string{"json", "text"}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := ctl.Set(Options{Format: formats[i%2], Level: "debug", Journald: i%3 == 0}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for g := range goroutines {
		wg.Go(func() {
			l := root.With("adapter", fmt.Sprintf("a%d", g)).WithGroup("grp")
			for i := range perG {
				l.Info("reading", "i", i)
				l.Warn("flaky", "device", fmt.Sprintf("d%d", i%50), "err", "timeout")
			}
		})
	}
	wg.Wait()
	close(stop)
	setter.Wait()
	if w.bad != "" {
		t.Fatalf("malformed write: %q", w.bad)
	}
	if w.json == 0 || w.text == 0 {
		t.Fatalf("%d JSON lines, %d text lines: the format never changed mid-run", w.json, w.text)
	}
	if w.writes < goroutines*perG {
		t.Fatalf("%d writes, want at least %d", w.writes, goroutines*perG)
	}
}

// lineCheckWriter is deliberately unsynchronized.
type lineCheckWriter struct {
	writes, json, text int
	bad                string
}

var (
	prefixRE = regexp.MustCompile(`^<[3467]>`)
	textRE   = regexp.MustCompile(`^(time=\S+ )?level=\S+ msg=\S+ adapter=a\d grp\.\S+=\S+( grp\.\S+=\S+)?\n$`)
)

func (w *lineCheckWriter) Write(p []byte) (int, error) {
	w.writes++
	line := prefixRE.ReplaceAll(p, nil)
	ok := textRE.Match(line)
	if line[0] == '{' {
		ok = bytes.Count(line, []byte("\n")) == 1 && json.Valid(line)
		w.json++
	} else {
		w.text++
	}
	if !ok && w.bad == "" {
		w.bad = string(p)
	}
	return len(p), nil
}

func TestParseLevel(t *testing.T) {
	for _, l := range []slog.Level{-8, -4, -3, 0, 1, 2, 4, 5, 8, 12, 100, -100} {
		got, ok := parseLevel([]byte(l.String()))
		if !ok || got != l {
			t.Errorf("parseLevel(%q) = %v, %v; want %v", l.String(), got, ok, l)
		}
	}
	for _, s := range []string{"", "info", "WARNING", "INFO+", "INFO+x", "INFO2", "ERROR+1234567"} {
		if _, ok := parseLevel([]byte(s)); ok {
			t.Errorf("parseLevel(%q) accepted", s)
		}
	}
}
