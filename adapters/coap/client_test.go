package coap

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// ---- the freshness rule ----

func TestObserveFresh(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const max24 = 1<<24 - 1
	tests := []struct {
		name   string
		v1, v2 uint32
		after  time.Duration
		fresh  bool
	}{
		{"next", 5, 6, time.Second, true},
		{"jump below 2^23", 5, 5 + 1<<23 - 1, time.Second, true},
		{"jump of exactly 2^23", 5, 5 + 1<<23, time.Second, false},
		{"same", 7, 7, time.Second, false},
		{"older", 7, 6, time.Second, false},
		{"much older is a wrap-around: newer", 1<<23 + 10, 9, time.Second, true},
		{"wrap from the top", max24, 0, time.Second, true},
		{"wrap 2^24-3 to 2", max24 - 2, 2, time.Second, true},
		{"back across the wrap: older", 2, max24 - 2, time.Second, false},
		{"older by exactly 2^23", 1 << 23, 0, time.Second, false},
		{"older, but 128 s later", 7, 6, 128*time.Second + time.Millisecond, true},
		{"same, but 128 s later", 7, 7, 129 * time.Second, true},
		{"older, exactly 128 s later", 7, 6, 128 * time.Second, false},
		{"bits above 24 are ignored", 1<<24 + 5, 6, time.Second, true},
	}
	for _, tt := range tests {
		if got := observeFresh(tt.v1, t0, tt.v2, t0.Add(tt.after)); got != tt.fresh {
			t.Errorf("%s: observeFresh(%d, %d, +%v) = %v, want %v", tt.name, tt.v1, tt.v2, tt.after, got, tt.fresh)
		}
	}

	var s observeSeq
	now := t0
	for i, step := range []struct {
		v     uint32
		fresh bool
	}{{100, true}, {99, false}, {102, true}, {101, false}, {102, false}, {103, true}} {
		now = now.Add(time.Second)
		if _, got := s.accept(step.v, now); got != step.fresh {
			t.Errorf("sequence step %d: accept(%d) = %v, want %v", i, step.v, got, step.fresh)
		}
	}
	if s.v != 103 {
		t.Errorf("last accepted %d, want 103", s.v)
	}
}

func TestDeviceConfig(t *testing.T) {
	d, err := newDeviceClient(config.CoAPDevice{Device: "d", URL: "coap://[::1]/a/b?x=1&y=2", Observe: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.hostport != "[::1]:5683" || d.path != "/a/b" || len(d.opts) != 2 || string(d.opts[1].Value) != "y=2" ||
		d.point != "value" || d.interval != 10*time.Second || d.secure {
		t.Errorf("device %+v", d)
	}
	d, err = newDeviceClient(config.CoAPDevice{Device: "d", URL: "coaps://h", PSKIdentity: "i", PSKKey: "0a0b"})
	if err != nil {
		t.Fatal(err)
	}
	if d.hostport != "h:5684" || d.path != "/" || !d.secure || !bytes.Equal(d.psk, []byte{10, 11}) {
		t.Errorf("device %+v", d)
	}
	for _, c := range []struct {
		dev config.CoAPDevice
		msg string
	}{
		{config.CoAPDevice{Device: "d", URL: "http://h/"}, "coap://"},
		{config.CoAPDevice{Device: "d", URL: "coap:///x"}, "no host"},
		{config.CoAPDevice{Device: "d", URL: "coaps://h/x"}, "psk_identity"},
		{config.CoAPDevice{Device: "d", URL: "coaps://h/x", PSKIdentity: "i", PSKKey: "zz"}, "hex"},
		{config.CoAPDevice{Device: "d", URL: "coap://h/x", PSKIdentity: "i"}, "coaps://"},
		{config.CoAPDevice{Device: "set", URL: "coap://h/x"}, "reserved"},
		{config.CoAPDevice{Device: "d", URL: "coap://h/x", Point: "time"}, "point"},
		{config.CoAPDevice{Device: "d", URL: "coap://h/x", CommandPath: "x"}, "command_path"},
	} {
		if _, err := newDeviceClient(c.dev); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %v, want an error about %q", c.dev, err, c.msg)
		}
	}
	if _, err := New(config.CoAP{Devices: []config.CoAPDevice{{Device: "x", URL: "coap://h/"}, {Device: "x", URL: "coap://h/"}}}, Deps{}); err == nil ||
		!strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate device: %v", err)
	}
	a, err := New(config.CoAP{Devices: []config.CoAPDevice{{Device: "x", URL: "coap://h/"}}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.Listen != "" || a.HasCommandDevices() {
		t.Errorf("a block with devices only has listen %q", a.cfg.Listen)
	}
	_, err = a.Command(context.Background(), bridge.Command{Device: "x", Values: []bridge.PointValue{{Name: "a", Value: bridge.Int(1)}}})
	if err == nil || err.Error() != "device x takes no commands (no command_path)" {
		t.Errorf("command to a device without command_path: %v", err)
	}
	_, err = a.Command(context.Background(), bridge.Command{Device: "y"})
	if err == nil || err.Error() != "no device y on adapter coap" {
		t.Errorf("command to an unknown device: %v", err)
	}
}

func TestDiagnostic(t *testing.T) {
	for in, want := range map[string]string{
		"Not Found":              "Not Found",
		" line\nbreak\x00 ":      "line break",
		"\xff":                   "\uFFFD",
		strings.Repeat("é", 300): strings.Repeat("é", 100) + "…",
		"":                       "",
	} {
		if got := diagnostic([]byte(in)); got != want {
			t.Errorf("diagnostic(%q) = %q, want %q", in, got, want)
		}
	}
}

// ---- harness: an adapter with devices only, a bus consumer, availability ----

type devHarness struct {
	t   *testing.T
	a   *Adapter
	bus *bridge.Bus
	log *logTap

	mu     sync.Mutex
	frames []bridge.Frame
	avail  []string // "device=online"
	cond   chan struct{}
}

// fastTiming are timings that keep tests short.
var fastTiming = devTiming{
	ackTimeout: 200 * time.Millisecond, maxRetransmit: 2, request: 3 * time.Second, handshake: 2 * time.Second,
	backoffMin: 100 * time.Millisecond, backoffMax: time.Second, silenceMargin: 200 * time.Millisecond,
	cancel: time.Second, cancelAtStop: 300 * time.Millisecond, housekeeping: 50 * time.Millisecond,
}

func startDevices(t *testing.T, timing devTiming, devs ...config.CoAPDevice) *devHarness {
	t.Helper()
	h := &devHarness{t: t, bus: bridge.NewBus(64), log: newLogTap(t), cond: make(chan struct{}, 1)}
	a, err := New(config.CoAP{Name: "dev", Listen: "", Devices: devs}, Deps{
		Log:        h.log.logger,
		AckTimeout: 2 * time.Second,
		Availability: func(device string, online bool) {
			h.mu.Lock()
			h.avail = append(h.avail, fmt.Sprintf("%s=%v", device, map[bool]string{true: "online", false: "offline"}[online]))
			h.mu.Unlock()
			h.poke()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.devs.timing = timing
	h.a = a
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for f := range h.bus.Frames() {
			h.mu.Lock()
			h.frames = append(h.frames, f)
			h.mu.Unlock()
			f.Resolve(nil)
			h.poke()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx, h.bus, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-runErr:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		start := time.Now()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after cancel")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Run took %v to stop", d)
		}
		h.bus.Close()
		<-consumed
	})
	return h
}

func (h *devHarness) poke() {
	select {
	case h.cond <- struct{}{}:
	default:
	}
}

// waitFor polls ok (under the lock) until it is true or d passes.
func (h *devHarness) waitFor(what string, d time.Duration, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		h.mu.Lock()
		done := ok()
		h.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.t.Fatalf("%s: not within %v; frames %d, availability %v", what, d, len(h.frames), h.avail)
		}
		select {
		case <-h.cond:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// framesOf returns the frames of device so far (call under no lock).
func (h *devHarness) framesOf(device string) []bridge.Frame {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []bridge.Frame
	for _, f := range h.frames {
		if f.Device == device {
			out = append(out, f)
		}
	}
	return out
}

func (h *devHarness) countFrames(device string) int {
	n := 0
	for _, f := range h.frames {
		if f.Device == device {
			n++
		}
	}
	return n
}

// waitAvail waits until device's availability events end with want
// (after at least n events).
func (h *devHarness) waitAvail(device, want string, d time.Duration) {
	h.t.Helper()
	h.waitFor(device+" "+want, d, func() bool {
		for i := len(h.avail) - 1; i >= 0; i-- {
			if strings.HasPrefix(h.avail[i], device+"=") {
				return h.avail[i] == device+"="+want
			}
		}
		return false
	})
}

func (h *devHarness) availOf(device string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.avail {
		if strings.HasPrefix(e, device+"=") {
			out = append(out, strings.TrimPrefix(e, device+"="))
		}
	}
	return out
}

// stats waits up to 2 s for device's counters to satisfy ok (counters
// are updated just after the frames and availability they count), and
// returns them.
func (h *devHarness) stats(device string, ok func(DeviceStats) bool) DeviceStats {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s, found := h.a.DeviceStats(device)
		if !found {
			h.t.Fatalf("no stats for %s", device)
		}
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logTap is a slog handler that keeps the lines (and logs them to t).
type logTap struct {
	logger *slog.Logger
	mu     sync.Mutex
	buf    bytes.Buffer
}

func newLogTap(t *testing.T) *logTap {
	l := &logTap{}
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	l.logger = slog.New(slog.NewTextHandler(tapWriter{l, w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

type tapWriter struct {
	l *logTap
	w *testWriter
}

func (tw tapWriter) Write(p []byte) (int, error) {
	tw.l.mu.Lock()
	tw.l.buf.Write(p)
	tw.l.mu.Unlock()
	return tw.w.Write(p)
}

func (l *logTap) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logTap) waitFor(t *testing.T, s string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(l.String(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q within %v", s, d)
	return ""
}

// ---- a scripted device on a raw UDP socket ----

type fakeDevice struct {
	t    *testing.T
	pc   *net.UDPConn
	in   chan fakeMsg
	done chan struct{}
}

type fakeMsg struct {
	m    *pool.Message
	from *net.UDPAddr
}

func startFakeDevice(t *testing.T) *fakeDevice {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDevice{t: t, pc: pc, in: make(chan fakeMsg, 256), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := pool.NewMessage(context.Background())
			if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, buf[:n]); err != nil {
				continue
			}
			select {
			case f.in <- fakeMsg{m, from}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		<-f.done
	})
	return f
}

func (f *fakeDevice) url(path string) string { return "coap://" + f.pc.LocalAddr().String() + path }

// next returns the next request (ACKs and RSTs from the client are
// skipped), failing after d.
func (f *fakeDevice) next(d time.Duration) fakeMsg {
	f.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-f.in:
			if m.m.Code() >= codes.GET && m.m.Code() <= codes.IPATCH {
				return m
			}
		case <-timeout:
			f.t.Fatalf("fake device: no request within %v", d)
		}
	}
}

type fakeResp struct {
	typ     message.Type
	code    codes.Code
	mid     int32
	token   []byte
	observe int64 // -1: none
	maxAge  int64 // -1: none
	payload string
}

func (f *fakeDevice) send(to *net.UDPAddr, r fakeResp) {
	f.t.Helper()
	m := pool.NewMessage(context.Background())
	m.SetType(r.typ)
	m.SetCode(r.code)
	m.SetMessageID(r.mid)
	m.SetToken(r.token)
	if r.observe >= 0 {
		m.SetObserve(uint32(r.observe))
	}
	if r.maxAge >= 0 {
		m.SetOptionUint32(message.MaxAge, uint32(r.maxAge))
	}
	if r.payload != "" {
		m.SetContentFormat(message.TextPlain)
		m.SetBody(bytes.NewReader([]byte(r.payload)))
	}
	data, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.pc.WriteToUDP(data, to); err != nil {
		f.t.Fatal(err)
	}
}

func observeOf(m *pool.Message) int64 {
	v, err := m.Observe()
	if err != nil {
		return -1
	}
	return int64(v)
}

func intValues(fs []bridge.Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Points[0].Value.AppendText(nil)))
	}
	return out
}

// Reordered notifications older than the last one taken are dropped and
// counted; a retransmitted confirmable notification is not a second frame
// and not stale; notifications across the 24-bit wrap are taken.
func TestObserveDropsStaleNotifications(t *testing.T) {
	t.Parallel()
	dev := startFakeDevice(t)
	timing := fastTiming
	h := startDevices(t, timing, config.CoAPDevice{Device: "s", URL: dev.url("/temp"), Observe: true, Interval: config.Duration(time.Minute), Point: "t"})
	reg := dev.next(5 * time.Second)
	if observeOf(reg.m) != 0 || reg.m.Code() != codes.GET {
		t.Fatalf("registration %v", reg.m)
	}
	if p, _ := reg.m.Path(); p != "/temp" {
		t.Fatalf("path %q", p)
	}
	tok := reg.m.Token()
	to := reg.from
	dev.send(to, fakeResp{typ: message.Acknowledgement, code: codes.Content, mid: reg.m.MessageID(), token: tok, observe: 10, maxAge: 60, payload: "1"})
	h.waitAvail("s", "online", 5*time.Second)
	script := []struct {
		typ     message.Type
		mid     int32
		observe int64
		payload string
	}{
		{message.NonConfirmable, 100, 12, "2"},
		{message.NonConfirmable, 101, 11, "99"}, // stale: 11 < 12
		{message.Confirmable, 102, 13, "3"},
		{message.Confirmable, 102, 13, "3"},             // retransmission
		{message.NonConfirmable, 103, 13 + 1<<23, "98"}, // stale: 2^23 or more ahead is behind
		{message.NonConfirmable, 104, 1<<24 - 1, "97"},  // stale, likewise
	}
	for _, s := range script {
		dev.send(to, fakeResp{typ: s.typ, code: codes.Content, mid: s.mid, token: tok, observe: s.observe, maxAge: 60, payload: s.payload})
		time.Sleep(20 * time.Millisecond)
	}
	dev.send(to, fakeResp{typ: message.NonConfirmable, code: codes.Content, mid: 105, token: tok, observe: 14, maxAge: 60, payload: "4"})
	h.waitFor("4 frames", 5*time.Second, func() bool { return h.countFrames("s") >= 4 })
	time.Sleep(100 * time.Millisecond)
	fs := h.framesOf("s")
	if got := strings.Join(intValues(fs), ","); got != "1,2,3,4" {
		t.Fatalf("values %s, want 1,2,3,4", got)
	}
	if fs[0].Adapter != "dev" || fs[0].Points[0].Name != "t" || fs[0].Points[0].Value.Kind != bridge.KindInt {
		t.Errorf("frame %+v", fs[0])
	}
	want := func(st DeviceStats) bool {
		return st.Stale == 3 && st.Notifications == 4 && st.Frames == 4 && st.Registrations == 1
	}
	if st := h.stats("s", want); !want(st) {
		t.Errorf("stats %+v, want 3 stale, 4 notifications and frames, 1 registration", st)
	}
}

// The 24-bit wrap-around on a live observation, and a registration
// renewed every interval: the old one is cancelled (GET with Observe 1
// and the old token), notifications of the new one flow.
func TestObserveWrapAndIntervalReregistration(t *testing.T) {
	t.Parallel()
	dev := startFakeDevice(t)
	// A scripted device answers only what the test sends: give a request
	// time to wait for its answer on a loaded machine (make test runs
	// packages in parallel) before it counts as unanswered.
	tm := fastTiming
	tm.ackTimeout = time.Second
	h := startDevices(t, tm, config.CoAPDevice{Device: "w", URL: dev.url("/x"), Observe: true, Interval: config.Duration(700 * time.Millisecond)})
	reg := dev.next(5 * time.Second)
	dev.send(reg.from, fakeResp{typ: message.Acknowledgement, code: codes.Content, mid: reg.m.MessageID(), token: reg.m.Token(), observe: 1<<24 - 2, maxAge: 60, payload: "1"})
	dev.send(reg.from, fakeResp{typ: message.NonConfirmable, code: codes.Content, mid: 200, token: reg.m.Token(), observe: 1, maxAge: 60, payload: "2"})
	h.waitFor("2 frames", 5*time.Second, func() bool { return h.countFrames("w") >= 2 })

	re := dev.next(3 * time.Second) // after the interval
	if observeOf(re.m) != 0 || bytes.Equal(re.m.Token(), reg.m.Token()) {
		t.Fatalf("re-registration %v", re.m)
	}
	dev.send(re.from, fakeResp{typ: message.Acknowledgement, code: codes.Content, mid: re.m.MessageID(), token: re.m.Token(), observe: 5, maxAge: 60, payload: "3"})
	cancel := dev.next(3 * time.Second)
	if observeOf(cancel.m) != 1 || !bytes.Equal(cancel.m.Token(), reg.m.Token()) {
		t.Fatalf("deregistration %v, want GET Observe 1 with the first token", cancel.m)
	}
	dev.send(cancel.from, fakeResp{typ: message.Acknowledgement, code: codes.Content, mid: cancel.m.MessageID(), token: cancel.m.Token(), observe: -1, maxAge: -1, payload: "x"})
	// A late notification of the old registration is not taken.
	dev.send(reg.from, fakeResp{typ: message.NonConfirmable, code: codes.Content, mid: 201, token: reg.m.Token(), observe: 2, maxAge: 60, payload: "old"})
	dev.send(re.from, fakeResp{typ: message.NonConfirmable, code: codes.Content, mid: 202, token: re.m.Token(), observe: 6, maxAge: 60, payload: "4"})
	h.waitFor("4 frames", 5*time.Second, func() bool { return h.countFrames("w") >= 4 })
	time.Sleep(100 * time.Millisecond)
	if got := strings.Join(intValues(h.framesOf("w")), ","); got != "1,2,3,4" {
		t.Fatalf("values %s, want 1,2,3,4", got)
	}
	if st := h.stats("w", func(st DeviceStats) bool { return st.Registrations == 2 }); st.Registrations != 2 || st.Stale != 0 {
		t.Errorf("stats %+v", st)
	}
}

// No notification within Max-Age (+ margin): the client registers again by
// itself. A registration answered with an RST or an error code fails at
// once: the device is offline, the error names the code and diagnostic; it
// comes back online when the device answers again.
func TestObserveSilenceResetErrorsAndNotObservable(t *testing.T) {
	t.Parallel()
	dev := startFakeDevice(t)
	h := startDevices(t, fastTiming,
		config.CoAPDevice{Device: "q", URL: dev.url("/q"), Observe: true, Interval: config.Duration(time.Minute)})
	// Max-Age 1: silent after 1 s + max(200 ms, 1 s / 4).
	reg := dev.next(5 * time.Second)
	start := time.Now()
	dev.send(reg.from, fakeResp{typ: message.Acknowledgement, code: codes.Content, mid: reg.m.MessageID(), token: reg.m.Token(), observe: 3, maxAge: 1, payload: "1"})
	re := dev.next(5 * time.Second)
	if d := time.Since(start); d < 1200*time.Millisecond || d > 2500*time.Millisecond || observeOf(re.m) != 0 {
		t.Fatalf("re-registration after %v (want about 1.25 s of silence): %v", d, re.m)
	}

	// RST: fails at once (not after the 3 s request timeout).
	t1 := time.Now()
	dev.send(re.from, fakeResp{typ: message.Reset, code: codes.Empty, mid: re.m.MessageID(), observe: -1, maxAge: -1})
	h.waitAvail("q", "offline", 2*time.Second)
	if d := time.Since(t1); d > time.Second {
		t.Errorf("RST took %v to fail the registration", d)
	}
	h.log.waitFor(t, "reset (RST)", time.Second)

	// An error code: still offline, with the code and the diagnostic.
	e := dev.next(3 * time.Second)
	dev.send(e.from, fakeResp{typ: message.Acknowledgement, code: codes.NotFound, mid: e.m.MessageID(), token: e.m.Token(), observe: -1, maxAge: -1, payload: "no such sensor"})
	h.log.waitFor(t, "device answered 4.04 Not Found: no such sensor", 3*time.Second)
	// Back.
	ok := dev.next(3 * time.Second)
	dev.send(ok.from, fakeResp{typ: message.Acknowledgement, code: codes.Content, mid: ok.m.MessageID(), token: ok.m.Token(), observe: 9, maxAge: 60, payload: "5"})
	h.waitAvail("q", "online", 3*time.Second)
	h.waitFor("2 frames", 3*time.Second, func() bool { return h.countFrames("q") >= 2 })
	if got := h.availOf("q"); strings.Join(got, ",") != "online,offline,online" {
		t.Errorf("availability %v", got)
	}
	if got := strings.Join(intValues(h.framesOf("q")), ","); got != "1,5" {
		t.Errorf("values %s, want 1,5", got)
	}
	if st := h.stats("q", func(st DeviceStats) bool { return st.Registrations == 2 }); st.Registrations != 2 || st.Failures != 2 {
		t.Errorf("stats %+v, want 2 registrations, 2 failures", st)
	}
}

// A resource that answers without Observe is not observable: the answer is
// a reading, it is asked again every interval, and stays online.
func TestObserveNotObservable(t *testing.T) {
	t.Parallel()
	dev2 := startFakeDevice(t)
	h := startDevices(t, fastTiming,
		config.CoAPDevice{Device: "n", URL: dev2.url("/n"), Observe: true, Interval: config.Duration(400 * time.Millisecond)})
	var last time.Time
	for i := range 3 {
		r := dev2.next(3 * time.Second)
		if observeOf(r.m) != 0 {
			t.Fatalf("request %v", r.m)
		}
		if d := time.Since(last); i > 0 && d < 300*time.Millisecond {
			t.Fatalf("not-observable resource asked again after %v, want the 400 ms interval", d)
		}
		dev2.send(r.from, fakeResp{typ: message.Acknowledgement, code: codes.Content, mid: r.m.MessageID(), token: r.m.Token(), observe: -1, maxAge: -1, payload: strconv.Itoa(i)})
		last = time.Now()
	}
	h.waitFor("3 frames", 3*time.Second, func() bool { return h.countFrames("n") >= 3 })
	h.log.waitFor(t, "not observable", time.Second)
	if got := h.availOf("n"); strings.Join(got, ",") != "online" {
		t.Errorf("availability of a not-observable resource %v", got)
	}
}

// ---- libcoap's coap-server as the device ----

type coapServer struct {
	t    *testing.T
	bin  string
	args []string
	port int // plain CoAP; DTLS on port+1 for the -openssl server
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

// freeUDPPortPair returns a port p on 127.0.0.1 with p and p+1 free.
func freeUDPPortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		_ = a.Close()
		if err == nil {
			_ = b.Close()
			if p != 5683 && p != 5684 && p+1 != 5683 {
				return p
			}
		}
	}
	t.Fatal("no pair of free UDP ports")
	return 0
}

func startCoAPServer(t *testing.T, bin string, args ...string) *coapServer {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s is required (apt-get install libcoap3-bin): %v", bin, err)
	}
	s := &coapServer{t: t, bin: path, port: freeUDPPortPair(t)}
	s.args = append([]string{"-A", "127.0.0.1", "-p", strconv.Itoa(s.port)}, args...)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *coapServer) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.cmd, s.out = cmd, out
	s.mu.Unlock()
	// Ready when it answers a CoAP ping (an empty CON) with an RST.
	deadline := time.Now().Add(5 * time.Second)
	for !coapPing(fmt.Sprintf("127.0.0.1:%d", s.port)) {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not start", s.bin)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: the device vanishes without a word).
func (s *coapServer) stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func coapPing(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Write([]byte{0x40, 0, 0x12, 0x34}); err != nil {
		return false
	}
	b := make([]byte, 64)
	n, err := c.Read(b)
	return err == nil && n >= 4 && b[0]>>4&3 == 3
}

func (s *coapServer) url(scheme, path string) string {
	port := s.port
	if scheme == "coaps" {
		port++
	}
	return fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, path)
}

// isClock checks a payload of coap-server's /time: "Nov 26 02:40:01".
func isClock(v bridge.Value) bool {
	_, err := time.Parse("Jan _2 15:04:05", v.Str)
	return v.Kind == bridge.KindString && err == nil
}

// Observe /time on libcoap's server: notifications become frames (the
// payload has no Content-Format: text, a string point); the server is
// killed, the device goes offline; it is restarted on the same port and the
// client registers again by itself: online, notifications flow again.
func TestClientObservesLibcoapAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := startCoAPServer(t, "coap-server-notls")
	timing := fastTiming
	h := startDevices(t, timing, config.CoAPDevice{Device: "clock", URL: srv.url("coap", "/time"), Observe: true, Interval: config.Duration(2 * time.Second), Point: "now"})
	h.waitFor("3 notifications", 6*time.Second, func() bool { return h.countFrames("clock") >= 3 })
	h.waitAvail("clock", "online", time.Second)
	for _, f := range h.framesOf("clock") {
		if len(f.Points) != 1 || f.Points[0].Name != "now" || !isClock(f.Points[0].Value) || f.Adapter != "dev" {
			t.Fatalf("frame %+v", f)
		}
	}

	srv.stop()
	killed := time.Now()
	h.waitAvail("clock", "offline", 5*time.Second)
	t.Logf("offline %v after the kill", time.Since(killed).Round(time.Millisecond))
	before := h.countFrames("clock")
	srv.start()
	restarted := time.Now()
	h.waitAvail("clock", "online", 5*time.Second)
	h.waitFor("notifications again", 5*time.Second, func() bool { return h.countFrames("clock") >= before+2 })
	t.Logf("online and notifying %v after the restart", time.Since(restarted).Round(time.Millisecond))
	if got := h.availOf("clock"); strings.Join(got, ",") != "online,offline,online" {
		t.Errorf("availability %v", got)
	}
	if st := h.stats("clock", func(st DeviceStats) bool { return st.Registrations >= 2 }); st.Registrations < 2 || st.Failures < 1 {
		t.Errorf("stats %+v", st)
	}
}

// observe = false: a GET at start, then every interval.
func TestClientPollsLibcoap(t *testing.T) {
	t.Parallel()
	srv := startCoAPServer(t, "coap-server-notls")
	start := time.Now()
	h := startDevices(t, fastTiming, config.CoAPDevice{Device: "p", URL: srv.url("coap", "/time"), Observe: false, Interval: config.Duration(300 * time.Millisecond)})
	h.waitFor("4 polls", 5*time.Second, func() bool { return h.countFrames("p") >= 4 })
	if d := time.Since(start); d < 850*time.Millisecond {
		t.Errorf("4 polls within %v: not every 300 ms", d)
	}
	h.waitAvail("p", "online", time.Second)
	if st := h.stats("p", func(st DeviceStats) bool { return st.Polls >= 4 }); st.Registrations != 0 || st.Polls < 4 {
		t.Errorf("stats %+v", st)
	}
	if f := h.framesOf("p")[0]; f.Points[0].Name != "value" || !isClock(f.Points[0].Value) {
		t.Errorf("frame %+v", f)
	}
	srv.stop()
	h.waitAvail("p", "offline", 5*time.Second)
}

// Commands: a PUT of a JSON object to command_path; it lands on the server
// (read back with coap-client); a refused PUT is an error with the code and
// the server's diagnostic.
func TestClientCommandsLibcoap(t *testing.T) {
	t.Parallel()
	srv := startCoAPServer(t, "coap-server-notls")
	h := startDevices(t, fastTiming,
		config.CoAPDevice{Device: "act", URL: srv.url("coap", "/time"), Observe: true, Interval: config.Duration(10 * time.Second), CommandPath: "/example_data"},
		config.CoAPDevice{Device: "bad", URL: srv.url("coap", "/time"), Observe: false, Interval: config.Duration(10 * time.Second), CommandPath: "/nosuch"},
		config.CoAPDevice{Device: "ro", URL: srv.url("coap", "/time"), Observe: false, Interval: config.Duration(10 * time.Second)},
		config.CoAPDevice{Device: "cb", URL: srv.url("coap", "/time"), Observe: false, Interval: config.Duration(10 * time.Second), CommandPath: "/example_data", CommandFormat: "cbor"},
		config.CoAPDevice{Device: "po", URL: srv.url("coap", "/time"), Observe: false, Interval: config.Duration(10 * time.Second), CommandPath: "/example_data", CommandMethod: "POST"},
	)
	if !h.a.HasCommandDevices() {
		t.Fatal("HasCommandDevices false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vals := []bridge.PointValue{{Name: "setpoint", Value: bridge.Number(21.5)}, {Name: "on", Value: bridge.Bool(true)}, {Name: "mode", Value: bridge.String("eco")}}
	got, err := h.a.Command(ctx, bridge.Command{Adapter: "dev", Device: "act", Values: vals})
	if err != nil {
		t.Fatalf("command: %v", err)
	}
	if len(got) != 3 || got[0].Name != "setpoint" {
		t.Errorf("values %v", got)
	}
	res := coapClient(t, "-m", "get", srv.url("coap", "/example_data"))
	if res.Code != "2.05" || res.Payload != `{"setpoint":21.5,"on":true,"mode":"eco"}` {
		t.Fatalf("/example_data after the command: %s %q", res.Code, res.Payload)
	}
	if !strings.Contains(res.Options, "application/json") {
		t.Errorf("stored content format: %s", res.Options)
	}

	_, err = h.a.Command(ctx, bridge.Command{Adapter: "dev", Device: "bad", Values: vals[:1]})
	if err == nil || err.Error() != "device answered 4.04 Not Found: Not Found" {
		t.Errorf("refused command: %v", err)
	}
	_, err = h.a.Command(ctx, bridge.Command{Adapter: "dev", Device: "ro", Values: vals[:1]})
	if err == nil || err.Error() != "device ro takes no commands (no command_path)" {
		t.Errorf("device without command_path: %v", err)
	}
	_, err = h.a.Command(ctx, bridge.Command{Adapter: "dev", Device: "nope", Values: vals[:1]})
	if err == nil || err.Error() != "no device nope on adapter dev" {
		t.Errorf("unknown device: %v", err)
	}

	// command_format = "cbor": a CBOR map, Content-Format 60, in the
	// command's order; it decodes back to the same values.
	if _, err := h.a.Command(ctx, bridge.Command{Adapter: "dev", Device: "cb", Values: vals}); err != nil {
		t.Fatalf("cbor command: %v", err)
	}
	bin, err := coapClientBinary()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "body")
	if b, err := exec.Command(bin, "-m", "get", "-o", out, srv.url("coap", "/example_data")).CombinedOutput(); err != nil {
		t.Fatalf("coap-client: %v %s", err, b)
	}
	got2, err := os.ReadFile(out)
	want := "\xa3\x68setpoint\xfb\x40\x35\x80\x00\x00\x00\x00\x00\x62on\xf5\x64mode\x63eco"
	if err != nil || string(got2) != want {
		t.Fatalf("/example_data after a CBOR command: %q (%v), want %q", got2, err, want)
	}
	_, _, pts, err := Decode("/cb", FormatCBOR, got2, "value", time.Now())
	if err != nil || len(pts) != 3 || pts[2].Value.Str != "eco" {
		t.Fatalf("the CBOR body decodes to %v, %v", pts, err)
	}
	// command_method = "POST": libcoap's /example_data only takes PUT, so
	// its 4.05 proves the method.
	_, err = h.a.Command(ctx, bridge.Command{Adapter: "dev", Device: "po", Values: vals[:1]})
	if err == nil || !strings.HasPrefix(err.Error(), "device answered 4.05") {
		t.Errorf("POST command: %v", err)
	}

	// A device that does not answer: the command ends with the caller's
	// context (or the request timeout), with a clear error.
	srv.stop()
	short, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	_, err = h.a.Command(short, bridge.Command{Adapter: "dev", Device: "act", Values: vals[:1]})
	if err == nil || !strings.Contains(err.Error(), "device act: PUT /example_data") {
		t.Errorf("command to a dead device: %v", err)
	}
}

// coaps:// against libcoap's OpenSSL server with a pre-shared key: the right
// key gets notifications; a wrong key is offline with a logged handshake
// error.
func TestClientCoapsLibcoap(t *testing.T) {
	t.Parallel()
	const key = "causeway-test-key"
	srv := startCoAPServer(t, "coap-server-openssl", "-k", key, "-h", "causeway")
	h := startDevices(t, fastTiming,
		config.CoAPDevice{Device: "sec", URL: srv.url("coaps", "/time"), Observe: true, Interval: config.Duration(5 * time.Second),
			PSKIdentity: "gw-test", PSKKey: config.Secret(hex.EncodeToString([]byte(key)))},
		config.CoAPDevice{Device: "wrong", URL: srv.url("coaps", "/time"), Observe: true, Interval: config.Duration(5 * time.Second),
			PSKIdentity: "gw-test", PSKKey: config.Secret(hex.EncodeToString([]byte("not-the-key")))},
	)
	h.waitFor("2 notifications over DTLS", 8*time.Second, func() bool { return h.countFrames("sec") >= 2 })
	h.waitAvail("sec", "online", time.Second)
	if f := h.framesOf("sec")[0]; !isClock(f.Points[0].Value) {
		t.Errorf("frame %+v", f)
	}
	h.waitAvail("wrong", "offline", 8*time.Second)
	warn := h.log.waitFor(t, "DTLS handshake with", time.Second)
	if !strings.Contains(warn, "level=WARN") || !strings.Contains(warn, "device=wrong") {
		t.Errorf("handshake failure log: %s", warn)
	}
	if h.countFrames("wrong") != 0 {
		t.Error("frames with a wrong key")
	}
}
