package coap

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"go.uber.org/goleak"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness runs an Adapter on 127.0.0.1:0 with a real bus and a consumer
// goroutine that records frames (in bus order) and acknowledges them.
type harness struct {
	a    *Adapter
	bus  *bridge.Bus
	addr string // host:port
	url  string // coap://host:port

	mu     sync.Mutex
	frames []bridge.Frame
	acked  []time.Time // when each frame was acknowledged
}

type harnessOpts struct {
	cfg    config.CoAP // Listen is forced to 127.0.0.1:0
	deps   Deps
	busCap int // default 256
	// drain false leaves the bus undrained (backpressure tests).
	noConsumer bool
	// ack decides the acknowledgement of a frame: after delay, with err.
	ack func(f bridge.Frame) (delay time.Duration, err error)
}

func startHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	o.cfg.Listen = "127.0.0.1:0"
	if o.cfg.Name == "" {
		o.cfg.Name = "coap-test"
	}
	if o.busCap == 0 {
		o.busCap = 256
	}
	if o.deps.Log == nil {
		o.deps.Log = testLogger(t).With("adapter", o.cfg.Name)
	}
	a, err := New(o.cfg, o.deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h := &harness{a: a, bus: bridge.NewBus(o.busCap)}

	var acks sync.WaitGroup
	consumerDone := make(chan struct{})
	if o.noConsumer {
		close(consumerDone)
	} else {
		go func() {
			defer close(consumerDone)
			for f := range h.bus.Frames() {
				h.mu.Lock()
				h.frames = append(h.frames, f)
				i := len(h.frames) - 1
				h.acked = append(h.acked, time.Time{})
				h.mu.Unlock()
				var delay time.Duration
				var ackErr error
				if o.ack != nil {
					delay, ackErr = o.ack(f)
				}
				resolve := func() {
					h.mu.Lock()
					h.acked[i] = time.Now()
					h.mu.Unlock()
					f.Resolve(ackErr)
				}
				if delay == 0 {
					resolve()
					continue
				}
				acks.Add(1)
				go func() {
					defer acks.Done()
					time.Sleep(delay)
					resolve()
				}()
			}
		}()
	}

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		runErr <- a.Run(ctx, h.bus, func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-runErr:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("adapter not ready after 5s")
	}
	h.addr = a.Addr().String()
	h.url = "coap://" + h.addr
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return 15s after cancel")
		}
		if a.Addr() != nil {
			t.Error("Addr not nil after Run returned")
		}
		h.bus.Close()
		<-consumerDone
		acks.Wait()
	})
	return h
}

// testLogger logs to t.Log until the test's cleanups are done (a late
// line from a library goroutine must not panic the test binary).
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (h *harness) snapshot() []bridge.Frame {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bridge.Frame(nil), h.frames...)
}

// framesOf waits until device has at least n frames and returns them.
func (h *harness) framesOf(t *testing.T, device string, n int) []bridge.Frame {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []bridge.Frame
		for _, f := range h.snapshot() {
			if f.Device == device {
				out = append(out, f)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			if len(out) < n {
				t.Fatalf("device %q: %d frames, want %d", device, len(out), n)
			}
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) countOf(device string) int {
	n := 0
	for _, f := range h.snapshot() {
		if f.Device == device {
			n++
		}
	}
	return n
}

// ---- libcoap's coap-client ----

type coapResult struct {
	Type    string // CON, NON, ACK, RST of the last response
	Code    string // "2.04"
	Options string // as printed, e.g. "Content-Format:text/plain, Size1:16384"
	Payload string
	Elapsed time.Duration
	Out     string
}

// responseLine matches libcoap's -v 7 dump of a message with a response
// code (requests print a method name instead).
var responseLine = regexp.MustCompile(`^v:1 t:(CON|NON|ACK|RST) c:(\d\.\d\d) i:[0-9a-f]+ \{[0-9a-f]*\}(?: \[ ?(.*?) ?\])?(?: :: '(.*)')?$`)

func coapClientBinary() (string, error) {
	bin, err := exec.LookPath("coap-client-notls")
	if err != nil {
		return "", fmt.Errorf("coap-client-notls is required for these tests and was not found in PATH (install libcoap: `apt-get install libcoap3-bin` on Debian/Ubuntu): %w", err)
	}
	return bin, nil
}

// runCoAPClient runs coap-client-notls with args and returns the last
// response it received.
func runCoAPClient(args ...string) (coapResult, error) {
	bin, err := coapClientBinary()
	if err != nil {
		return coapResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-v", "7", "-B", "10"}, args...)...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	res := coapResult{Elapsed: time.Since(start), Out: string(out)}
	if err != nil {
		return res, fmt.Errorf("coap-client %v: %w\n%s", args, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if m := responseLine.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil {
			res.Type, res.Code, res.Options, res.Payload = m[1], m[2], m[3], m[4]
		}
	}
	if res.Code == "" {
		return res, fmt.Errorf("coap-client %v: no response\n%s", args, out)
	}
	return res, nil
}

func coapClient(t *testing.T, args ...string) coapResult {
	t.Helper()
	res, err := runCoAPClient(args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func expectCode(t *testing.T, res coapResult, code, payloadPart string) {
	t.Helper()
	if res.Code != code {
		t.Fatalf("response %s %q, want %s\n%s", res.Code, res.Payload, code, res.Out)
	}
	if !strings.Contains(res.Payload, payloadPart) {
		t.Fatalf("payload %q does not contain %q", res.Payload, payloadPart)
	}
}

// ---- go-coap's client, in process ----

// dialCoAP returns a go-coap UDP client to addr, closed at cleanup with
// every goroutine it started.
func dialCoAP(t *testing.T, addr string) *udpClient.Conn {
	t.Helper()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	runner := func(f func(now time.Time) bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-tk.C:
					if !f(now) {
						return
					}
				}
			}
		}()
	}
	cc, err := udp.Dial(addr, options.WithPeriodicRunner(runner), options.WithErrors(func(error) {}))
	if err != nil {
		cancel()
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		select {
		case <-cc.Done():
		case <-time.After(5 * time.Second):
			t.Error("client not done")
		}
		cancel()
		wg.Wait()
	})
	return cc
}

func post(t *testing.T, cc *udpClient.Conn, path string, cf message.MediaType, payload string) *pool.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, path, cf, bytes.NewReader([]byte(payload)))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { cc.ReleaseMessage(resp) })
	return resp
}

func body(t *testing.T, m *pool.Message) string {
	t.Helper()
	b, err := m.ReadBody()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---- raw UDP peer: hand-made datagrams ----

type rawPeer struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRawPeer(t *testing.T, addr string) *rawPeer {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawPeer{t: t, conn: conn}
}

type rawRequest struct {
	typ     message.Type
	code    codes.Code // default POST
	mid     int32
	token   []byte
	path    string
	cf      int // -1: none
	payload []byte
	opts    func(m *pool.Message)
}

func (p *rawPeer) send(r rawRequest) {
	p.t.Helper()
	m := pool.NewMessage(context.Background())
	if r.code == 0 {
		r.code = codes.POST
	}
	m.SetCode(r.code)
	m.SetType(r.typ)
	m.SetMessageID(r.mid)
	m.SetToken(r.token)
	if err := m.SetPath(r.path); err != nil {
		p.t.Fatal(err)
	}
	if r.cf >= 0 {
		m.SetContentFormat(message.MediaType(r.cf))
	}
	if r.payload != nil {
		m.SetBody(bytes.NewReader(r.payload))
	}
	if r.opts != nil {
		r.opts(m)
	}
	data, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.Write(data); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next datagram decoded, or an error on timeout.
func (p *rawPeer) recv(timeout time.Duration) (*pool.Message, error) {
	buf := make([]byte, 2048)
	if err := p.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	n, err := p.conn.Read(buf)
	if err != nil {
		return nil, err
	}
	m := pool.NewMessage(context.Background())
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, buf[:n]); err != nil {
		return nil, err
	}
	return m, nil
}

func (p *rawPeer) mustRecv(timeout time.Duration) *pool.Message {
	p.t.Helper()
	m, err := p.recv(timeout)
	if err != nil {
		p.t.Fatalf("no response: %v", err)
	}
	return m
}
