package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// libcoapServer is libcoap's example coap-server-notls, a device for the
// gateway to observe, poll and command: /time is observable and ticks every
// second (text without a Content-Format), /example_data takes PUTs.
type libcoapServer struct {
	t    *testing.T
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func startLibcoapServer(t *testing.T) *libcoapServer {
	t.Helper()
	s := &libcoapServer{t: t, port: testpeer.FreeUDPPort(t)}
	for s.port == 5683 {
		s.port = testpeer.FreeUDPPort(t)
	}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *libcoapServer) start() {
	s.t.Helper()
	cmd := exec.Command(testpeer.Bin(s.t, "coap-server-notls"), "-A", "127.0.0.1", "-p", strconv.Itoa(s.port))
	cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := testpeer.CoAP(s.t, "-m", "get", "-B", "1", s.url("/.well-known/core"))
		if strings.Contains(out.Out, "</time>") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("coap-server-notls did not start: %+v", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL: the device vanishes without a word.
func (s *libcoapServer) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

func (s *libcoapServer) url(path string) string {
	return fmt.Sprintf("coap://127.0.0.1:%d%s", s.port, path)
}

var clockRE = regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d$`)

// The gateway observes a device (libcoap's /time): readings on
// gw-test/coap/clock and availability online; the device is killed (offline)
// and restarted on the same port: the gateway registers again by itself
// (online, readings resume). A command on .../set becomes a PUT of a JSON
// object to command_path, its result is published on .../set/result; a
// polled device without command_path refuses commands.
func TestCoAPClientObservesPollsAndCommands(t *testing.T) {
	dev := startLibcoapServer(t)
	p := freePorts(t)
	cfg := baseConfig(p, fmt.Sprintf(`
[[coap.device]]
device = "clock"
url = %q
interval = "2s"
point = "now"
command_path = "/example_data"

[[coap.device]]
device = "ticker"
url = %q
observe = false
interval = "500ms"
`, dev.url("/time"), dev.url("/time")))
	g := startGateway(t, cfg)
	sub := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")

	online := func(m testpeer.Message) bool { return m.Payload == "online" }
	offline := func(m testpeer.Message) bool { return m.Payload == "offline" }
	reading := func(m testpeer.Message) bool {
		r := decodeFrame(t, m.Payload)
		s, _ := r["now"].(string)
		return clockRE.MatchString(s) && timeRE.MatchString(fmt.Sprint(r["time"])) && len(r) == 2
	}
	waitMsg(t, sub, "gw-test/coap/clock/availability", 10*time.Second, online)
	waitMsg(t, sub, "gw-test/coap/clock", 5*time.Second, reading)
	waitMsg(t, sub, "gw-test/coap/clock", 3*time.Second, reading) // one a second
	waitMsg(t, sub, "gw-test/coap/ticker/availability", 5*time.Second, online)
	waitMsg(t, sub, "gw-test/coap/ticker", 5*time.Second, func(m testpeer.Message) bool {
		_, ok := decodeFrame(t, m.Payload)["value"].(string)
		return ok
	})

	// Commands.
	pub := func(topic, payload string) {
		t.Helper()
		out, err := exec.Command(testpeer.Bin(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.broker), "-q", "1", "-t", topic, "-m", payload).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub: %v %s", err, out)
		}
	}
	pub("gw-test/coap/clock/set", `{"setpoint":21.5,"mode":"eco"}`)
	r := decodeFrame(t, sub.WaitFor(t, "gw-test/coap/clock/set/result", 10*time.Second).Payload)
	vals, _ := r["values"].(map[string]any)
	if r["ok"] != true || fmt.Sprint(vals["setpoint"]) != "21.5" || vals["mode"] != "eco" {
		t.Fatalf("command result %v", r)
	}
	if got := testpeer.CoAP(t, "-m", "get", dev.url("/example_data")).Out; !strings.Contains(got, `{"setpoint":21.5,"mode":"eco"}`) {
		t.Fatalf("/example_data on the device after the command: %q", got)
	}
	pub("gw-test/coap/clock/mode/set", "off")
	r = decodeFrame(t, sub.WaitFor(t, "gw-test/coap/clock/set/result", 10*time.Second).Payload)
	if r["ok"] != true {
		t.Fatalf("bare value command result %v", r)
	}
	if got := testpeer.CoAP(t, "-m", "get", dev.url("/example_data")).Out; !strings.Contains(got, `{"mode":"off"}`) {
		t.Fatalf("/example_data after a bare value command: %q", got)
	}
	pub("gw-test/coap/ticker/set", `{"a":1}`)
	r = decodeFrame(t, sub.WaitFor(t, "gw-test/coap/ticker/set/result", 10*time.Second).Payload)
	if r["ok"] != false || r["error"] != "device ticker takes no commands (no command_path)" {
		t.Fatalf("command to a device without command_path: %v", r)
	}

	// The device restarts.
	dev.kill()
	killed := time.Now()
	waitMsg(t, sub, "gw-test/coap/clock/availability", 10*time.Second, offline)
	waitMsg(t, sub, "gw-test/coap/ticker/availability", 10*time.Second, offline)
	t.Logf("offline %v after the kill", time.Since(killed).Round(time.Millisecond))
	sub.Drain(100 * time.Millisecond)
	dev.start()
	restarted := time.Now()
	waitMsg(t, sub, "gw-test/coap/clock/availability", 10*time.Second, online)
	waitMsg(t, sub, "gw-test/coap/clock", 5*time.Second, reading)
	waitMsg(t, sub, "gw-test/coap/clock", 3*time.Second, reading)
	t.Logf("online and notifying %v after the restart", time.Since(restarted).Round(time.Millisecond))
	waitMsg(t, sub, "gw-test/coap/ticker/availability", 10*time.Second, online)

	if d, err := g.stop(); err != nil || d > 3*time.Second {
		t.Fatalf("stop: %v after %v", err, d)
	}
	if !strings.Contains(g.Log(), `msg="coap device offline"`) {
		t.Errorf("no offline warning in the log")
	}
}
