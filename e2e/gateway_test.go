// Package e2e runs the gateway binary as a user would — from a TOML file, on
// free ports — against real peers: libcoap's coap-client as devices, mosquitto
// as the uplink broker, mosquitto_sub as subscribers.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// gatewayBin is the binary built once by TestMain.
var gatewayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "causeway-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatewayBin = filepath.Join(dir, "gateway")
	build := exec.Command("go", "build", "-o", gatewayBin, "../cmd/gateway")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gateway:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gw is a running gateway process.
type gw struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	mu     sync.Mutex
	log    bytes.Buffer
	ready  chan struct{}
	exited chan struct{}
	err    error
}

// startGateway writes config into a temp dir and runs `gateway run -c` there,
// waiting until it logs that it is ready.
func startGateway(t *testing.T, config string) *gw {
	t.Helper()
	dir := t.TempDir()
	g := startGatewayIn(t, dir, config)
	g.waitReady()
	return g
}

func startGatewayIn(t *testing.T, dir, config string) *gw {
	t.Helper()
	path := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, dir: dir, ready: make(chan struct{}), exited: make(chan struct{})}
	g.cmd = exec.Command(gatewayBin, "run", "-c", path)
	g.cmd.Dir = dir
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.log.WriteString(line + "\n")
			g.mu.Unlock()
			if strings.Contains(line, "gateway ready") {
				once.Do(func() { close(g.ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		g.err = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.Log())
		}
	})
	return g
}

func (g *gw) waitReady() {
	g.t.Helper()
	select {
	case <-g.ready:
	case <-g.exited:
		g.t.Fatalf("gateway exited before ready: %v\n%s", g.err, g.Log())
	case <-time.After(15 * time.Second):
		g.t.Fatalf("gateway not ready within 15s\n%s", g.Log())
	}
}

// Log returns what the gateway has logged so far.
func (g *gw) Log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.log.String()
}

// stop sends SIGTERM and returns how long the gateway took to exit.
func (g *gw) stop() (time.Duration, error) {
	start := time.Now()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
		return time.Since(start), g.err
	case <-time.After(10 * time.Second):
		g.kill()
		return time.Since(start), fmt.Errorf("gateway did not exit within 10s after SIGTERM")
	}
}

func (g *gw) kill() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// coap sends one request with coap-client-notls at verbosity 6 and returns
// the response code seen ("2.04", "4.00", ...) and the response payload text.
func coap(t *testing.T, port int, method, path string, format string, payload string, extra ...string) (code, body string) {
	t.Helper()
	args := []string{"-v", "6", "-B", "10", "-m", method}
	if format != "" {
		args = append(args, "-t", format)
	}
	if payload != "" {
		args = append(args, "-e", payload)
	}
	args = append(args, extra...)
	args = append(args, fmt.Sprintf("coap://127.0.0.1:%d%s", port, path))
	res := testpeer.CoAP(t, args...)
	return parseCoAPResponse(res.Out + "\n" + res.Err)
}

// parseCoAPResponse finds the response line that coap-client prints at -v 6:
//
//	v:1 t:ACK c:2.04 i:ca45 {01} [ ] :: 'payload'
func parseCoAPResponse(out string) (code, body string) {
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, " c:")
		if i < 0 || !(strings.Contains(line, "t:ACK") || strings.Contains(line, "t:NON") || strings.Contains(line, "t:CON")) {
			continue
		}
		c := line[i+3:]
		if j := strings.IndexByte(c, ' '); j >= 0 {
			c = c[:j]
		}
		if len(c) != 4 || c[1] != '.' || c[0] < '2' || c[0] > '5' {
			continue // a request line, e.g. c:POST
		}
		code = c
		if k := strings.Index(line, ":: '"); k >= 0 {
			body = strings.TrimSuffix(line[k+4:], "'")
		}
	}
	return code, body
}
