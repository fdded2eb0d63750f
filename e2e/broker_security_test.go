package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
)

// The built-in broker's security, run as a technician would set it up:
// users (one with a hash from `gateway hash-password`, one with a password
// from the environment), topic filters, the TCP listener on every
// interface (so anonymous clients are refused), a TLS listener with a
// self-signed certificate and the WebSocket listener; the peers are
// mosquitto_sub / mosquitto_pub and a paho client over WebSocket.
func TestBuiltInBrokerSecurity(t *testing.T) {
	dir := t.TempDir()
	cert, _ := writeSelfSigned(t, dir)
	hash, errOut, code := runGatewayStdin(t, "nodered-pw\n", "hash-password")
	if code != 0 || !strings.HasPrefix(hash, "$2a$10$") {
		t.Fatalf("gateway hash-password: exit %d %q %s", code, hash, errOut)
	}
	t.Setenv("E2E_VIEWER_PW", "viewer-pw")
	coapPort, port, tlsPort, wsPort := testpeer.FreeUDPPort(t), testpeer.FreeTCPPort(t), testpeer.FreeTCPPort(t), testpeer.FreeTCPPort(t)
	cfg := fmt.Sprintf(`[gateway]
id = "gw-test"
data_dir = "./data"

[broker]
listen = "0.0.0.0:%d"
tls_listen = "127.0.0.1:%d"
tls_cert_file = "broker.pem"
tls_key_file = "broker.key"
websocket = "127.0.0.1:%d"

[[broker.user]]
name = "nodered"
password_hash = "%s"
publish = ["gw-test/+/+/set"]
subscribe = ["gw-test/#"]

[[broker.user]]
name = "viewer"
password = "${E2E_VIEWER_PW}"
subscribe = ["gw-test/+/+", "gw-test/status"]

[[coap]]
listen = "127.0.0.1:%d"
`, port, tlsPort, wsPort, strings.TrimSpace(hash), coapPort)
	g := startGatewayIn(t, dir, cfg)
	g.waitReady()
	p, tp := fmt.Sprint(port), fmt.Sprint(tlsPort)
	if !strings.Contains(g.Log(), "built-in broker started") || strings.Contains(g.Log(), "anonymous clients allowed") {
		t.Fatalf("start log:\n%s", g.Log())
	}

	// Anonymous clients are refused: the TCP listener is beyond loopback.
	hosts := []string{"127.0.0.1"}
	if ip := nonLoopbackIPv4(); ip != "" {
		hosts = append(hosts, ip)
	}
	for _, h := range hosts {
		if out, code := mosquittoCmd(t, "mosquitto_sub", "-h", h, "-p", p, "-V", "5", "-t", "#", "-W", "3"); code != 0x87 || !strings.Contains(out, "Not authorized") {
			t.Fatalf("anonymous via %s: exit %d %q", h, code, out)
		}
		if out, code := mosquittoCmd(t, "mosquitto_sub", "-h", h, "-p", p, "-V", "311", "-t", "#", "-W", "3"); code != 5 {
			t.Fatalf("anonymous 3.1.1 via %s: exit %d %q", h, code, out)
		}
	}
	// A wrong password, an unknown user.
	if out, code := mosquittoCmd(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", p, "-V", "5", "-u", "viewer", "-P", "nope", "-t", "gw-test/status", "-W", "3"); code != 0x86 {
		t.Fatalf("wrong password: exit %d %q", code, out)
	}
	if out, code := mosquittoCmd(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-u", "mallory", "-P", "viewer-pw", "-t", "gw-test/x", "-m", "x"); code != 4 {
		t.Fatalf("unknown user: exit %d %q", code, out)
	}

	// nodered over TLS (self-signed certificate as its CA), viewer over TCP.
	nodered := startSub(t, "-h", "127.0.0.1", "-p", tp, "--cafile", cert, "-u", "nodered", "-P", "nodered-pw", "-t", "gw-test/#")
	viewer := startSub(t, "-h", "127.0.0.1", "-p", p, "-u", "viewer", "-P", "viewer-pw", "-t", "gw-test/+/+", "-t", "gw-test/status")
	nodered.waitFor(t, "gw-test/status online")
	viewer.waitFor(t, "gw-test/status online")

	// A reading reaches both.
	if code, body := coap(t, coapPort, "post", "/boiler", "50", `{"temperature":21.5}`); code != "2.04" {
		t.Fatalf("coap: %s %q", code, body)
	}
	nodered.waitFor(t, "gw-test/coap/boiler {")
	viewer.waitFor(t, "gw-test/coap/boiler {")

	// viewer may not subscribe to everything, nor send commands.
	if out, _ := mosquittoCmd(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", p, "-u", "viewer", "-P", "viewer-pw", "-t", "#", "-W", "3"); !strings.Contains(out, "All subscription requests were denied.") {
		t.Fatalf("viewer subscribing to #: %q", out)
	}
	out, _ := mosquittoCmd(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-V", "5", "-u", "viewer", "-P", "viewer-pw",
		"-q", "1", "-t", "gw-test/coap/boiler/set", "-m", `{"from":"viewer"}`)
	if !strings.Contains(out, "Not authorized") {
		t.Fatalf("viewer command: %q", out)
	}
	// nodered may: its command reaches the gateway, which answers.
	if out, code := mosquittoCmd(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", tp, "--cafile", cert, "-u", "nodered", "-P", "nodered-pw",
		"-q", "1", "-t", "gw-test/coap/boiler/set", "-m", `{"from":"nodered"}`); code != 0 {
		t.Fatalf("nodered command: exit %d %q", code, out)
	}
	nodered.waitFor(t, "gw-test/coap/boiler/set/result ")
	if n := nodered.count("viewer"); n != 0 {
		t.Fatalf("the viewer's command was delivered:\n%s", strings.Join(nodered.all(), "\n"))
	}
	if n := nodered.count("gw-test/coap/boiler/set/result "); n != 1 {
		t.Fatalf("%d command results, want 1 (nodered's):\n%s", n, strings.Join(nodered.all(), "\n"))
	}

	// MQTT over WebSocket at /mqtt, with the same users.
	ws, err := dialMQTTWebSocket(fmt.Sprintf("ws://127.0.0.1:%d/mqtt", wsPort))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	cli := paho.NewClient(paho.ClientConfig{Conn: ws, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { got <- pr.Packet.Topic; return true, nil }}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Connect(ctx, &paho.Connect{ClientID: "ws-viewer", KeepAlive: 0, // paho writes a packet in pieces; a PINGREQ between them would split it across WebSocket messages (test client only)
		CleanStart: true,
		Username:   "viewer", UsernameFlag: true, Password: []byte("viewer-pw"), PasswordFlag: true}); err != nil {
		t.Fatalf("paho over WebSocket: %v", err)
	}
	defer func() { _ = cli.Disconnect(&paho.Disconnect{}) }()
	if _, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "gw-test/coap/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if code, body := coap(t, coapPort, "post", "/tank", "50", `{"level":0.5}`); code != "2.04" {
		t.Fatalf("coap: %s %q", code, body)
	}
	select {
	case topic := <-got:
		if topic != "gw-test/coap/tank" {
			t.Fatalf("over WebSocket: %s", topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reading over WebSocket")
	}
	if _, err := dialMQTTWebSocket(fmt.Sprintf("ws://127.0.0.1:%d/", wsPort)); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("WebSocket on /: %v, want 404", err)
	}
	if !strings.Contains(g.Log(), `msg="refused an mqtt client"`) || !strings.Contains(g.Log(), `msg="denied by the broker's ACL"`) {
		t.Fatalf("refusals not logged:\n%s", g.Log())
	}
	if strings.Contains(g.Log(), "viewer-pw") || strings.Contains(g.Log(), "nodered-pw") {
		t.Fatal("a password was logged")
	}
}

// allow_anonymous = true with a listener beyond loopback: a warning, and
// anonymous clients get in. Without it and without users, `gateway check`
// refuses the file.
func TestBuiltInBrokerAnonymousBeyondLoopback(t *testing.T) {
	port, coapPort := testpeer.FreeTCPPort(t), testpeer.FreeUDPPort(t)
	base := fmt.Sprintf("[gateway]\nid = \"gw-test\"\ndata_dir = \"./data\"\n[broker]\nlisten = \"0.0.0.0:%d\"\n%%s[[coap]]\nlisten = \"127.0.0.1:%d\"\n", port, coapPort)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gateway.toml"), []byte(fmt.Sprintf(base, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runGateway(t, dir, nil, "check", "-c", "gateway.toml")
	if code != 1 || !strings.Contains(errOut, "broker.listen") || !strings.Contains(errOut, "no client could connect") {
		t.Fatalf("gateway check, beyond loopback without users: exit %d\n%s", code, errOut)
	}

	g := startGateway(t, fmt.Sprintf(base, "allow_anonymous = true\n"))
	if !strings.Contains(g.Log(), `level=WARN msg="anonymous clients allowed on a non-loopback listener`) {
		t.Fatalf("no warning:\n%s", g.Log())
	}
	out, code := mosquittoCmd(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "gw-test/status", "-C", "1", "-W", "5")
	if code != 0 || strings.TrimSpace(out) != "online" {
		t.Fatalf("anonymous subscriber: exit %d %q", code, out)
	}
}

// --- helpers ---

func runGatewayStdin(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gatewayBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// writeSelfSigned writes broker.pem and broker.key (a self-signed
// certificate for 127.0.0.1 and localhost, as `openssl req -x509` makes)
// into dir and returns their paths.
func writeSelfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "gw-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	cert, key := filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func nonLoopbackIPv4() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	return ""
}

// mosquittoCmd runs mosquitto_pub or mosquitto_sub (at most 15 s) and
// returns its output and exit code.
func mosquittoCmd(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testpeer.Bin(t, name), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("%s: %v", name, err)
	return "", -1
}

// sub is a mosquitto_sub printing "topic payload" lines.
type sub struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startSub(t *testing.T, args ...string) *sub {
	t.Helper()
	// stdbuf: mosquitto_sub's stdout is block-buffered on a pipe.
	s := &sub{done: make(chan struct{})}
	s.cmd = exec.Command(testpeer.Bin(t, "stdbuf"), append([]string{"-oL", testpeer.Bin(t, "mosquitto_sub"), "-v", "-q", "1"}, args...)...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

func (s *sub) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *sub) count(substr string) int {
	n := 0
	for _, l := range s.all() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// waitFor waits up to 10 s for a line starting with prefix.
func (s *sub) waitFor(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range s.all() {
			if strings.HasPrefix(l, prefix) {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("mosquitto_sub %v exited:\n%s", s.cmd.Args, strings.Join(s.all(), "\n"))
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("mosquitto_sub %v: no line %q within 10s:\n%s", s.cmd.Args, prefix, strings.Join(s.all(), "\n"))
}

// dialMQTTWebSocket opens a WebSocket with subprotocol "mqtt" and returns
// it as a net.Conn carrying MQTT in binary messages.
func dialMQTTWebSocket(url string) (net.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	return &wsNetConn{Conn: c.NetConn(), ws: c}, nil
}

type wsNetConn struct {
	net.Conn
	ws  *websocket.Conn
	r   io.Reader
	wmu sync.Mutex
}

func (c *wsNetConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r, err = nil, nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (c *wsNetConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
