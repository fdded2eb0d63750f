package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestIdentIndex(t *testing.T) {
	for i, k := range identKeys {
		if identIndex(k) != i {
			t.Errorf("identIndex(%q) = %d, want %d", k, identIndex(k), i)
		}
	}
	if identIndex("msg") != -1 {
		t.Error("msg is not identifying")
	}
}

// TestRepeatedErrorSuppressed: within the window only the first record is
// written; the first one after it counts the others.
func TestRepeatedErrorSuppressed(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	root, _ := New(&buf, Options{Journald: true, Now: clk.Now})
	log := root.With("adapter", "modbus")
	timeout := errors.New("i/o timeout")
	for range 5 {
		log.Warn("read failed", "device", "d1", "err", timeout)
		clk.Advance(time.Second)
	}
	clk.Advance(5 * time.Second) // 10 s after the first
	log.Warn("read failed", "device", "d1", "err", timeout)
	log.Warn("read failed", "device", "d1", "err", timeout)
	clk.Advance(10 * time.Second)
	log.Warn("read failed", "device", "d1", "err", timeout)
	clk.Advance(10 * time.Second)
	log.Warn("read failed", "device", "d1", "err", timeout) // nothing held back in between

	want := []string{
		`<4>level=WARN msg="read failed" adapter=modbus device=d1 err="i/o timeout"`,
		`<4>level=WARN msg="read failed" adapter=modbus device=d1 err="i/o timeout" suppressed=4`,
		`<4>level=WARN msg="read failed" adapter=modbus device=d1 err="i/o timeout" suppressed=1`,
		`<4>level=WARN msg="read failed" adapter=modbus device=d1 err="i/o timeout"`,
	}
	got := lines(&buf)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestIdentity: records differing in level, message, or the value of an
// identifying attribute do not suppress each other; other attributes do not
// count; an identifying attribute counts the same from With or the call.
func TestIdentity(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	root, _ := New(&buf, Options{Journald: true, Now: clk.Now})
	a := root.With("adapter", "a")
	for range 3 {
		a.Warn("m", "device", "d1")
		a.Warn("m", "device", "d2")
		a.Error("m", "device", "d1")
		a.Warn("other", "device", "d1")
		root.Warn("m", "device", "d1", "adapter", "b")
		a.Warn("m", "device", "d1", "err", "e1")
		a.Warn("m", "device", "d1", "err", "e2")
		a.Warn("m", "device", "d1", "port", 502)
		a.Warn("m", "device", "d1", "port", "502") // same text as 502
		a.Warn("m", "device", "d1", "peer", "10.0.0.1:5683")
		a.Warn("m", "device", "d1", "component", "uplink")
		a.Warn("m", "device", "d1", "unit", 7)              // not identifying
		a.With("device", "d1").Warn("m")                    // as a.Warn("m", "device", "d1")
		root.With("device", "d1").Warn("m", "adapter", "a") // likewise
		a.With("device", "d9").Warn("m", "device", "d1")    // the call's value wins
		a.WithGroup("g").Warn("m", "device", "d1")          // groups do not matter
	}
	want := []string{
		`<4>level=WARN msg=m adapter=a device=d1`,
		`<4>level=WARN msg=m adapter=a device=d2`,
		`<3>level=ERROR msg=m adapter=a device=d1`,
		`<4>level=WARN msg=other adapter=a device=d1`,
		`<4>level=WARN msg=m device=d1 adapter=b`,
		`<4>level=WARN msg=m adapter=a device=d1 err=e1`,
		`<4>level=WARN msg=m adapter=a device=d1 err=e2`,
		`<4>level=WARN msg=m adapter=a device=d1 port=502`,
		`<4>level=WARN msg=m adapter=a device=d1 peer=10.0.0.1:5683`,
		`<4>level=WARN msg=m adapter=a device=d1 component=uplink`,
	}
	got := lines(&buf)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestInfoAndDebugNotLimited(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	log, _ := New(&buf, Options{Level: "debug", Now: clk.Now})
	for range 5 {
		log.Info("i", "device", "d")
		log.Debug("d", "device", "d")
	}
	if n := len(lines(&buf)); n != 10 {
		t.Fatalf("%d lines, want 10", n)
	}
}

func TestBurst(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	log, _ := New(&buf, Options{Journald: true, Burst: 3, RepeatWindow: time.Minute, Now: clk.Now})
	for range 10 {
		log.Error("e")
		clk.Advance(time.Second)
	}
	clk.Advance(time.Minute)
	log.Error("e")
	want := []string{
		"<3>level=ERROR msg=e",
		"<3>level=ERROR msg=e",
		"<3>level=ERROR msg=e",
		"<3>level=ERROR msg=e suppressed=7",
	}
	if got := lines(&buf); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q", got)
	}
}

func TestLimitingOff(t *testing.T) {
	var buf bytes.Buffer
	log, ctl := New(&buf, Options{RepeatWindow: -1})
	for range 5 {
		log.Error("e")
	}
	if n := len(lines(&buf)); n != 5 {
		t.Fatalf("%d lines, want 5", n)
	}
	// Switched on at run time.
	buf.Reset()
	if err := ctl.Set(Options{}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		log.Error("e")
	}
	if n := len(lines(&buf)); n != 1 {
		t.Fatalf("%d lines, want 1", n)
	}
}

// TestUpstreamSuppressed: a record that already counts suppressed lines
// (bridge.Limiter, mqttcore's rateLimiter) gets one suppressed attribute
// with the sum, and the counts of records held back here are not lost.
func TestUpstreamSuppressed(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	log, _ := New(&buf, Options{Format: "json", Journald: true, Now: clk.Now})
	log.Warn("dropped", "suppressed", 3) // written as is
	log.Warn("dropped", "suppressed", 5) // held back: 1 + 5
	log.Warn("dropped")                  // held back: 1
	clk.Advance(10 * time.Second)
	log.Warn("dropped", "suppressed", uint64(2), "n", 1) // 2 + 7
	want := []string{
		`<4>{"level":"WARN","msg":"dropped","suppressed":3}`,
		`<4>{"level":"WARN","msg":"dropped","n":1,"suppressed":9}`,
	}
	if got := lines(&buf); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestKeyCap: the limiter never remembers more than MaxKeys identities, and
// evicts the least recently seen: a key logged often stays limited while
// many others come and go.
func TestKeyCap(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	log, ctl := New(&buf, Options{Journald: true, MaxKeys: 8, Now: clk.Now})
	h := log.Handler().(*Handler)
	for i := range 1000 {
		log.Warn("bad packet", "peer", fmt.Sprintf("10.0.%d.%d:5683", i/256, i%256))
		log.Warn("hot", "device", "d1")
		if n := h.s.lim.len(); n > 8 {
			t.Fatalf("%d keys remembered, cap 8", n)
		}
	}
	hot := strings.Count(buf.String(), "msg=hot")
	if hot != 1 {
		t.Fatalf("hot key written %d times, want 1 (evicted?)", hot)
	}
	if n := strings.Count(buf.String(), `msg="bad packet"`); n != 1000 {
		t.Fatalf("distinct peers: %d lines, want 1000", n)
	}
	// Lowering the cap at run time evicts.
	if err := ctl.Set(Options{Journald: true, MaxKeys: 2, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	if n := h.s.lim.len(); n != 2 {
		t.Fatalf("%d keys after lowering the cap to 2", n)
	}
	if err := ctl.Set(Options{Journald: true, MaxKeys: 1, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	log.Warn("hot", "device", "d1") // the most recent key survives
	log.Warn("x")                   // evicts it
	log.Warn("hot", "device", "d1") // new again
	if got := lines(&buf); len(got) != 2 || !strings.Contains(got[0], "msg=x") {
		t.Fatalf("got %q", got)
	}
}

// TestLimiterLRU checks the list directly.
func TestLimiterLRU(t *testing.T) {
	l := &limiter{max: 3}
	now := time.Unix(0, 0)
	for k := range uint64(3) {
		l.allow(k, now, time.Second, 1, 0)
	}
	l.allow(0, now, time.Second, 1, 0) // 0 most recent: order 0 2 1
	l.allow(3, now, time.Second, 1, 0) // evicts 1
	if _, ok := l.m[1]; ok {
		t.Fatal("1 not evicted")
	}
	var order []uint64
	for e := l.head; e != nil; e = e.next {
		order = append(order, e.key)
	}
	if fmt.Sprint(order) != "[3 0 2]" {
		t.Fatalf("order %v", order)
	}
	var back []uint64
	for e := l.tail; e != nil; e = e.prev {
		back = append(back, e.key)
	}
	if fmt.Sprint(back) != "[2 0 3]" {
		t.Fatalf("backwards %v", back)
	}
	if ok, _ := l.allow(0, now, time.Second, 1, 0); ok {
		t.Fatal("0 allowed twice in its window")
	}
}

func TestKeyUsesValueText(t *testing.T) {
	root, _ := New(&bytes.Buffer{}, Options{})
	h := root.Handler().(*Handler)
	key := func(args ...any) uint64 {
		r := slog.NewRecord(time.Time{}, slog.LevelWarn, "m", 0)
		r.Add(args...)
		k, _, _ := h.key(r)
		return k
	}
	if key("err", errors.New("x")) != key("err", "x") {
		t.Error("an error and its text differ")
	}
	if key("port", 502) != key("port", uint64(502)) {
		t.Error("int and uint 502 differ")
	}
	if key("device", "ab", "err", "c") == key("device", "a", "err", "bc") {
		t.Error("values run together")
	}
	if key("device", "") == key() {
		t.Error("empty and absent are the same")
	}
	if key("device", "d", "unit", 1) != key("device", "d", "unit", 2) {
		t.Error("a non-identifying attribute counts")
	}
}

// An upstream limiter's suppressed=0 is left out of the line; a count
// above zero stays.
func TestZeroSuppressedLeftOut(t *testing.T) {
	var buf bytes.Buffer
	log, _ := New(&buf, Options{})
	log.Warn("first", "adapter", "a", "suppressed", 0)
	log.Warn("second", "adapter", "a", "suppressed", 3)
	out := buf.String()
	if strings.Contains(out, "suppressed=0") || !strings.Contains(out, "suppressed=3") {
		t.Fatalf("output:\n%s", out)
	}
}
