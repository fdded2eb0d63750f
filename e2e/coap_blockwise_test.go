package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// senmlDoc is a SenML JSON pack of n records of about 100 bytes each.
func senmlDoc(n int) string {
	var b strings.Builder
	b.WriteString(`[`)
	for i := range n {
		if i > 0 {
			b.WriteString(`,`)
		}
		fmt.Fprintf(&b, `{"n":"sensor_%03d_temperature_of_the_long_named_probe","v":%d.5,"u":"Cel"}`, i, 20+i%10)
	}
	b.WriteString(`]`)
	return b.String()
}

// RFC 7959 both ways: a 10 KiB SenML JSON document POSTed block-wise by
// libcoap's client reaches MQTT whole, and a device resource larger than
// one block is read by the gateway (a polled [[coap.device]]) block-wise.
func TestCoAPBlockwiseBothWays(t *testing.T) {
	doc := senmlDoc(140)
	if len(doc) < 10<<10 {
		t.Fatalf("document of %d bytes, want >= 10 KiB", len(doc))
	}
	file := filepath.Join(t.TempDir(), "doc.json")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	// A device holding the document: coap-server's /example_data takes a
	// block-wise PUT.
	dev := startLibcoapServer(t)
	put := testpeer.CoAP(t, "-m", "put", "-t", "110", "-b", "1024", "-f", file, dev.url("/example_data"))
	if strings.Contains(put.Out, "4.") || strings.Contains(put.Out, "5.") {
		t.Fatalf("PUT to the device: %+v", put)
	}

	p := freePorts(t)
	cfg := fmt.Sprintf(`[gateway]
id = "gw-test"
data_dir = "./data"

[broker]
listen = "127.0.0.1:%d"

[[coap]]
listen = "127.0.0.1:%d"
max_payload = "16KiB"
[[coap.device]]
device = "bigdev"
url = %q
observe = false
interval = "2s"
`, p.broker, p.coap, dev.url("/example_data"))
	startGateway(t, cfg)
	sub := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")

	check := func(m testpeer.Message) {
		t.Helper()
		f := decodeFrame(t, m.Payload)
		if len(errorsOf(f)) > 0 {
			t.Fatalf("errors in %s", m.Payload)
		}
		for _, i := range []int{0, 57, 139} {
			k := fmt.Sprintf("sensor_%03d_temperature_of_the_long_named_probe", i)
			if fmt.Sprint(f[k]) != fmt.Sprintf("%d.5", 20+i%10) {
				t.Fatalf("point %s = %v in a payload of %d bytes", k, f[k], len(m.Payload))
			}
		}
		if len(f) != 141 { // 140 points and time
			t.Fatalf("%d keys, want 141", len(f))
		}
	}

	// Block-wise GET by the gateway.
	check(sub.WaitFor(t, "gw-test/coap/bigdev", 15*time.Second))

	// Block-wise POST to the gateway (1 KiB blocks, 11 of them).
	res := testpeer.CoAP(t, "-m", "post", "-t", "110", "-b", "1024", "-f", file, fmt.Sprintf("coap://127.0.0.1:%d/big", p.coap))
	if strings.Contains(res.Out, "4.") || strings.Contains(res.Out, "5.") {
		t.Fatalf("block-wise POST: %+v", res)
	}
	check(sub.WaitFor(t, "gw-test/coap/big", 10*time.Second))
}
