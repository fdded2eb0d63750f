package mqttcore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// (its own CA, as `openssl req -x509` makes one) and its key to dir, under
// names derived from serial; it returns the two paths.
func selfSigned(t testing.TB, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "causeway test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, fmt.Sprintf("cert-%d.pem", serial))
	keyFile = filepath.Join(dir, fmt.Sprintf("key-%d.pem", serial))
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// MQTT over TLS: mosquitto_sub and mosquitto_pub with --cafile, paho over
// crypto/tls; a client that does not trust the certificate, or speaks plain
// MQTT, does not get in; a renewed certificate is served without a restart.
func TestBrokerTLS(t *testing.T) {
	dir := t.TempDir()
	c1, k1 := selfSigned(t, dir, 1)
	certFile, keyFile := filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key")
	copyFile(t, c1, certFile)
	copyFile(t, k1, keyFile)
	b := startTestBroker(t, BrokerOptions{Listen: "none", TLSListen: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile, Users: testUsers(t)})
	if b.Addr() != nil || b.TLSAddr() == nil || b.WSAddr() != nil {
		t.Fatalf("addresses %v %v %v", b.Addr(), b.TLSAddr(), b.WSAddr())
	}
	_, port := hostPort(t, b.TLSAddr())
	cmds := collect(t, b, "gw-01/+/+/set")
	if err := b.Publish("gw-01/status", []byte("online"), 1, true); err != nil {
		t.Fatal(err)
	}

	for _, v := range []string{"5", "311"} {
		out, code := mosq(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "--cafile", certFile, "-V", v,
			"-u", "reader", "-P", "reader-pw", "-t", "gw-01/#", "-v", "-C", "1", "-W", "5")
		if code != 0 || strings.TrimSpace(out) != "gw-01/status online" {
			t.Fatalf("mosquitto_sub -V %s over TLS: exit %d %q", v, code, out)
		}
	}
	out, code := mosq(t, "mosquitto_pub", "-h", "localhost", "-p", port, "--cafile", certFile,
		"-u", "alice", "-P", "alice-pw", "-q", "1", "-t", "gw-01/modbus/boiler/set", "-m", `{"setpoint":21}`)
	if code != 0 {
		t.Fatalf("mosquitto_pub over TLS: exit %d %q", code, out)
	}
	waitFor(t, 5*time.Second, "the command over TLS", func() bool { return len(cmds.list()) == 1 })
	// The password check happens inside TLS as well.
	if out, code := mosq(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "--cafile", certFile, "-V", "5",
		"-u", "alice", "-P", "wrong", "-t", "alice/x", "-m", "x"); code != 0x86 {
		t.Fatalf("wrong password over TLS: exit %d %q", code, out)
	}

	// An untrusted certificate, and plain MQTT on the TLS port, fail.
	other, _ := selfSigned(t, dir, 99)
	if out, code := mosq(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "--cafile", other,
		"-u", "alice", "-P", "alice-pw", "-t", "alice/x", "-m", "x"); code == 0 {
		t.Fatalf("a client that does not trust the certificate connected: %q", out)
	}
	if out, code := mosq(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", port,
		"-u", "alice", "-P", "alice-pw", "-t", "alice/x", "-m", "x"); code == 0 {
		t.Fatalf("plain MQTT on the TLS port: %q", out)
	}

	// paho over crypto/tls.
	pool := x509.NewCertPool()
	pem1, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem1)
	conn, err := tls.Dial("tcp", b.TLSAddr().String(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	reader, _, err := connectClient(t, conn, &paho.Connect{Username: "reader", Password: []byte("reader-pw"), CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.subscribe("gw-01/modbus/#"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("gw-01/modbus/boiler", []byte(`{"t":1}`), 1, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a message over TLS", func() bool { return len(reader.messages()) == 1 })

	// Renewal: new files in place; the next handshake gets the new certificate.
	c2, k2 := selfSigned(t, dir, 2)
	copyFile(t, c2, certFile)
	copyFile(t, k2, keyFile)
	future := time.Now().Add(time.Minute)
	_ = os.Chtimes(certFile, future, future)
	pem2, _ := os.ReadFile(certFile)
	pool2 := x509.NewCertPool()
	pool2.AppendCertsFromPEM(pem2)
	tc, err := tls.Dial("tcp", b.TLSAddr().String(), &tls.Config{RootCAs: pool2, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("handshake after renewal: %v", err)
	}
	serial := tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	_ = tc.Close()
	if serial != 2 {
		t.Fatalf("served certificate %d after renewal, want 2", serial)
	}
	if out, code := mosq(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "--cafile", certFile,
		"-u", "reader", "-P", "reader-pw", "-t", "gw-01/status", "-C", "1", "-W", "5"); code != 0 {
		t.Fatalf("mosquitto_sub after renewal: exit %d %q", code, out)
	}
	// A broken renewal keeps the certificate in use.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(keyFile, future.Add(time.Minute), future.Add(time.Minute))
	tc, err = tls.Dial("tcp", b.TLSAddr().String(), &tls.Config{RootCAs: pool2, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("handshake after a broken renewal: %v", err)
	}
	_ = tc.Close()
}

func TestBrokerTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	c, _ := selfSigned(t, dir, 1)
	for _, o := range []BrokerOptions{
		{TLSListen: "127.0.0.1:0", TLSCertFile: c, TLSKeyFile: filepath.Join(dir, "missing.key")},
		{TLSListen: "127.0.0.1:0", TLSCertFile: c, TLSKeyFile: c},
	} {
		o.Listen, o.Log, o.AllowAnonymous = "127.0.0.1:0", discardLogger(), true
		if b, err := StartBroker(o); err == nil {
			_ = b.Close()
			t.Errorf("started with %s / %s", o.TLSCertFile, o.TLSKeyFile)
		}
	}
	// A port in use: the listeners opened before it are closed again.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if b, err := StartBroker(BrokerOptions{Listen: "127.0.0.1:0", WebSocket: ln.Addr().String(), Log: discardLogger()}); err == nil {
		_ = b.Close()
		t.Fatal("started on a port in use")
	}
}

// dialWS opens an MQTT-over-WebSocket connection to url.
func dialWS(t testing.TB, url string) (net.Conn, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	if ws.Subprotocol() != "mqtt" {
		t.Errorf("subprotocol %q", ws.Subprotocol())
	}
	return newWSConn(ws), nil
}

// MQTT over WebSocket at /mqtt only, with users and ACLs as on TCP.
func TestBrokerWebSocket(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{WebSocket: "127.0.0.1:0", Users: testUsers(t)})
	base := "ws://" + b.WSAddr().String()
	cmds := collect(t, b, "gw-01/+/+/set")

	conn, err := dialWS(t, base+"/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	reader, _, err := connectClient(t, conn, &paho.Connect{Username: "reader", Password: []byte("reader-pw"), CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if sa, err := reader.subscribe("gw-01/#", "#"); sa == nil || !bytes.Equal(sa.Reasons, []byte{1, 0x87}) {
		t.Fatalf("SUBACK over WebSocket: %+v %v", sa, err)
	}
	for i := range 50 { // several packets per WebSocket message, and packets split across messages
		if err := b.Publish(fmt.Sprintf("gw-01/modbus/boiler/%d", i), bytes.Repeat([]byte("v"), i*100), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "50 messages over WebSocket", func() bool { return len(reader.messages()) == 50 })
	for i, m := range reader.messages() {
		if m.topic != fmt.Sprintf("gw-01/modbus/boiler/%d", i) || len(m.payload) != i*100 {
			t.Fatalf("message %d: %s (%d bytes)", i, m.topic, len(m.payload))
		}
	}
	conn, err = dialWS(t, base+"/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	alice, _, err := connectClient(t, conn, &paho.Connect{Username: "alice", Password: []byte("alice-pw"), CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.publish(1, "gw-01/modbus/boiler/set", `{"setpoint":20}`); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.publish(1, "gw-02/modbus/boiler/set", `{"setpoint":20}`); err == nil {
		t.Fatal("ACL not applied over WebSocket")
	}
	waitFor(t, 5*time.Second, "the command over WebSocket", func() bool { return len(cmds.list()) == 1 })
	conn, _ = dialWS(t, base+"/mqtt")
	if _, ca, err := connectClient(t, conn, &paho.Connect{Username: "alice", Password: []byte("nope"), CleanStart: true}); err == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("wrong password over WebSocket: %+v %v", ca, err)
	}

	// Other paths do not upgrade.
	for _, p := range []string{"/", "/mqtt/", "/other", "/MQTT"} {
		if c, err := dialWS(t, base+p); err == nil {
			_ = c.Close()
			t.Errorf("upgraded on %s", p)
		} else if !strings.Contains(err.Error(), "HTTP 404") {
			t.Errorf("%s: %v, want 404", p, err)
		}
	}
	resp, err := http.Get("http://" + b.WSAddr().String() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET /mqtt: %d", resp.StatusCode)
	}

	// A text message ends the connection (MQTT needs binary messages).
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial(base+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("\x10\x00")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("connection still open after a text message: %v", err)
	}
}

// A WebSocket subscriber that stops reading does not stall publishing: its
// writes are bounded like those of a TCP client.
func TestBrokerWebSocketSlowSubscriber(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{WebSocket: "127.0.0.1:0"})
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, ReadBufferSize: 1024}
	ws, _, err := d.Dial("ws://"+b.WSAddr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if tc, ok := ws.NetConn().(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	stalled, _, err := connectClient(t, newWSConn(ws), &paho.Connect{CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stalled.subscribe("data/#"); err != nil {
		t.Fatal(err)
	}
	// Stop reading: block paho's reader behind a lock that is never
	// released by making every PUBLISH handler wait.
	block := make(chan struct{})
	defer close(block)
	stalled.cli.AddOnPublishReceived(func(paho.PublishReceived) (bool, error) { <-block; return true, nil })
	payload := bytes.Repeat([]byte("x"), 8<<10)
	var worst time.Duration
	for i := range 2000 {
		t0 := time.Now()
		if err := b.Publish(fmt.Sprintf("data/%d", i), payload, 1, false); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(t0))
	}
	st := b.Stats()
	t.Logf("worst publish %s; stats %+v", worst, st)
	if worst > time.Second {
		t.Fatalf("a Publish blocked for %s behind a stalled WebSocket subscriber", worst)
	}
	if st.SlowDisconnects == 0 && st.MessagesDropped == 0 {
		t.Fatalf("the stalled WebSocket subscriber was neither disconnected nor dropped: %+v", st)
	}
}

// A connection that sends no CONNECT (no TLS handshake, no WebSocket
// upgrade) is closed after ConnectTimeout.
func TestBrokerConnectTimeout(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, 1)
	b := startTestBroker(t, BrokerOptions{TLSListen: "127.0.0.1:0", TLSCertFile: cert, TLSKeyFile: key,
		WebSocket: "127.0.0.1:0", ConnectTimeout: 300 * time.Millisecond})
	for name, addr := range map[string]net.Addr{"tcp": b.Addr(), "tls": b.TLSAddr(), "ws": b.WSAddr()} {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		_ = c.Close()
		if took := time.Since(start); err == nil || took > 3*time.Second {
			t.Errorf("%s: idle connection: read %v after %s, want it closed after 300ms", name, err, took)
		}
	}
	// Upgraded to WebSocket, but no CONNECT.
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial("ws://"+b.WSAddr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, _, err := ws.ReadMessage(); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("websocket without CONNECT: %v after %s", err, time.Since(start))
	}
	// A client that connects in time keeps its connection past the timeout.
	s := newSubscriber(t, b.Addr().String(), 0, "x")
	time.Sleep(600 * time.Millisecond)
	if err := b.Publish("x", []byte("still here"), 0, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery after the connect timeout", func() bool { return s.count() == 1 })
}
