package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// CoAP over DTLS with pre-shared keys, devices played by libcoap's
// coap-client-openssl (-u identity -k key: libcoap takes the key as text,
// the gateway's config as hex).

const (
	dtlsIdentity = "sensor-17"
	dtlsKey      = "e2e-s3cret-key"
)

// coaps runs coap-client-openssl and returns the response code ("" when
// the handshake was refused) and its output.
func coaps(t *testing.T, port int, identity, key, path, payload string) (code, out string) {
	t.Helper()
	bin := testpeer.Bin(t, "coap-client-openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, _ := exec.CommandContext(ctx, bin, "-v", "6", "-B", "5", "-u", identity, "-k", key, "-m", "post", "-t", "50",
		"-e", payload, fmt.Sprintf("coaps://127.0.0.1:%d%s", port, path)).CombinedOutput()
	code, _ = parseCoAPResponse(string(b))
	return code, string(b)
}

func dtlsConfig(p ports, dtlsPort int, listen string) string {
	cfg := baseConfig(p, fmt.Sprintf(`dtls_listen = "127.0.0.1:%d"
[[coap.psk]]
identity = %q
key = %q
`, dtlsPort, dtlsIdentity, hex.EncodeToString([]byte(dtlsKey))))
	if listen != "" {
		cfg = strings.Replace(cfg, fmt.Sprintf("listen = \"127.0.0.1:%d\"\nmax_payload", p.coap), "listen = "+listen+"\nmax_payload", 1)
	}
	return cfg
}

func TestCoAPOverDTLSReadingsReachMQTTWrongKeysAreRefused(t *testing.T) {
	p := freePorts(t)
	dtlsPort := testpeer.FreeUDPPort(t)
	g := startGateway(t, dtlsConfig(p, dtlsPort, ""))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")

	if code, out := coaps(t, dtlsPort, dtlsIdentity, dtlsKey, "/vault", `{"door":"closed","temperature":18.5}`); code != "2.04" {
		t.Fatalf("right key: response %q, want 2.04\n%s", code, out)
	}
	m := sub.WaitFor(t, "gw-test/coap/vault", 5*time.Second)
	jsonReading(t, m.Payload, map[string]any{"door": "closed", "temperature": 18.5})

	// Plain CoAP still works next to it.
	if code, body := coap(t, p.coap, "post", "/plain", "0", "1"); code != "2.04" {
		t.Fatalf("plain CoAP: %s %q", code, body)
	}
	sub.WaitFor(t, "gw-test/coap/plain", 5*time.Second)

	for _, c := range []struct{ name, identity, key, device, reason string }{
		{"wrong key", dtlsIdentity, "not-the-key", "intruder1", "wrong key for this identity"},
		{"unknown identity", "sensor-99", dtlsKey, "intruder2", "unknown PSK identity"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, out := coaps(t, dtlsPort, c.identity, c.key, "/"+c.device, `{"v":1}`); code != "" {
				t.Fatalf("got %s, want the handshake refused\n%s", code, out)
			}
			deadline := time.Now().Add(5 * time.Second)
			var line string
			for line == "" && time.Now().Before(deadline) {
				for _, l := range strings.Split(g.Log(), "\n") {
					if strings.Contains(l, "coap dtls handshake failed") && strings.Contains(l, "identity="+c.identity) {
						line = l
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			if line == "" || !strings.Contains(line, c.reason) || !strings.Contains(line, "peer=127.0.0.1:") {
				t.Fatalf("no warning naming identity %q and %q in the gateway log:\n%s", c.identity, c.reason, g.Log())
			}
		})
	}
	for _, m := range sub.Drain(time.Second) {
		if strings.Contains(m.Topic, "intruder") {
			t.Errorf("a refused client's reading reached MQTT: %s %s", m.Topic, m.Payload)
		}
	}
	for _, secret := range []string{dtlsKey, hex.EncodeToString([]byte(dtlsKey)), "not-the-key"} {
		if strings.Contains(g.Log(), secret) {
			t.Errorf("the gateway log contains a key (%q)", secret)
		}
	}
}

// TestCoAPOverDTLSOnly: listen = "" with dtls_listen: readings over DTLS,
// no plain CoAP port.
func TestCoAPOverDTLSOnly(t *testing.T) {
	p := freePorts(t)
	dtlsPort := testpeer.FreeUDPPort(t)
	startGateway(t, dtlsConfig(p, dtlsPort, `""`))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")

	if code, out := coaps(t, dtlsPort, dtlsIdentity, dtlsKey, "/meter", "42"); code != "2.04" {
		t.Fatalf("response %q, want 2.04\n%s", code, out)
	}
	jsonReading(t, sub.WaitFor(t, "gw-test/coap/meter", 5*time.Second).Payload, map[string]any{"value": 42})

	res := testpeer.CoAP(t, "-v", "6", "-B", "2", "-m", "post", "-e", "1", fmt.Sprintf("coap://127.0.0.1:%d/plain", p.coap))
	if code, _ := parseCoAPResponse(res.Out + "\n" + res.Err); code != "" {
		t.Fatalf("plain CoAP answered %s with listen = \"\"", code)
	}
}
