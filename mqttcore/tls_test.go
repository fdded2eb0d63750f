package mqttcore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type testPKI struct {
	dir                   string
	ca                    string
	serverCert, serverKey string
	clientCert, clientKey string
}

// newTestPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, readable by mosquitto after it drops privileges.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := testPKI{dir: dir}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "causeway test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.ca = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p testPKI) write(t *testing.T, name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mqtts with an extra CA and a client certificate (mTLS).
func TestUplinkTLSClientCertificate(t *testing.T) {
	pki := newTestPKI(t)
	tlsPort := freePort(t)
	mq := startMosquitto(t, fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
		tlsPort, pki.ca, pki.serverCert, pki.serverKey))
	sub := newSubscriber(t, mq.addr(), 1, "gw-01/#")

	opts := testUplinkOptions(t, fmt.Sprintf("mqtts://127.0.0.1:%d", tlsPort))
	opts.CAFile, opts.CertFile, opts.KeyFile = pki.ca, pki.clientCert, pki.clientKey
	u := newTestUplink(t, opts)
	runUplink(t, u)
	enqueueSeq(t, u, "gw-01/tls", 1, 20, 1)
	waitFor(t, 10*time.Second, "delivery over mqtts", func() bool { return distinct(sub.messages(), "gw-01/tls") == 20 })
	checkSeqs(t, sub.messages(), "gw-01/tls", 20)

	// Without the client certificate the broker refuses the handshake.
	opts2 := testUplinkOptions(t, fmt.Sprintf("mqtts://127.0.0.1:%d", tlsPort))
	opts2.CAFile = pki.ca
	u2 := newTestUplink(t, opts2)
	runUplink(t, u2)
	waitFor(t, 5*time.Second, "failed attempts", func() bool { return u2.Stats().ConnectErrors >= 2 })
	if u2.Connected() {
		t.Fatal("connected without a client certificate")
	}
}

// ws:// to mosquitto's WebSocket listener.
func TestUplinkWebSocket(t *testing.T) {
	wsPort := freePort(t)
	mq := startMosquitto(t, fmt.Sprintf("listener %d 127.0.0.1\nprotocol websockets\n", wsPort))
	sub := newSubscriber(t, mq.addr(), 1, "gw-01/#")
	u := newTestUplink(t, testUplinkOptions(t, fmt.Sprintf("ws://127.0.0.1:%d", wsPort)))
	runUplink(t, u)
	enqueueSeq(t, u, "gw-01/ws", 1, 20, 2)
	waitFor(t, 10*time.Second, "delivery over ws", func() bool { return distinct(sub.messages(), "gw-01/ws") == 20 })
	checkSeqs(t, sub.messages(), "gw-01/ws", 20)
}
