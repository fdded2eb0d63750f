package mqttcore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The MQTT 3.1.1 uplink's publisher and subscriber may stay blocked
		// in paho.mqtt.golang for up to its write timeout after their
		// connection was lost (see V311Uplink.publisher); Run does not
		// wait for them.
		goleak.IgnoreTopFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).Publish"),
		goleak.IgnoreTopFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).SubscribeMultiple"),
	)
}

// --- logging ---

// testLog collects log output and prints it only if the test failed; writes
// after the test ended are discarded (late goroutines must not call t.Log).
type testLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done && l.buf.Len() < 8<<20 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func newTestLogger(t testing.TB) *slog.Logger {
	l := &testLog{}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.done = true
		if t.Failed() || os.Getenv("MQTTCORE_TEST_LOG") != "" {
			t.Logf("log output:\n%s", l.buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// --- mosquitto ---

const mosquittoHint = "mosquitto is required for these tests: apt-get install mosquitto mosquitto-clients"

func mosquittoPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("mosquitto binary not found. " + mosquittoHint)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// mosquitto runs a mosquitto broker on a fixed loopback port; it can be
// killed (SIGKILL) and started again on the same port.
type mosquitto struct {
	t     testing.TB
	bin   string
	port  int
	conf  string
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	log   *testLog
	extra string
}

// startMosquitto starts mosquitto on a free port; extra is appended to the
// listener configuration. It is killed at cleanup.
func startMosquitto(t testing.TB, extra string) *mosquitto {
	m := newMosquitto(t, freePort(t), extra)
	m.start()
	return m
}

func newMosquitto(t testing.TB, port int, extra string) *mosquitto {
	t.Helper()
	m := &mosquitto{t: t, bin: mosquittoPath(t), port: port, log: &testLog{}, extra: extra}
	m.conf = filepath.Join(t.TempDir(), "mosquitto.conf")
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"+
		"max_queued_messages 0\nmax_inflight_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n%s\n",
		port, extra)
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.kill()
		m.log.mu.Lock()
		defer m.log.mu.Unlock()
		m.log.done = true
		if t.Failed() || os.Getenv("MQTTCORE_TEST_LOG") != "" {
			t.Logf("mosquitto output:\n%s", m.log.buf.String())
		}
	})
	return m
}

func (m *mosquitto) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }
func (m *mosquitto) url() string  { return "mqtt://" + m.addr() }

func (m *mosquitto) start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		m.t.Fatal("mosquitto already running")
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v (%s)", err, mosquittoHint)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	m.cmd, m.done = cmd, done
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			m.t.Fatalf("mosquitto exited at start:\n%s", m.log.buf.String())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto not listening on %s: %v", m.addr(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops mosquitto with SIGKILL (no clean shutdown) and waits for it.
func (m *mosquitto) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	m.cmd, m.done = nil, nil
}

// --- subscriber ---

type message struct {
	topic   string
	payload string
	qos     byte
	retain  bool
}

// subscriber is a paho MQTT 5 client collecting the messages it receives.
type subscriber struct {
	t    testing.TB
	cli  *paho.Client
	mu   sync.Mutex
	msgs []message
}

func newSubscriber(t testing.TB, addr string, qos byte, filters ...string) *subscriber {
	t.Helper()
	s := &subscriber{t: t}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("subscriber dial %s: %v", addr, err)
	}
	s.cli = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.msgs = append(s.msgs, message{topic: pr.Packet.Topic, payload: string(pr.Packet.Payload),
				qos: pr.Packet.QoS, retain: pr.Packet.Retain})
			s.mu.Unlock()
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.cli.Connect(ctx, &paho.Connect{ClientID: fmt.Sprintf("sub-%d", time.Now().UnixNano()),
		KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("subscriber connect: %v", err)
	}
	t.Cleanup(s.close)
	sub := &paho.Subscribe{}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: qos})
	}
	if _, err := s.cli.Subscribe(ctx, sub); err != nil {
		t.Fatalf("subscribe %v: %v", filters, err)
	}
	return s
}

func (s *subscriber) close() {
	_ = s.cli.Disconnect(&paho.Disconnect{})
}

func (s *subscriber) messages() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]message(nil), s.msgs...)
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runUplink starts u.Run in a goroutine; at cleanup it cancels it and
// checks that Run returned.
func runUplink(t testing.TB, u Uplink) (cancel func()) {
	ctx, cancelCtx := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancelCtx()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("uplink Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("uplink Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type funcWriter func(string)

func (f funcWriter) Write(p []byte) (int, error) { f(string(p)); return len(p), nil }

// slogTo returns a logger (all levels) that hands every line to f.
func slogTo(f func(string)) *slog.Logger {
	return slog.New(slog.NewTextHandler(funcWriter(f), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// uplinkProtocols are the MQTT versions the uplink tests run with.
var uplinkProtocols = []struct {
	name  string
	proto int
}{{"v5", ProtocolMQTT5}, {"v311", ProtocolMQTT311}}

// forProtocols runs f as one subtest per uplink protocol (v5, v311).
func forProtocols(t *testing.T, f func(t *testing.T, proto int)) {
	t.Helper()
	for _, p := range uplinkProtocols {
		t.Run(p.name, func(t *testing.T) { f(t, p.proto) })
	}
}
