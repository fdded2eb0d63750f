package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// TestCoAPCBORPayloads posts application/cbor (60) and SenML CBOR (112)
// with libcoap's client, the payload read from a file (binary safe), and
// checks the JSON published on the built-in broker; an octet-stream payload
// (42) is refused with 4.15, malformed CBOR with 4.00.
func TestCoAPCBORPayloads(t *testing.T) {
	p := freePorts(t)
	startGateway(t, baseConfig(p, ""))
	local := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")

	dir := t.TempDir()
	file := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := []struct {
		name, path, format, payload string
		topic                       string
		want                        map[string]any
		time                        string // when the payload sets it
	}{
		{"cbor map", "/boiler", "60",
			"\xa6" +
				"\x6btemperature\xf9\x4d\x60" + // 21.5 (half)
				"\x68humidity\x18\x28" + // 40
				"\x64pump\xf5" + // true
				"\x64mode\x63eco" +
				"\x65count\x00" + // 0: a zero byte in the payload
				"\x63raw\x43\x01\x02\x03", // bytes: published as base64
			"gw-test/coap/boiler", map[string]any{"temperature": 21.5, "humidity": 40, "pump": true, "mode": "eco", "count": 0, "raw": "AQID"}, ""},
		{"cbor bare value to a point", "/boiler/flow", "60", "\xfa\x40\x50\x00\x00", // 3.25 (single)
			"gw-test/coap/boiler", map[string]any{"flow": 3.25}, ""},
		{"senml cbor", "/greenhouse", "112",
			"\x83" +
				"\xa6\x21\x6bgreenhouse/\x22\x1a\x65\x53\xf1\x00\x23\x63Cel\x00\x6btemperature\x01\x63Cel\x02\xf9\x4e\x70" + // bn, bt 1700000000, bu, n, u, v 25.75
				"\xa2\x00\x68humidity\x02\x18\x3d" + // 61
				"\xa2\x00\x64vent\x04\xf4", // vb false
			"gw-test/coap/greenhouse", map[string]any{"temperature": 25.75, "humidity": 61, "vent": false}, "2023-11-14T22:13:20.000Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := coap(t, p.coap, "post", c.path, c.format, "", "-f", file(strings.ReplaceAll(c.name, " ", "_"), c.payload))
			if code != "2.04" {
				t.Fatalf("response %s %q, want 2.04", code, body)
			}
			m := local.WaitFor(t, c.topic, 5*time.Second)
			t.Logf("%s: %s", m.Topic, m.Payload)
			jsonReading(t, m.Payload, c.want)
			if c.time != "" && !strings.Contains(m.Payload, `"time":"`+c.time+`"`) {
				t.Fatalf("payload %s: time is not %s", m.Payload, c.time)
			}
		})
	}

	refused := []struct {
		name, format, payload, code, bodyHas string
	}{
		{"octet-stream", "42", "\xa1\x61a\x01", "4.15", "unsupported Content-Format 42"},
		{"truncated cbor", "60", "\xa1\x61a", "4.00", "invalid CBOR"},
		{"cbor tag", "60", "\xc1\x1a\x51\x4b\x67\xb0", "4.00", "tags are not supported"},
		{"senml cbor map", "112", "\xa2\x00\x61a\x02\x01", "4.00", "CBOR array of records"},
		{"senml cbor reserved name", "112", "\x81\xa2\x00\x64time\x02\x01", "4.00", `point name "time" is reserved`},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			code, body := coap(t, p.coap, "post", "/refused", c.format, "", "-f", file(strings.ReplaceAll(c.name, " ", "_"), c.payload))
			t.Logf("%s %s", code, body)
			if code != c.code || !strings.Contains(body, c.bodyHas) {
				t.Fatalf("response %s %q, want %s mentioning %q", code, body, c.code, c.bodyHas)
			}
		})
	}
	if code, body := coap(t, p.coap, "post", "/refused", "42", "", "-f", file("cf42", "x")); !strings.Contains(body, "60 (application/cbor)") ||
		!strings.Contains(body, "112 (application/senml+cbor)") {
		t.Fatalf("4.15 diagnostic %s %q does not list 60 and 112", code, body)
	}
	// The gateway still serves, and nothing refused was published.
	if code, _ := coap(t, p.coap, "post", "/healthy", "60", "", "-f", file("ok", "\xa1\x62ok\x01")); code != "2.04" {
		t.Fatalf("good request after bad ones: %s", code)
	}
	local.WaitFor(t, "gw-test/coap/healthy", 5*time.Second)
	for _, m := range local.Drain(200 * time.Millisecond) {
		if strings.Contains(m.Topic, "refused") {
			t.Fatalf("a refused reading was published: %+v", m)
		}
	}
}
