package coap

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// These tests drive the DTLS server with real peers: libcoap's
// coap-client-openssl (-u identity -k key; its key is the key's bytes as
// text, the config's is hex) and pion's DTLS client under go-coap's.

const (
	dtlsTestIdentity = "sensor-17"
	dtlsTestKey      = "s3cret-psk-17" // as coap-client-openssl takes it
)

func dtlsTestPSK() []config.CoAPPSK {
	return []config.CoAPPSK{
		{Identity: dtlsTestIdentity, Key: config.Secret(hex.EncodeToString([]byte(dtlsTestKey)))},
		{Identity: "other", Key: "00112233445566778899aabbccddeeff"},
	}
}

// dtlsLogBuffer is a logger that keeps its lines (and logs to t.Log).
type dtlsLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *dtlsLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *dtlsLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func captureDTLSLog(t *testing.T) (*slog.Logger, *dtlsLogBuffer) {
	t.Helper()
	b := &dtlsLogBuffer{}
	h := slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})
	return slog.New(dtlsTeeHandler{h, testLogger(t).Handler()}).With("adapter", "coap-test"), b
}

type dtlsTeeHandler []slog.Handler

func (m dtlsTeeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range m {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (m dtlsTeeHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range m {
		if h.Enabled(ctx, r.Level) {
			_ = h.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (m dtlsTeeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(dtlsTeeHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (m dtlsTeeHandler) WithGroup(g string) slog.Handler {
	out := make(dtlsTeeHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(g)
	}
	return out
}

func startDTLSHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	o.cfg.DTLSListen = "127.0.0.1:0"
	if o.cfg.PSK == nil {
		o.cfg.PSK = dtlsTestPSK()
	}
	return startHarness(t, o)
}

func coapsURL(h *harness, path string) string {
	return "coaps://" + h.a.DTLSAddr().String() + path
}

// runCoAPSClient runs coap-client-openssl; a response it received is in the
// result, else Code is "".
func runCoAPSClient(t *testing.T, args ...string) coapResult {
	t.Helper()
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		t.Fatalf("coap-client-openssl is required for these tests (apt-get install libcoap3-bin): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	out, _ := exec.CommandContext(ctx, bin, append([]string{"-v", "7"}, args...)...).CombinedOutput()
	res := coapResult{Elapsed: time.Since(start), Out: string(out)}
	for _, line := range strings.Split(string(out), "\n") {
		if m := responseLine.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil {
			res.Type, res.Code, res.Options, res.Payload = m[1], m[2], m[3], m[4]
		}
	}
	return res
}

func postCoAPSClient(t *testing.T, h *harness, identity, key, path, payload string, extra ...string) coapResult {
	t.Helper()
	args := append([]string{"-B", "5", "-u", identity, "-k", key, "-m", "post", "-t", "50", "-e", payload}, extra...)
	return runCoAPSClient(t, append(args, coapsURL(h, path))...)
}

func TestCoAPSClientRequirement(t *testing.T) {
	if _, err := exec.LookPath("coap-client-openssl"); err != nil {
		t.Fatalf("coap-client-openssl is required for these tests and was not found in PATH (apt-get install libcoap3-bin): %v", err)
	}
}

func TestDTLSReadingsAndDiscovery(t *testing.T) {
	h := startDTLSHarness(t, harnessOpts{cfg: config.CoAP{MaxPayload: 512}})

	res := postCoAPSClient(t, h, dtlsTestIdentity, dtlsTestKey, "/boiler", `{"temperature":21.5,"pump":true}`)
	expectCode(t, res, "2.04", "")
	f := h.framesOf(t, "boiler", 1)[0]
	want := []bridge.Point{pt("temperature", bridge.Number(21.5)), pt("pump", bridge.Bool(true))}
	if fmt.Sprint(f.Points) != fmt.Sprint(want) || f.Adapter != "coap-test" {
		t.Errorf("frame %+v, want points %v", f, want)
	}
	t.Logf("DTLS request (handshake, POST, close) took %v", res.Elapsed)

	// The same handlers as UDP: sizes, names, discovery.
	res = postCoAPSClient(t, h, dtlsTestIdentity, dtlsTestKey, "/boiler", `"`+strings.Repeat("x", 600)+`"`)
	expectCode(t, res, "4.13", "larger than max_payload")
	res = postCoAPSClient(t, h, dtlsTestIdentity, dtlsTestKey, "/a/b/c", `1`)
	expectCode(t, res, "4.04", "")
	res = runCoAPSClient(t, "-B", "5", "-u", dtlsTestIdentity, "-k", dtlsTestKey, "-m", "get", coapsURL(h, "/.well-known/core"))
	expectCode(t, res, "2.05", `</{device}>;rt="causeway.reading"`)

	if st := h.a.Stats(); st.HandshakeFailures != 0 || st.Frames != 1 {
		t.Errorf("stats %+v", st)
	}
	if n := h.countOf("boiler"); n != 1 {
		t.Errorf("%d frames, want 1", n)
	}
}

func TestDTLSRefusesWrongKeyAndUnknownIdentity(t *testing.T) {
	log, logs := captureDTLSLog(t)
	h := startDTLSHarness(t, harnessOpts{deps: Deps{Log: log}})

	cases := []struct {
		name, identity, key, reason string
		within                      time.Duration
	}{
		// The client's Finished cannot be decrypted: mismatchAfter later
		// the handshake ends with a decrypt_error alert.
		{"wrong key", dtlsTestIdentity, "not-the-key", "wrong key for this identity", 2 * time.Second},
		// The same from outside (RFC 4279 §2: do not reveal which
		// identities exist); the log tells them apart.
		{"unknown identity", "intruder", dtlsTestKey, "unknown PSK identity", 2 * time.Second},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := postCoAPSClient(t, h, c.identity, c.key, "/"+strings.ReplaceAll(c.name, " ", "-"), `{"v":1}`)
			if res.Code != "" {
				t.Fatalf("got a response %s, want the handshake refused\n%s", res.Code, res.Out)
			}
			if !strings.Contains(res.Out, "alert read:fatal:decrypt error") {
				t.Errorf("the client got no decrypt_error alert\n%s", res.Out)
			}
			if res.Elapsed > c.within {
				t.Errorf("refused after %v, want within %v", res.Elapsed, c.within)
			}
			deadline := time.Now().Add(2 * time.Second)
			for h.a.Stats().HandshakeFailures != uint64(i+1) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := h.a.Stats().HandshakeFailures; n != uint64(i+1) {
				t.Errorf("handshake failures %d, want %d", n, i+1)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "coap dtls handshake failed") && strings.Contains(l, "identity="+c.identity) {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, c.reason) || !strings.Contains(line, "peer=127.0.0.1:") || !strings.Contains(line, "level=WARN") {
				t.Errorf("no warning naming the peer, the identity %q and %q in the log:\n%s", c.identity, c.reason, logs.String())
			}
		})
	}
	if n := len(h.snapshot()); n != 0 {
		t.Errorf("%d frames from refused clients", n)
	}
	all := logs.String()
	for _, secret := range []string{dtlsTestKey, hex.EncodeToString([]byte(dtlsTestKey)), "not-the-key", hex.EncodeToString([]byte("not-the-key"))} {
		if strings.Contains(all, secret) {
			t.Errorf("the log contains a key %q", secret)
		}
	}
	// A right key still works.
	expectCode(t, postCoAPSClient(t, h, dtlsTestIdentity, dtlsTestKey, "/after", `{"v":2}`), "2.04", "")
	h.framesOf(t, "after", 1)
}

// dtlsFreePort returns a UDP port that was free a moment ago.
func dtlsFreePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// pionDTLSSession is a device on pion's DTLS client and go-coap's CoAP client,
// bound to a fixed local port.
type pionDTLSSession struct {
	udp  *net.UDPConn
	cc   *udpClient.Conn
	done <-chan struct{}
	wg   sync.WaitGroup
	stop context.CancelFunc
}

// pionDTLSPost handshakes from 127.0.0.1:port with TLS_PSK_WITH_AES_128_CCM_8
// (what tinydtls devices offer), POSTs payload to path and returns the
// session, still open.
func pionDTLSPost(t *testing.T, h *harness, port int, identity, key, path, payload string) (*pionDTLSSession, codes.Code) {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	s := &pionDTLSSession{udp: pc}
	conn, err := dtls.ClientWithOptions(pc, h.a.DTLSAddr(),
		dtls.WithPSK(func([]byte) ([]byte, error) { return []byte(key), nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		_ = pc.Close()
		t.Fatalf("handshake from port %d: %v", port, err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	runner := func(f func(now time.Time) bool) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case now := <-tk.C:
					if !f(now) {
						return
					}
				}
			}
		}()
	}
	cc := coapdtls.Client(conn, options.WithPeriodicRunner(runner), options.WithErrors(func(error) {}))
	s.cc, s.done = cc, cc.Done()
	resp, err := cc.Post(ctx, path, message.AppJSON, strings.NewReader(payload))
	if err != nil {
		s.abandon(t)
		t.Fatalf("POST over pion from port %d: %v", port, err)
	}
	return s, resp.Code()
}

// abandon drops the session the way a rebooting device does: no
// close_notify (the socket is closed first).
func (s *pionDTLSSession) abandon(t *testing.T) {
	t.Helper()
	_ = s.udp.Close()
	_ = s.cc.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Error("go-coap client not done")
	}
	s.stop()
	s.wg.Wait()
}

// TestDTLSDeviceRestartsOnSamePort is the pion trap: a device that reboots
// and reconnects from the same address and port, without closing its old
// session, must get a new session at once (pion's own listener would feed
// its ClientHello to the dead session until that timed out).
func TestDTLSDeviceRestartsOnSamePort(t *testing.T) {
	h := startDTLSHarness(t, harnessOpts{})
	port := dtlsFreePort(t)

	for i := range 2 { // libcoap (it closes its session with close_notify)
		res := postCoAPSClient(t, h, dtlsTestIdentity, dtlsTestKey, "/restart", fmt.Sprintf(`{"run":%d}`, i), "-p", fmt.Sprint(port))
		expectCode(t, res, "2.04", "")
		if res.Elapsed > 3*time.Second {
			t.Errorf("coap-client from port %d, run %d: %v", port, i, res.Elapsed)
		}
	}
	for i := range 2 { // pion, abandoning its session like a rebooting device
		start := time.Now()
		s, code := pionDTLSPost(t, h, port, dtlsTestIdentity, dtlsTestKey, "/restart", fmt.Sprintf(`{"run":%d}`, 2+2*i))
		s.abandon(t)
		if code != codes.Changed || time.Since(start) > 3*time.Second {
			t.Fatalf("pion from port %d, run %d: %v after %v", port, i, code, time.Since(start))
		}
		res := postCoAPSClient(t, h, dtlsTestIdentity, dtlsTestKey, "/restart", fmt.Sprintf(`{"run":%d}`, 3+2*i), "-p", fmt.Sprint(port))
		expectCode(t, res, "2.04", "")
		if res.Elapsed > 3*time.Second {
			t.Errorf("coap-client from port %d after an abandoned session: %v", port, res.Elapsed)
		}
	}
	frames := h.framesOf(t, "restart", 6)
	for i, f := range frames {
		if fmt.Sprint(f.Points) != fmt.Sprint([]bridge.Point{pt("run", bridge.Int(int64(i)))}) {
			t.Errorf("frame %d: %v", i, f.Points)
		}
	}
	// The abandoned sessions were replaced, not left behind.
	deadline := time.Now().Add(2 * time.Second)
	for h.a.Stats().DTLSSessions != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := h.a.Stats(); st.DTLSSessions != 0 || st.HandshakeFailures != 0 {
		t.Errorf("stats %+v: want no session left and no failure", st)
	}
}

// TestDTLSOnly: listen = "" with dtls_listen serves DTLS and no plain UDP;
// Run stops cleanly with a session open.
func TestDTLSOnly(t *testing.T) {
	a, err := New(config.CoAP{Name: "secure", Listen: "", DTLSListen: "127.0.0.1:0", PSK: dtlsTestPSK()}, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	bus := bridge.NewBus(16)
	got := make(chan bridge.Frame, 16)
	go func() {
		for f := range bus.Frames() {
			got <- f
			f.Resolve(nil)
		}
		close(got)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, bus, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	if a.Addr() != nil || a.DTLSAddr() == nil {
		t.Fatalf("Addr %v, DTLSAddr %v: want DTLS only", a.Addr(), a.DTLSAddr())
	}
	h := &harness{a: a}
	s, code := pionDTLSPost(t, h, dtlsFreePort(t), dtlsTestIdentity, dtlsTestKey, "/vault", `{"open":false}`)
	if code != codes.Changed {
		t.Fatalf("code %v", code)
	}
	if f := <-got; f.Device != "vault" || f.Adapter != "secure" {
		t.Errorf("frame %+v", f)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v to stop with a DTLS session open", d)
	}
	if a.DTLSAddr() != nil {
		t.Error("DTLSAddr not nil after Run")
	}
	select {
	case <-s.done: // the gateway closed the session (close_notify)
	case <-time.After(5 * time.Second):
		t.Error("the client's session was not closed by the gateway")
	}
	s.abandon(t)
	bus.Close()
	for range got {
	}
}

func TestParsePSK(t *testing.T) {
	psk, err := parsePSK(config.CoAP{DTLSListen: "127.0.0.1:5684", PSK: []config.CoAPPSK{{Identity: "a", Key: "00FF"}}})
	if err != nil || !bytes.Equal(psk["a"], []byte{0, 0xff}) {
		t.Fatalf("parsePSK = %v, %v", psk, err)
	}
	for _, c := range []struct {
		cfg  config.CoAP
		want string
	}{
		{config.CoAP{DTLSListen: "127.0.0.1:5684"}, "needs at least one [[coap.psk]]"},
		{config.CoAP{DTLSListen: "nohost", PSK: dtlsTestPSK()}, "dtls_listen"},
		{config.CoAP{DTLSListen: ":99999", PSK: dtlsTestPSK()}, "port"},
		{config.CoAP{PSK: []config.CoAPPSK{{Identity: "", Key: "00"}}}, "identity is empty"},
		{config.CoAP{PSK: []config.CoAPPSK{{Identity: "a", Key: "00"}, {Identity: "a", Key: "01"}}}, "defined twice"},
		{config.CoAP{PSK: []config.CoAPPSK{{Identity: "a", Key: "topsecret"}}}, "not hex"},
	} {
		_, err := parsePSK(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parsePSK(%+v) = %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

func TestClientHelloRandom(t *testing.T) {
	hello := make([]byte, 13+12+2+32+10)
	hello[0], hello[13] = 22, 1
	for i := range 32 {
		hello[27+i] = byte(i + 1)
	}
	r, ok := clientHelloRandom(hello)
	if !ok || r[0] != 1 || r[31] != 32 {
		t.Fatalf("clientHelloRandom = %v, %v", r, ok)
	}
	for name, mut := range map[string]func(b []byte){
		"epoch 1":        func(b []byte) { b[4] = 1 },
		"not handshake":  func(b []byte) { b[0] = 23 },
		"server hello":   func(b []byte) { b[13] = 2 },
		"later fragment": func(b []byte) { b[21] = 8 },
		"short":          nil,
	} {
		b := append([]byte(nil), hello...)
		if mut == nil {
			b = b[:50]
		} else {
			mut(b)
		}
		if _, ok := clientHelloRandom(b); ok {
			t.Errorf("%s: taken for a ClientHello", name)
		}
	}
}

// TestDTLSMismatchWaitsForChangeCipherSpec: a Finished whose ChangeCipherSpec
// was lost cannot be processed yet, so it is no sign of a wrong key.
func TestDTLSMismatchWaitsForChangeCipherSpec(t *testing.T) {
	rec := func(typ byte, epoch, seq uint16) []byte {
		return []byte{typ, 0xfe, 0xfd, byte(epoch >> 8), byte(epoch), 0, 0, 0, 0, byte(seq >> 8), byte(seq), 0, 1, 0}
	}
	aborted := make(chan error, 1)
	p := &dtlsPeer{abort: func(err error) { aborted <- err }}
	p.keyed.Store(true)
	p.observe(rec(22, 1, 1)) // a Finished, no ChangeCipherSpec yet
	if p.finished.Load() != 0 || p.check != nil {
		t.Fatal("a Finished before the ChangeCipherSpec was counted")
	}
	// ChangeCipherSpec and Finished in one datagram, then a duplicate.
	p.observe(append(rec(20, 0, 2), rec(22, 1, 2)...))
	p.observe(rec(22, 1, 2))
	if n := p.finished.Load(); n != 1 {
		t.Fatalf("%d Finished records counted, want 1", n)
	}
	select {
	case err := <-aborted:
		if err != errKeyMismatch {
			t.Fatalf("aborted with %v", err)
		}
	case <-time.After(5 * mismatchAfter):
		t.Fatal("an unanswered Finished did not end the handshake")
	}
	// Once established, nothing is checked.
	q := &dtlsPeer{abort: func(error) { t.Error("aborted an established session") }}
	q.keyed.Store(true)
	q.established.Store(true)
	q.observe(append(rec(20, 0, 2), rec(22, 1, 3)...))
	q.stopMismatchCheck()
}
