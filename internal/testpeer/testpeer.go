// Package testpeer starts the real programs that tests talk to — mosquitto,
// mosquitto_sub, libcoap's coap-client — on free ports, and cleans them up.
//
// A test that needs a peer which is not installed fails loudly with an
// install hint; it never skips. Only tests import this package.
package testpeer

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Install is the command that provides every peer.
const Install = "apt-get install mosquitto mosquitto-clients libcoap3-bin socat (or: make test-deps as root)"

// Bin returns the path of program name, failing the test if it is missing.
func Bin(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("test peer %q is not installed: %s", name, Install)
	return ""
}

// FreeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free tcp port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free udp port: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Mosquitto is a real mosquitto broker on 127.0.0.1.
type Mosquitto struct {
	t    testing.TB
	Port int
	conf string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMosquitto starts mosquitto on port (0 picks a free one) and stops it
// when the test ends.
func StartMosquitto(t testing.TB, port int) *Mosquitto {
	t.Helper()
	if port == 0 {
		port = FreeTCPPort(t)
	}
	return startMosquitto(t, port, false)
}

// StartPersistentMosquitto is StartMosquitto with persistence: stopped with
// SIGTERM it saves its sessions (subscriptions and the QoS 1 messages
// queued for them) and loads them when started again, so a persistent
// subscriber misses nothing the broker acknowledged across its restart.
func StartPersistentMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	return startMosquitto(t, FreeTCPPort(t), true)
}

func startMosquitto(t testing.TB, port int, persist bool) *Mosquitto {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n", port)
	if persist {
		body += fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 0\n", dir)
		if os.Geteuid() == 0 {
			// As root mosquitto switches to the user "mosquitto", which
			// cannot write the test's private temp dir.
			body += "user root\n"
		}
	} else {
		body += "persistence false\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{t: t, Port: port, conf: conf}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// URL is the broker's mqtt:// URL.
func (m *Mosquitto) URL() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", m.Port) }

// Start (re)starts the broker on its port and waits until it accepts connections.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(Bin(m.t, "mosquitto"), "-c", m.conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	addr := fmt.Sprintf("127.0.0.1:%d", m.Port)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			m.t.Fatalf("mosquitto exited at start (port %d busy?)", m.Port)
		case <-time.After(20 * time.Millisecond):
		}
	}
	m.t.Fatalf("mosquitto did not listen on %s", addr)
}

// Kill stops the broker abruptly (SIGKILL), as a crash or a network cut would.
func (m *Mosquitto) Kill() { m.signal(syscall.SIGKILL) }

// Stop stops the broker (SIGTERM, then SIGKILL after 3 s).
func (m *Mosquitto) Stop() { m.signal(syscall.SIGTERM) }

func (m *Mosquitto) signal(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(3 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// Message is one message seen by a subscriber.
type Message struct {
	Topic   string
	QoS     int
	Retain  bool
	Payload string
}

// Sub is a running mosquitto_sub.
type Sub struct {
	C       chan Message
	backlog []Message // received but not yet taken by WaitFor/Next
	cmd     *exec.Cmd
	done    chan struct{}
}

// Subscribe starts mosquitto_sub on 127.0.0.1:port for filter at QoS 1 and
// delivers what it receives on C until the test ends. It returns once the
// subscription is active.
func Subscribe(t testing.TB, port int, filter string) *Sub {
	t.Helper()
	bin := Bin(t, "mosquitto_sub")
	args := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-q", "1", "-t", filter, "-t", "testpeer/ready/#",
		"-F", "%t\t%q\t%r\t%p"}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	out := bufio.NewReaderSize(pr, 1<<20)
	s := &Sub{C: make(chan Message, 100000), cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	probe := fmt.Sprintf("testpeer/ready/%d", time.Now().UnixNano())
	go func() {
		defer close(s.done)
		var once sync.Once
		for {
			line, err := out.ReadString('\n')
			if line != "" {
				line = strings.TrimSuffix(line, "\n")
				parts := strings.SplitN(line, "\t", 4)
				if len(parts) == 4 {
					m := Message{Topic: parts[0], Retain: parts[2] == "1", Payload: parts[3]}
					fmt.Sscan(parts[1], &m.QoS)
					if strings.HasPrefix(m.Topic, "testpeer/ready/") {
						if m.Topic == probe {
							once.Do(func() { close(ready) })
						}
						continue
					}
					s.C <- m
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(s.Stop)
	// Publish probes until the subscriber sees one: then the subscription is live.
	pub := Bin(t, "mosquitto_pub")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = exec.Command(pub, "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", probe, "-m", "x").Run()
		select {
		case <-ready:
			return s
		case <-s.done:
			t.Fatalf("mosquitto_sub on port %d exited", port)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub on port %d never became ready", port)
		}
	}
}

// Stop ends the subscriber.
func (s *Sub) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
	_ = s.cmd.Wait()
}

// Next waits up to d for the next message (the oldest one not yet taken).
func (s *Sub) Next(t testing.TB, d time.Duration) Message {
	t.Helper()
	if len(s.backlog) > 0 {
		m := s.backlog[0]
		s.backlog = s.backlog[1:]
		return m
	}
	select {
	case m := <-s.C:
		return m
	case <-time.After(d):
		t.Fatalf("no MQTT message within %v", d)
	}
	return Message{}
}

// WaitFor waits up to d for the first message on topic not yet taken.
// Messages on other topics are kept for later calls.
func (s *Sub) WaitFor(t testing.TB, topic string, d time.Duration) Message {
	t.Helper()
	for i, m := range s.backlog {
		if m.Topic == topic {
			s.backlog = append(s.backlog[:i:i], s.backlog[i+1:]...)
			return m
		}
	}
	deadline := time.After(d)
	for {
		select {
		case m := <-s.C:
			if m.Topic == topic {
				return m
			}
			s.backlog = append(s.backlog, m)
		case <-deadline:
			t.Fatalf("no MQTT message on %q within %v", topic, d)
			return Message{}
		}
	}
}

// Drain returns every message not yet taken, waiting d for more.
func (s *Sub) Drain(d time.Duration) []Message {
	out := s.backlog
	s.backlog = nil
	deadline := time.After(d)
	for {
		select {
		case m := <-s.C:
			out = append(out, m)
		case <-deadline:
			return out
		}
	}
}

// CoAPResult is what coap-client printed.
type CoAPResult struct {
	Out string // stdout: the response payload, or the code line on errors
	Err string // stderr
}

// CoAP runs libcoap's coap-client-notls with args and returns its output.
func CoAP(t testing.TB, args ...string) CoAPResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Bin(t, "coap-client-notls"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return CoAPResult{Out: out.String(), Err: errb.String()}
}
