package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testEnv is the environment the tests parse with.
func testEnv(k string) (string, bool) {
	v, ok := map[string]string{
		"NODERED_PW":   "node-red-secret",
		"SENSOR17_KEY": "00112233aabbccdd",
		"UPLINK_PW":    "s3cret-uplink",
		"HOST":         "broker.example.com",
		"EMPTY":        "",
	}[k]
	return v, ok
}

func testOpts(allow bool) ParseOptions {
	return ParseOptions{
		AllowUnsupported: allow,
		Hostname:         func() (string, error) { return "testhost", nil },
	}
}

func parseOK(t *testing.T, src string, allow bool) *Config {
	t.Helper()
	c, err := ParseWith("gateway.toml", []byte(src), testEnv, testOpts(allow))
	if err != nil {
		t.Fatalf("unexpected errors:\n%v\n--- file:\n%s", err, src)
	}
	return c
}

func parseErrs(t *testing.T, src string, allow bool) []Error {
	t.Helper()
	c, err := ParseWith("gateway.toml", []byte(src), testEnv, testOpts(allow))
	if err == nil {
		t.Fatalf("no error; effective config:\n%s", c.Redacted())
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not *Errors: %v", err, err)
	}
	if c != nil {
		t.Errorf("a config was returned with errors")
	}
	return errs.List
}

type want struct {
	path string
	line int
	msg  string // substring of Msg
}

func hasError(list []Error, w want) bool {
	for _, e := range list {
		if e.Path == w.path && e.Line == w.line && strings.Contains(e.Msg, w.msg) {
			return true
		}
	}
	return false
}

func dump(list []Error) string {
	var b strings.Builder
	for _, e := range list {
		b.WriteString("\n  " + e.Error())
	}
	return b.String()
}

func TestMinimalFile(t *testing.T) {
	c := parseOK(t, "[[coap]]\n", false)
	if !c.Broker.Enabled || c.Broker.Listen != "127.0.0.1:1883" || !c.Broker.AllowAnonymous {
		t.Errorf("broker = %+v", c.Broker)
	}
	if len(c.CoAP) != 1 {
		t.Fatalf("coap blocks = %d", len(c.CoAP))
	}
	if got := c.CoAP[0]; got.Name != "coap" || got.Listen != "0.0.0.0:5683" || got.MaxPayload != 16*1024 {
		t.Errorf("coap = %+v", got)
	}
	if c.Uplink != nil || c.HTTP != nil || len(c.Routes) != 0 || len(c.Modbus) != 0 || len(c.UART) != 0 {
		t.Errorf("unexpected blocks: %+v", c)
	}
	if c.Gateway.ID != "testhost" {
		t.Errorf("gateway id = %q, want the host name", c.Gateway.ID)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n\n"} {
		c := parseOK(t, src, false)
		if !c.Broker.Enabled || c.Broker.Listen != DefaultBrokerListen || len(c.CoAP) != 0 {
			t.Errorf("%q: %+v", src, c)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := parseOK(t, `
[uplink]
url = "mqtt://broker.example.com"
[[coap]]
[[route]]
match = "coap/*/*"
`, false)
	g := c.Gateway
	if g.ID != "testhost" || g.DataDir != "./data" || g.LogLevel != "info" || g.LogFormat != "text" || g.StatsInterval.D() != 60*time.Second {
		t.Errorf("gateway = %+v", g)
	}
	u := c.Uplink
	if u.ClientID != "testhost" || u.Keepalive.D() != 30*time.Second || u.Protocol != 5 || !u.SubscribeCommands {
		t.Errorf("uplink = %+v", u)
	}
	q := c.Queue
	if q.MaxBytes != 256<<20 || q.MaxAge.D() != 168*time.Hour || q.WhenFull != "drop_oldest" || q.Fsync != "batch" ||
		q.FsyncInterval.D() != 50*time.Millisecond || q.Inflight != 32 {
		t.Errorf("queue = %+v", q)
	}
	r := c.Routes[0]
	want := DefaultRoute()
	want.Match, want.Line = "coap/*/*", 5
	if !reflect.DeepEqual(r, want) {
		t.Errorf("route = %+v, want %+v", r, want)
	}
	if r.Topic != "{gateway}/{adapter}/{device}" || r.Payload != "json" || r.QoS != 1 || r.Retain || !r.Uplink {
		t.Errorf("default route = %+v", r)
	}
	if c.HomeAssistant.Enabled || c.HomeAssistant.DiscoveryPrefix != "homeassistant" {
		t.Errorf("homeassistant = %+v", c.HomeAssistant)
	}
}

func TestAdapterDefaults(t *testing.T) {
	c := parseOK(t, `
[[coap]]
[[coap.device]]
device = "greenhouse"
url = "coap://192.0.2.10/temp"
[[modbus]]
url = "rtu:///dev/ttyUSB0"
[[modbus.device]]
name = "boiler"
[[modbus.device.point]]
name = "supply_temp"
address = 100
[[modbus.device.point]]
name = "pump"
table = "coil"
address = 3
[[uart]]
name = "meter"
port = "/dev/ttyAMA0"
parser = "binary"
[[uart.field]]
name = "temperature"
offset = 2
type = "int16"
`, true)
	dv := c.CoAP[0].Devices[0]
	if !dv.Observe || dv.Interval.D() != 10*time.Second || dv.Point != "value" {
		t.Errorf("coap device = %+v", dv)
	}
	m := c.Modbus[0]
	wantSerial := Serial{Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1, USBInterface: -1}
	if m.Name != "modbus" || m.Serial != wantSerial || m.Timeout.D() != 500*time.Millisecond || m.Retries != 2 {
		t.Errorf("modbus = %+v", m)
	}
	md := m.Devices[0]
	if md.UnitID != 1 || md.Interval.D() != time.Second || md.MaxGap != 8 {
		t.Errorf("modbus device = %+v", md)
	}
	if p := md.Points[0]; p.Table != "holding" || p.Type != "uint16" || p.Order != "ABCD" || p.Scale != 1 || p.Offset != 0 {
		t.Errorf("modbus point = %+v", p)
	}
	if p := md.Points[1]; p.Type != "bool" {
		t.Errorf("a coil without type should default to bool: %+v", p)
	}
	u := c.UART[0]
	if u.Serial != wantSerial || u.Framing != "line" || u.Delimiter != "\n" || u.LengthSize != 1 || u.LengthOrder != "big" ||
		u.MaxFrame != 4096 || u.Checksum != "none" || u.Device != "meter" {
		t.Errorf("uart = %+v", u)
	}
	if f := u.Fields[0]; f.Order != "big" || f.Scale != 1 {
		t.Errorf("uart field = %+v", f)
	}
	if got := c.AdapterNames(); !reflect.DeepEqual(got, []string{"coap", "modbus", "meter"}) {
		t.Errorf("AdapterNames = %v", got)
	}
}

func TestExplicitFalseAndZeroWin(t *testing.T) {
	c := parseOK(t, `
[broker]
enabled = false
[uplink]
url = "mqtt://h"
subscribe_commands = false
keepalive = "0s"
[[coap]]
[[coap.device]]
device = "d"
url = "coap://h/x"
observe = false
[[route]]
match = "**"
uplink = false
qos = 0
`, true)
	if c.Broker.Enabled || c.Uplink.SubscribeCommands || c.Uplink.Keepalive != 0 || c.CoAP[0].Devices[0].Observe ||
		c.Routes[0].Uplink || c.Routes[0].QoS != 0 {
		t.Errorf("explicit false/zero values were replaced by defaults: %+v", c)
	}
}

func TestAllowAnonymousDefault(t *testing.T) {
	if c := parseOK(t, "[broker]\nlisten = \"[::1]:1883\"\n", false); !c.Broker.AllowAnonymous {
		t.Error("loopback listener: allow_anonymous should default to true")
	}
	if c := parseOK(t, "[broker]\nlisten = \"\"\n", false); !c.Broker.AllowAnonymous {
		t.Error("no listener: allow_anonymous should default to true")
	}
	withUser := "[[broker.user]]\nname = \"a\"\npassword = \"p\"\n"
	if c := parseOK(t, "[broker]\nlisten = \"0.0.0.0:1883\"\n"+withUser, false); c.Broker.AllowAnonymous {
		t.Error("a listener on every interface: allow_anonymous should default to false")
	}
	if c := parseOK(t, "[broker]\nlisten = \"127.0.0.1:1883\"\ntls_listen = \"192.0.2.1:8883\"\ntls_cert_file = \"/etc/hostname\"\ntls_key_file = \"/etc/hostname\"\n"+withUser, false); c.Broker.AllowAnonymous {
		t.Error("a TLS listener beyond loopback: allow_anonymous should default to false")
	}
	if c := parseOK(t, "[broker]\nlisten = \"localhost:1883\"\nwebsocket = \"[::1]:8083\"\n", false); !c.Broker.AllowAnonymous {
		t.Error("every listener on loopback: allow_anonymous should default to true")
	}
	if c := parseOK(t, "[broker]\nlisten = \"127.0.0.1:1883\"\nallow_anonymous = false\n"+withUser, false); c.Broker.AllowAnonymous {
		t.Error("explicit allow_anonymous = false lost")
	}
	if c := parseOK(t, "[broker]\nenabled = false\nlisten = \"0.0.0.0:1883\"\n[uplink]\nurl = \"mqtt://h\"\n", false); c.Broker.AllowAnonymous {
		t.Error("allow_anonymous follows the listeners even when the broker is disabled")
	}
	c := parseOK(t, "[broker]\nlisten = \"0.0.0.0:1883\"\nallow_anonymous = true\n", false)
	if !c.Broker.AllowAnonymous {
		t.Error("explicit allow_anonymous lost")
	}
}

// TestErrors: each class of error names its key path and line.
// protocol = 4 (MQTT 3.1.1) is accepted as it is, without AllowUnsupported.
func TestUplinkProtocol4(t *testing.T) {
	c := parseOK(t, "[uplink]\nurl = \"mqtt://h\"\nprotocol = 4\nusername = \"u\"\npassword = \"p\"\n", false)
	if c.Uplink == nil || c.Uplink.Protocol != 4 {
		t.Fatalf("uplink = %+v", c.Uplink)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		allow bool // AllowUnsupported
		src   string
		want  want
	}{
		{"syntax", false, "[gateway]\nid = \"gw\"\nlog_level = \n", want{"", 3, "syntax error"}},
		{"unknown key", false, "[gateway]\nidd = \"x\"\n", want{"gateway.idd", 2, `unknown key "idd" (did you mean "id"?)`}},
		{"unknown table", false, "\n[gatway]\nid = \"x\"\n", want{"gatway", 2, `did you mean "gateway"`}},
		{"unknown top-level key", false, "id = \"x\"\n", want{"id", 1, "unknown key"}},
		{"unknown key in array", false, "[[coap]]\n[[coap]]\nname = \"c2\"\nlisten_addr = \":1\"\n", want{"coap[1].listen_addr", 4, "unknown key"}},
		{"wrong type string", true, "[[uart]]\nport = \"/dev/x\"\nbaud = \"fast\"\npattern = '(?P<a>.)'\n", want{"uart[0].baud", 3, `expected an integer, got string "fast"`}},
		{"wrong type qos", false, "[[coap]]\n[[route]]\nmatch = \"**\"\nqos = \"1\"\n", want{"route[0].qos", 4, `expected an integer, got string "1"`}},
		{"wrong type float for int", false, "[queue]\ninflight = 3.5\n", want{"queue.inflight", 2, "expected an integer, got float 3.5"}},
		{"wrong type bool", false, "[broker]\nenabled = \"yes\"\n", want{"broker.enabled", 2, "expected a boolean"}},
		{"wrong type table", false, "gateway = 5\n", want{"gateway", 1, "expected a table ([gateway])"}},
		{"single table for array", false, "[coap]\nname = \"x\"\n", want{"coap", 1, "write [[coap]], not [coap]"}},
		{"array of strings", true, "[[broker.user]]\nname = \"a\"\npassword = \"p\"\npublish = [\"a\", 5]\n", want{"broker.user[0].publish[1]", 4, "expected a string, got integer 5"}},
		{"secret type error hides value", false, "[uplink]\nurl = \"mqtt://h\"\npassword = 123456\n", want{"uplink.password", 3, "expected a string, got integer"}},
		{"bad duration", false, "[gateway]\nstats_interval = \"5 minutes\"\n", want{"gateway.stats_interval", 2, `invalid duration "5 minutes"`}},
		{"duration as integer", false, "[gateway]\nstats_interval = 60\n", want{"gateway.stats_interval", 2, `expected a duration string like "30s", got integer 60`}},
		{"negative duration", false, "[queue]\nmax_age = \"-1h\"\n", want{"queue.max_age", 2, "must not be negative"}},
		{"bad size", false, "[[coap]]\n\n[[coap]]\nname = \"c2\"\nmax_payload = \"12XB\"\n", want{"coap[1].max_payload", 5, `invalid size "12XB": use a whole number with a binary unit`}},
		{"negative size", false, "[queue]\nmax_bytes = \"-5MiB\"\n", want{"queue.max_bytes", 2, "must not be negative"}},
		{"zero size", false, "[queue]\nmax_bytes = \"0B\"\n", want{"queue.max_bytes", 2, "greater than 0"}},
		{"log_level", false, "[gateway]\nlog_level = \"verbose\"\n", want{"gateway.log_level", 2, `invalid value "verbose": use one of "debug", "info", "warn" or "error"`}},
		{"log_format", false, "[gateway]\nlog_format = \"xml\"\n", want{"gateway.log_format", 2, "invalid value"}},
		{"when_full", false, "[queue]\nwhen_full = \"block\"\n", want{"queue.when_full", 2, "invalid value"}},
		{"fsync", false, "[queue]\nfsync = \"sometimes\"\n", want{"queue.fsync", 2, "invalid value"}},
		{"inflight", false, "[queue]\ninflight = 0\n", want{"queue.inflight", 2, "out of range 1..65535"}},
		{"payload", false, "[[coap]]\n[[route]]\nmatch = \"**\"\npayload = \"xml\"\n", want{"route[0].payload", 4, "invalid value"}},
		{"qos range", false, "[[coap]]\n[[route]]\nmatch = \"**\"\nqos = 3\n", want{"route[0].qos", 4, "out of range 0..2"}},
		{"protocol", false, "[uplink]\nurl = \"mqtt://h\"\nprotocol = 3\n", want{"uplink.protocol", 3, "use 5 (MQTT 5) or 4"}},
		{"table", true, modbusWith("table = \"register\""), want{"modbus[0].device[0].point[0].table", 8, "invalid value"}},
		{"type", true, modbusWith("type = \"int8\""), want{"modbus[0].device[0].point[0].type", 8, "invalid value"}},
		{"order", true, modbusWith("order = \"ABDC\""), want{"modbus[0].device[0].point[0].order", 8, "invalid value"}},
		{"order 64 on 32-bit", true, modbusWith("type = \"float32\"\norder = \"HGFEDCBA\""), want{"modbus[0].device[0].point[0].order", 9, "invalid value"}},
		{"coil type", true, modbusWith("table = \"coil\"\ntype = \"int16\""), want{"modbus[0].device[0].point[0].type", 9, "single bit"}},
		{"string length", true, modbusWith("type = \"string\""), want{"modbus[0].device[0].point[0].length", 5, "length = 1..125"}},
		{"address missing", true, "[[modbus]]\nurl = \"tcp://h:502\"\n[[modbus.device]]\nname = \"d\"\n[[modbus.device.point]]\nname = \"p\"\n", want{"modbus[0].device[0].point[0].address", 5, "required"}},
		{"scale zero", true, modbusWith("scale = 0.0"), want{"modbus[0].device[0].point[0].scale", 8, "must not be 0"}},
		{"writable input", true, modbusWith("table = \"input\"\nwritable = true"), want{"modbus[0].device[0].point[0].writable", 9, "read-only"}},
		{"modbus url scheme", true, "[[modbus]]\nurl = \"udp://h:502\"\n[[modbus.device]]\nname = \"d\"\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n", want{"modbus[0].url", 2, "use tcp://, rtu:// or rtuovertcp://"}},
		{"modbus rtu two slashes", true, "[[modbus]]\nurl = \"rtu://dev/ttyUSB0\"\n[[modbus.device]]\nname = \"d\"\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n", want{"modbus[0].url", 2, "three slashes"}},
		{"coap rate_limit negative", true, "[[coap]]\nrate_limit = -1.0\n", want{"coap[0].rate_limit", 2, "out of range"}},
		{"coap rate_burst zero", true, "[[coap]]\nrate_burst = 0\n", want{"coap[0].rate_burst", 2, "out of range 1..1000000"}},
		{"usb_interface without usb", true, "[[uart]]\nport = \"/dev/x\"\nparser = \"kv\"\nusb_interface = 1\n", want{"uart[0].usb_interface", 4, "needs usb"}},
		{"usb_interface range", true, "[[uart]]\nusb = \"0403:6011\"\nparser = \"kv\"\nusb_interface = 300\n", want{"uart[0].usb_interface", 4, "out of range 0..255"}},
		{"uart length field beyond max_frame", true, "[[uart]]\nport = \"/dev/x\"\nparser = \"kv\"\nframing = \"length\"\nmax_frame = \"4B\"\nlength_offset = 3\nlength_size = 2\n", want{"uart[0].length_offset", 6, "does not fit in max_frame"}},
		{"uart max_frame too large", true, "[[uart]]\nport = \"/dev/x\"\nparser = \"kv\"\nmax_frame = \"2GiB\"\n", want{"uart[0].max_frame", 4, "more than 1GiB"}},
		{"modbus no devices", true, "\n[[modbus]]\nurl = \"tcp://h:502\"\n", want{"modbus[0]", 2, "at least one [[modbus.device]]"}},
		{"unit_id rtu", true, "[[modbus]]\nurl = \"rtu:///dev/ttyS0\"\n[[modbus.device]]\nname = \"d\"\nunit_id = 0\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n", want{"modbus[0].device[0].unit_id", 5, "out of range 1..247"}},
		{"framing", true, uartWith("framing = \"crlf\""), want{"uart[0].framing", 4, "invalid value"}},
		{"checksum", true, uartWith("checksum = \"crc32\""), want{"uart[0].checksum", 4, "invalid value"}},
		{"parser", true, uartWith("parser = \"xml\""), want{"uart[0].parser", 4, "invalid value"}},
		{"parity", true, uartWith("parity = \"even\""), want{"uart[0].parity", 4, `use one of "N", "E" or "O"`}},
		{"stop_bits", true, uartWith("stop_bits = 3"), want{"uart[0].stop_bits", 4, "out of range 1..2"}},
		{"length_order", true, uartWith("length_order = \"middle\""), want{"uart[0].length_order", 4, "invalid value"}},
		{"length_size", true, uartWith("length_size = 4"), want{"uart[0].length_size", 4, "out of range 1..2"}},
		{"bad regex", true, "[[uart]]\nport = \"/dev/x\"\npattern = \"(?P<t>\"\n", want{"uart[0].pattern", 3, "invalid regular expression"}},
		{"reserved regex group", true, "[[uart]]\nport = \"/dev/x\"\npattern = \"(?P<time>.)(?P<t>.)\"\n", want{"uart[0].pattern", 3, "reserved name"}},
		{"uart no port", true, "[[uart]]\npattern = \"(?P<t>.)\"\n", want{"uart[0].port", 1, "required"}},
		{"uart usb format", true, "[[uart]]\nusb = \"0403-6001\"\npattern = \"(?P<t>.)\"\n", want{"uart[0].usb", 2, "vid:pid"}},
		{"uart write placeholder", true, uartWith("write = \"SET {name}={value}\""), want{"uart[0].write", 4, "unknown placeholder {name}"}},
		{"uart field type", true, "[[uart]]\nport = \"/dev/x\"\nparser = \"binary\"\n[[uart.field]]\nname = \"t\"\noffset = 0\ntype = \"int12\"\n", want{"uart[0].field[0].type", 7, "invalid value"}},
		{"uart binary without fields", true, "[[uart]]\nport = \"/dev/x\"\nparser = \"binary\"\n", want{"uart[0]", 1, "at least one [[uart.field]]"}},
		{"csv columns", true, "[[uart]]\nport = \"/dev/x\"\nparser = \"csv\"\ncolumns = [\"device\", \"temp\", \"stats\"]\n", want{"uart[0].columns[2]", 4, "reserved name"}},
		{"duplicate unnamed coap", false, "[[coap]]\nlisten = \":5683\"\n\n[[coap]]\nlisten = \":5684\"\n", want{"coap[1].name", 4, `adapter name "coap" (the default for an unnamed block) is already used by coap[0] (line 1)`}},
		{"duplicate across kinds", true, "[[coap]]\nname = \"bus\"\n[[modbus]]\nname = \"bus\"\nurl = \"tcp://h:502\"\n[[modbus.device]]\nname = \"d\"\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n", want{"modbus[0].name", 4, `adapter name "bus" is already used by coap[0] (line 1)`}},
		{"reserved adapter name", false, "[[coap]]\nname = \"status\"\n", want{"coap[0].name", 2, "reserved name"}},
		{"adapter name with slash", false, "[[coap]]\nname = \"a/b\"\n", want{"coap[0].name", 2, `must not contain "+", "#" or "/"`}},
		{"adapter name with plus", false, "[[coap]]\nname = \"a+b\"\n", want{"coap[0].name", 2, `must not contain`}},
		{"empty adapter name", false, "[[coap]]\nname = \"\"\n", want{"coap[0].name", 2, "must not be empty"}},
		{"reserved device name", true, "[[modbus]]\nurl = \"tcp://h:502\"\n[[modbus.device]]\nname = \"set\"\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n", want{"modbus[0].device[0].name", 4, "reserved name"}},
		{"reserved point name time", true, modbusPoint("time"), want{"modbus[0].device[0].point[0].name", 6, "reserved name"}},
		{"reserved point name errors", true, modbusPoint("errors"), want{"modbus[0].device[0].point[0].name", 6, "reserved name"}},
		{"point name with hash", true, modbusPoint("a#b"), want{"modbus[0].device[0].point[0].name", 6, "must not contain"}},
		{"duplicate point", true, "[[modbus]]\nurl = \"tcp://h:502\"\n[[modbus.device]]\nname = \"d\"\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n[[modbus.device.point]]\nname = \"p\"\naddress = 2\n", want{"modbus[0].device[0].point[1].name", 9, "already defined by modbus[0].device[0].point[0] (line 5)"}},
		{"reserved coap device point", true, "[[coap]]\n[[coap.device]]\ndevice = \"d\"\nurl = \"coap://h/x\"\npoint = \"availability\"\n", want{"coap[0].device[0].point", 5, "reserved name"}},
		{"unset env", false, "[gateway]\nid = \"${NOPE}\"\n", want{"gateway.id", 2, "environment variable NOPE is not set"}},
		{"unset env in array", true, "[[broker.user]]\nname = \"a\"\npassword = \"p\"\nsubscribe = [\"#\", \"${NOPE}/x\"]\n", want{"broker.user[0].subscribe[1]", 4, "NOPE is not set"}},
		{"unterminated env", false, "[gateway]\nid = \"${HOST\"\n", want{"gateway.id", 2, "unterminated"}},
		{"invalid env name", false, "[gateway]\nid = \"${A-B}\"\n", want{"gateway.id", 2, "invalid environment variable name"}},
		{"unreadable password_file", false, "[uplink]\nurl = \"mqtt://h\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n", want{"uplink.password_file", 4, "cannot read /nonexistent/pw"}},
		{"password and password_file", false, "[uplink]\nurl = \"mqtt://h\"\npassword = \"x\"\npassword_file = \"pw\"\n", want{"uplink.password_file", 4, "set either password or password_file, not both"}},
		{"unreadable tls file", false, "[uplink]\nurl = \"mqtts://h\"\nca_file = \"/nonexistent/ca.pem\"\n", want{"uplink.ca_file", 3, "cannot read /nonexistent/ca.pem"}},
		{"same serial port", true, "[[uart]]\nport = \"/dev/ttyUSB0\"\npattern = \"(?P<t>.)\"\n[[modbus]]\nurl = \"rtu:///dev/ttyUSB0\"\n[[modbus.device]]\nname = \"d\"\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n", want{"modbus[0].url", 5, `serial port "/dev/ttyUSB0" is already opened by uart[0] (line 2)`}},
		{"same usb identity", true, "[[uart]]\nname = \"a\"\nusb = \"0403:6001\"\nusb_serial = \"X1\"\npattern = \"(?P<t>.)\"\n[[uart]]\nname = \"b\"\nusb = \"0403:6001\"\nusb_serial = \"X1\"\npattern = \"(?P<t>.)\"\n", want{"uart[1].usb", 8, "already opened by uart[0] (line 3)"}},
		{"value needs point", false, "[[coap]]\n[[route]]\nmatch = \"coap/*/*\"\npayload = \"value\"\n", want{"route[0].payload", 4, "the topic needs {point}"}},
		{"unknown placeholder", false, "[[coap]]\n[[route]]\nmatch = \"coap/*/*\"\ntopic = \"{host}/{device}\"\n", want{"route[0].topic", 4, "unknown placeholder {host}"}},
		{"topic with wildcard", false, "[[coap]]\n[[route]]\nmatch = \"coap/*/*\"\ntopic = \"a/+/b\"\n", want{"route[0].topic", 4, `must not contain "+" or "#"`}},
		{"invalid glob", false, "[[coap]]\n[[route]]\nmatch = \"coap/**x/*\"\n", want{"route[0].match", 3, `"**" must be a whole segment`}},
		{"glob empty segment", false, "[[coap]]\n[[route]]\nmatch = \"coap//*\"\n", want{"route[0].match", 3, "empty segment"}},
		{"glob too short", false, "[[coap]]\n[[route]]\nmatch = \"coap/*\"\n", want{"route[0].match", 3, "can never match"}},
		{"glob brace", false, "[[coap]]\n[[route]]\nmatch = \"coap/{device}/*\"\n", want{"route[0].match", 3, "are not allowed"}},
		{"topic reserved last level", false, "[[coap]]\n[[route]]\nmatch = \"coap/*/*\"\ntopic = \"{gateway}/{device}/status\"\n", want{"route[0].topic", 4, "reserved for the gateway's own topics"}},
		{"glob bad char", false, "[[coap]]\n[[route]]\nmatch = \"coap/[ab]/*\"\n", want{"route[0].match", 3, "only \"*\" and \"**\" are wildcards"}},
		{"route match missing", false, "[[coap]]\n[[route]]\ntopic = \"x/{point}\"\n", want{"route[0].match", 2, "required"}},
		{"uplink scheme", false, "[uplink]\nurl = \"tcp://broker:1883\"\n", want{"uplink.url", 2, `scheme "tcp" is not supported: use mqtt://, mqtts://, ws:// or wss:// (for plain MQTT over TCP write "mqtt://")`}},
		{"uplink no host", false, "[uplink]\nurl = \"mqtt://:1883\"\n", want{"uplink.url", 2, "has no host"}},
		{"uplink no scheme", false, "[uplink]\nurl = \"broker.example.com:1883\"\n", want{"uplink.url", 2, "is not supported"}},
		{"uplink credentials", false, "[uplink]\nurl = \"mqtt://u:p@h:1883\"\n", want{"uplink.url", 2, "must not contain credentials"}},
		{"uplink url missing", false, "\n[uplink]\nusername = \"u\"\n", want{"uplink.url", 2, "required"}},
		{"uplink tls file without tls", false, "[uplink]\nurl = \"mqtt://h\"\nca_file = \"/etc/hostname\"\n", want{"uplink.ca_file", 3, "needs an mqtts:// or wss:// url"}},
		{"keepalive", false, "[uplink]\nurl = \"mqtt://h\"\nkeepalive = \"1.5s\"\n", want{"uplink.keepalive", 3, "whole number of seconds"}},
		{"listen no port", false, "[broker]\nlisten = \"localhost\"\n", want{"broker.listen", 2, `not a "host:port" address`}},
		{"listen port range", false, "[[coap]]\nlisten = \"0.0.0.0:70000\"\n", want{"coap[0].listen", 2, "out of range 0..65535"}},
		{"listen port name", false, "[broker]\nlisten = \"127.0.0.1:mqtt\"\n", want{"broker.listen", 2, "is not a number"}},
		{"listen collision", false, "[[coap]]\nname = \"a\"\n[[coap]]\nname = \"b\"\n", want{"coap[1].listen", 3, "UDP port 5683 is already used by coap[0].listen (line 1)"}},
		{"gateway id reserved chars", false, "[gateway]\nid = \"plant/7\"\n", want{"gateway.id", 2, "cannot be the {gateway} in topics"}},
		{"broker disabled, no uplink", false, "[broker]\nenabled = false\n", want{"broker.enabled", 2, "readings would go nowhere"}},
		{"inline table path", false, "gateway = { id = \"gw\", log_level = \"loud\" }\n", want{"gateway.log_level", 1, "invalid value"}},
		{"dotted key path", false, "gateway.id = \"gw\"\n\ngateway.log_format = \"yaml\"\n", want{"gateway.log_format", 3, "invalid value"}},
		{"inline array of tables", false, "coap = [\n  { name = \"a\" },\n  { name = \"b\", max_payload = \"1XB\", listen = \":1\" },\n]\n", want{"coap[1].max_payload", 3, "invalid size"}},
		{"crlf and bom", false, "\xef\xbb\xbf[gateway]\r\n\r\nlog_level = \"x\"\r\n", want{"gateway.log_level", 3, "invalid value"}},
		{"quoted key", false, "[gateway]\n\"log level\" = \"info\"\n", want{`gateway."log level"`, 2, "unknown key"}},
		{"http listen", false, "[http]\nlisten = \"localhost\"\n", want{"http.listen", 2, `not a "host:port" address`}},
		{"broker beyond loopback, no user", false, "[broker]\nlisten = \"127.0.0.1:1883\"\nwebsocket = \"0.0.0.0:8083\"\n", want{"broker.websocket", 3, "no client could connect; add a [[broker.user]], or set allow_anonymous = true"}},
		{"broker anonymous false, no user", false, "[broker]\nallow_anonymous = false\n", want{"broker.allow_anonymous", 2, "false with no [[broker.user]]: no client could connect"}},
		{"broker tls_listen without key", false, "[broker]\ntls_listen = \"127.0.0.1:8883\"\ntls_cert_file = \"/etc/hostname\"\n", want{"broker.tls_key_file", 1, "required with tls_listen"}},
		{"broker user without password", false, "[[broker.user]]\nname = \"a\"\npublish = [\"gw-01/#\"]\n", want{"broker.user[0].password", 1, "required: set password, password_file or password_hash"}},
		{"protocol 4 password without username", false, "[uplink]\nurl = \"mqtt://h\"\nprotocol = 4\npassword = \"p\"\n", want{"uplink.password", 4, "needs a username with a password"}},
		{"route deadband negative", false, "[[coap]]\n[[route]]\nmatch = \"**\"\ndeadband = -0.5\nmin_interval = \"1s\"\nmax_interval = \"1m\"\n", want{"route[0].deadband", 4, "must not be negative"}},
		{"route max under min", false, "[[coap]]\n[[route]]\nmatch = \"**\"\nmin_interval = \"10s\"\nmax_interval = \"5s\"\n", want{"route[0].max_interval", 5, "shorter than min_interval"}},
		{"route min_interval negative", false, "[[coap]]\n[[route]]\nmatch = \"**\"\ndeadband = 0.5\nmin_interval = \"-1s\"\n", want{"route[0].min_interval", 5, "must not be negative"}},
		{"route max_interval not a duration", false, "[[coap]]\n[[route]]\nmatch = \"**\"\nmax_interval = \"1 minute\"\n", want{"route[0].max_interval", 4, "invalid duration"}},
		{"password too long", true, "[[broker.user]]\nname = \"a\"\npassword = \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n", want{"broker.user[0].password", 3, "bcrypt uses at most 72"}},
		{"bcrypt", true, "[[broker.user]]\nname = \"a\"\npassword_hash = \"plain\"\n", want{"broker.user[0].password_hash", 3, "is not a bcrypt hash"}},
		{"user filter", true, "[[broker.user]]\nname = \"a\"\npassword = \"p\"\npublish = [\"a/#/b\"]\n", want{"broker.user[0].publish[0]", 4, `"#" must be a whole level and the last one`}},
		{"psk hex", true, "[[coap]]\ndtls_listen = \":5684\"\n[[coap.psk]]\nidentity = \"i\"\nkey = \"xyz\"\n", want{"coap[0].psk[0].key", 5, "is not hex"}},
		{"coaps needs psk", true, "[[coap]]\n[[coap.device]]\ndevice = \"d\"\nurl = \"coaps://h/x\"\n", want{"coap[0].device[0].psk_identity", 2, "required with a coaps:// url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrs(t, tt.src, tt.allow)
			if !hasError(errs, tt.want) {
				t.Errorf("want %s:%d %q; got%s\n--- file:\n%s", tt.want.path, tt.want.line, tt.want.msg, dump(errs), tt.src)
			}
		})
	}
}

// modbusWith is a valid Modbus block whose only point gets extra keys
// (from line 8 on).
func modbusWith(extra string) string {
	return "[[modbus]]\nurl = \"tcp://192.0.2.20:502\"\n[[modbus.device]]\nname = \"boiler\"\n[[modbus.device.point]]\nname = \"p\"\naddress = 1\n" + extra + "\n"
}

func modbusPoint(name string) string {
	return "[[modbus]]\nurl = \"tcp://192.0.2.20:502\"\n[[modbus.device]]\nname = \"boiler\"\n[[modbus.device.point]]\nname = \"" + name + "\"\naddress = 1\n"
}

// uartWith is a valid UART block with extra keys from line 4 on.
func uartWith(extra string) string {
	return "[[uart]]\nport = \"/dev/ttyUSB0\"\npattern = '(?P<t>\\d+)'\n" + extra + "\n"
}

// TestManyErrors: every error of a file is reported in one run, in line
// order.
func TestManyErrors(t *testing.T) {
	src := `[gateway]
log_level = "loud"              # 2
stats_interval = "5 minutes"    # 3
colour = "blue"                 # 4

[broker]
listen = "nowhere"              # 7

[queue]
max_bytes = "12XB"              # 10
when_full = "block"             # 11
inflight = "32"                 # 12

[[coap]]                        # 14
max_payload = -1                # 15

[[coap]]                        # 17

[[modbus]]                      # 19
url = "tcp://h:502"
[[modbus.device]]
name = "boiler"
[[modbus.device.point]]
name = "time"                   # 24
address = 1

[[route]]
match = "coap/*/*"
payload = "value"               # 29
qos = 7                         # 30
topic = "{gateway}/{nope}"      # 31

[uplink]
url = "ftp://x"                 # 34
password = "${MISSING}"         # 35
`
	errs := parseErrs(t, src, false)
	wants := []want{
		{"gateway.log_level", 2, "invalid value"},
		{"gateway.stats_interval", 3, "invalid duration"},
		{"gateway.colour", 4, "unknown key"},
		{"broker.listen", 7, "host:port"},
		{"queue.max_bytes", 10, "invalid size"},
		{"queue.when_full", 11, "invalid value"},
		{"queue.inflight", 12, "expected an integer"},
		{"coap[0].max_payload", 15, "expected a size string"},
		{"coap[1].name", 17, "already used by coap[0]"},
		{"modbus[0].device[0].point[0].name", 24, "reserved name"},
		{"route[0].qos", 30, "out of range"},
		{"route[0].topic", 31, "unknown placeholder {nope}"},
		{"uplink.url", 34, "not supported"},
		{"uplink.password", 35, "MISSING is not set"},
	}
	for _, w := range wants {
		if !hasError(errs, w) {
			t.Errorf("missing %s:%d %q", w.path, w.line, w.msg)
		}
	}
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line && errs[i].Line != 0 {
			t.Errorf("errors not in line order:%s", dump(errs))
			break
		}
	}
	if t.Failed() {
		t.Logf("got:%s", dump(errs))
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("gateway.toml", []byte("[[coap]]\nname = \"a\"\n[[coap]]\nname = \"b\"\nlisten = \":5684\"\nmax_payload = \"12XB\"\n"), testEnv)
	if err == nil {
		t.Fatal("no error")
	}
	want := `gateway.toml:6: coap[1].max_payload: invalid size "12XB": use a whole number with a binary unit B, KiB, MiB, GiB or TiB, e.g. "64KiB"`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	e := Error{File: "f.toml", Path: "x", Msg: "m"}
	if e.Error() != "f.toml: x: m" {
		t.Errorf("no line: %q", e.Error())
	}
	e = Error{File: "f.toml", Line: 3, Msg: "syntax error: m"}
	if e.Error() != "f.toml:3: syntax error: m" {
		t.Errorf("no path: %q", e.Error())
	}
}

func TestNoDuplicateErrorsForOneValue(t *testing.T) {
	errs := parseErrs(t, "[uplink]\nurl = 5\n", false)
	if len(errs) != 1 || errs[0].Path != "uplink.url" {
		t.Errorf("want one error on uplink.url, got%s", dump(errs))
	}
}

func TestSecretsNotInMessages(t *testing.T) {
	errs := parseErrs(t, "[uplink]\nurl = \"mqtt://h\"\npassword = 987654321\n", false)
	if strings.Contains(dump(errs), "987654321") {
		t.Errorf("secret in message:%s", dump(errs))
	}
	errs = parseErrs(t, "[[coap]]\ndtls_listen = \":5684\"\n[[coap.psk]]\nidentity = \"i\"\nkey = \"topsecretvalue\"\n", true)
	if strings.Contains(dump(errs), "topsecretvalue") {
		t.Errorf("secret in message:%s", dump(errs))
	}
}

func TestEnvExpansion(t *testing.T) {
	c := parseOK(t, `
[gateway]
id = "gw-${EMPTY}01"
data_dir = "/var/lib/$${HOME}/x$$y"
[uplink]
url = "mqtts://${HOST}:8883"
username = "gw"
password = "${UPLINK_PW}"
topic_prefix = "sites/$${X}/"
`, false)
	if c.Gateway.ID != "gw-01" {
		t.Errorf("id = %q", c.Gateway.ID)
	}
	if c.Gateway.DataDir != "/var/lib/${HOME}/x$$y" {
		t.Errorf("data_dir = %q", c.Gateway.DataDir)
	}
	if c.Uplink.URL != "mqtts://broker.example.com:8883" || string(c.Uplink.Password) != "s3cret-uplink" {
		t.Errorf("uplink = %+v", c.Uplink)
	}
	if c.Uplink.TopicPrefix != "sites/${X}/" {
		t.Errorf("topic_prefix = %q", c.Uplink.TopicPrefix)
	}
	// Expansion is not recursive.
	got, err := expandEnv("${A}", func(k string) (string, bool) { return map[string]string{"A": "${B}"}[k], true })
	if err != nil || got != "${B}" {
		t.Errorf("expandEnv = %q, %v", got, err)
	}
	_, err = expandEnv("${A} ${B}", func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "A, B are not set") {
		t.Errorf("both missing: %v", err)
	}
}

func TestFileKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("secrets/uplink.pw", "pa ss\n")
	write("secrets/psk.hex", "00ff\r\n")
	write("secrets/node-red.pw", "nr")
	write("ca.pem", "-----BEGIN CERTIFICATE-----\n")
	path := filepath.Join(dir, "gateway.toml")
	write("gateway.toml", `
[uplink]
url = "mqtts://h"
username = "gw"
password_file = "secrets/uplink.pw"
ca_file = "ca.pem"
[[broker.user]]
name = "nodered"
password_file = "${SECRET_DIR}/node-red.pw"
[[coap]]
dtls_listen = ":5684"
[[coap.psk]]
identity = "s17"
key_file = "secrets/psk.hex"
`)
	env := func(k string) (string, bool) {
		if k == "SECRET_DIR" {
			return filepath.Join(dir, "secrets"), true
		}
		return "", false
	}
	c, err := LoadWith(path, env, ParseOptions{AllowUnsupported: true, Hostname: func() (string, error) { return "h", nil }})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Uplink.Password) != "pa ss" {
		t.Errorf("password = %q (trailing newline must be removed)", string(c.Uplink.Password))
	}
	if string(c.CoAP[0].PSK[0].Key) != "00ff" {
		t.Errorf("psk key = %q", string(c.CoAP[0].PSK[0].Key))
	}
	if string(c.Broker.Users[0].Password) != "nr" {
		t.Errorf("user password = %q", string(c.Broker.Users[0].Password))
	}
	if c.Uplink.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("ca_file = %q, want it resolved against the config's directory", c.Uplink.CAFile)
	}
	// Not a regular file.
	errs := parseErrs(t, "[uplink]\nurl = \"mqtt://h\"\nusername = \"u\"\npassword_file = \"/dev/zero\"\n", false)
	if !hasError(errs, want{"uplink.password_file", 4, "not a regular file"}) {
		t.Errorf("got%s", dump(errs))
	}
	// Load of a missing file is an *Errors too.
	_, err = Load(filepath.Join(dir, "missing.toml"), env)
	var list *Errors
	if !errors.As(err, &list) || !strings.Contains(err.Error(), "cannot read the file") {
		t.Errorf("missing file: %v", err)
	}
}

// TestReferenceFile parses the reference block of CONFIG.md (with the env
// vars it names). Verbatim, it has exactly two errors: its [[uart]] block
// shows port = "" and pattern = "" with the real values only in comments,
// and a UART without a port, or a regex parser without a pattern, cannot
// run. With those two lines filled in, it parses.
func TestReferenceFile(t *testing.T) {
	data, err := os.ReadFile("testdata/reference.toml")
	if err != nil {
		t.Fatal(err)
	}
	errs := parseErrs(t, string(data), true)
	if len(errs) != 2 || errs[0].Path != "uart[0].port" || errs[1].Path != "uart[0].pattern" {
		t.Errorf("verbatim reference: want only uart[0].port and uart[0].pattern, got%s", dump(errs))
	}
	src := strings.Replace(string(data), `port = ""  `, `port = "/dev/ttyUSB0"`, 1)
	src = strings.Replace(src, `pattern = ""  `, `pattern = '^(?P<device>\w+) T=(?P<temperature>-?[\d.]+)$'`, 1)
	c := parseOK(t, src, true)
	if c.Gateway.ID != "gw-01" || len(c.Broker.Users) != 1 || string(c.Broker.Users[0].Password) != "node-red-secret" ||
		string(c.CoAP[0].PSK[0].Key) != "00112233aabbccdd" || c.Modbus[0].Devices[0].Points[0].Address != 100 ||
		c.UART[0].Fields[0].Scale != 0.01 || c.Routes[0].Match != "modbus/boiler/*" || c.HTTP.Listen != "127.0.0.1:9100" {
		t.Errorf("reference parsed wrong: %+v", c)
	}
	// Without AllowUnsupported too: the built-in broker's users, TLS and
	// WebSocket listeners are supported.
	if _, err := ParseWith("gateway.toml", []byte(src), testEnv, testOpts(false)); err != nil {
		var errs *Errors
		if errors.As(err, &errs) {
			for _, e := range errs.List {
				if strings.HasPrefix(e.Path, "broker") {
					t.Errorf("reference [broker] without AllowUnsupported: %s", e.Error())
				}
			}
		}
	}
}

func TestSampleGatewayToml(t *testing.T) {
	data, err := os.ReadFile("../gateway.toml")
	if err != nil {
		t.Fatal("the sample gateway.toml must exist:", err)
	}
	parseOK(t, string(data), false)
}

func TestRedacted(t *testing.T) {
	src := `
[gateway]
id = "gw-01"
data_dir = "/data/$${literal}"
[uplink]
url = "mqtts://broker.example.com:8883"
username = "gw"
password = "${UPLINK_PW}"
[[broker.user]]
name = "nodered"
password = "${NODERED_PW}"
publish = ["gw-01/#"]
[[coap]]
name = "c1"
dtls_listen = ":5684"
[[coap.psk]]
identity = "s17"
key = "${SENSOR17_KEY}"
[[coap]]
name = "c2"
listen = ":5699"
max_payload = "1000"
[[route]]
match = "c1/*/*"
topic = "{gateway}/{adapter}/{device}/{point}"
payload = "value"
retain = true
[[route]]
match = "**"
drop = true
`
	c := parseOK(t, src, true)
	out := c.Redacted()
	for _, secret := range []string{"s3cret-uplink", "node-red-secret", "00112233aabbccdd"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q in Redacted output:\n%s", secret, out)
		}
	}
	if n := strings.Count(out, `"<redacted>"`); n != 3 {
		t.Errorf("%d redacted secrets, want 3:\n%s", n, out)
	}
	// Round trip: parse the output again. The psk key "<redacted>" is not hex
	// (the only error); the rest must come back equal.
	errs := parseErrs(t, out, true)
	if len(errs) != 1 || errs[0].Path != "coap[0].psk[0].key" {
		t.Errorf("round trip errors:%s", dump(errs))
	}
	c.CoAP[0].PSK[0].Key = "00"
	c2 := parseOK(t, strings.Replace(c.Redacted(), `key = "<redacted>"`, `key = "00"`, 1), true)
	c2.Uplink.Password, c2.Broker.Users[0].Password = c.Uplink.Password, c.Broker.Users[0].Password
	for i := range c2.Routes {
		c2.Routes[i].Line = c.Routes[i].Line // lines differ between the two files
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip differs:\n%+v\n%+v\n%s", c, c2, c.Redacted())
	}
	if c2.Gateway.DataDir != "/data/${literal}" {
		t.Errorf("data_dir = %q", c2.Gateway.DataDir)
	}
}

func TestRedactedMinimalRoundTrip(t *testing.T) {
	c := parseOK(t, "[[coap]]\n", false)
	c2 := parseOK(t, c.Redacted(), false)
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip differs:\n%+v\n%+v", c, c2)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := Secret("hunter2")
	u := Uplink{Password: s}
	for _, out := range []string{s.String(), fmtV(u), fmtSharpV(u)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
	if Secret("").String() != "" {
		t.Error("empty secret should print empty")
	}
	if string(s) != "hunter2" {
		t.Error("string(s) must give the value")
	}
}

func TestHostnameDefault(t *testing.T) {
	_, err := ParseWith("g.toml", nil, testEnv, ParseOptions{Hostname: func() (string, error) { return "bad/host", nil }})
	if err == nil || !strings.Contains(err.Error(), "gateway.id") || !strings.Contains(err.Error(), "the host name, the default") {
		t.Errorf("bad host name: %v", err)
	}
	_, err = ParseWith("g.toml", nil, testEnv, ParseOptions{Hostname: func() (string, error) { return "", errors.New("boom") }})
	if err == nil || !strings.Contains(err.Error(), "gateway.id") {
		t.Errorf("no host name: %v", err)
	}
	c, err := ParseWith("g.toml", []byte("[gateway]\nid = \"x\"\n"), testEnv, ParseOptions{Hostname: func() (string, error) { return "", errors.New("boom") }})
	if err != nil || c.Gateway.ID != "x" {
		t.Errorf("explicit id: %v", err)
	}
}

func TestDefaultFunc(t *testing.T) {
	c := Default()
	if c.Gateway.ID == "" || !c.Broker.Enabled || c.Queue.Inflight != 32 {
		t.Errorf("Default() = %+v", c)
	}
}

func TestRouteLines(t *testing.T) {
	c := parseOK(t, "[[coap]]\n\n[[route]]\nmatch = \"coap/a/*\"\n\n# comment [[route]]\n[[route]]\nmatch = \"coap/b/*\"\n", false)
	if c.Routes[0].Line != 3 || c.Routes[1].Line != 7 {
		t.Errorf("route lines = %d, %d", c.Routes[0].Line, c.Routes[1].Line)
	}
}

func TestSizeAndDuration(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1000": 1000, "12B": 12, "64KiB": 64 << 10, "256 MiB": 256 << 20, "2GiB": 2 << 30, "1TiB": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "12XB", "16KB", "1.5MiB", "-1", "99999999999999999999", "9000000TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
	for n, want := range map[Size]string{0: "0B", 1000: "1000B", 16 << 10: "16KiB", 256 << 20: "256MiB", 1536: "1536B"} {
		if n.String() != want {
			t.Errorf("Size(%d) = %s, want %s", int64(n), n, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0s", time.Minute: "1m", 168 * time.Hour: "168h", 90 * time.Minute: "1h30m", 50 * time.Millisecond: "50ms", 61 * time.Second: "1m1s"} {
		got := Duration(d).String()
		if got != want {
			t.Errorf("Duration(%v) = %s, want %s", d, got, want)
		}
		if back, err := parseDuration(got); err != nil || back != d {
			t.Errorf("parseDuration(%q) = %v, %v", got, back, err)
		}
	}
}

func TestLineIndex(t *testing.T) {
	src := `# comment [not.a.table]
top = 1
[a]
s = """
x = 2
[b]
"""
t = '''
[[c]]
'''
arr = [
  1,   # comment ]
  "]",
  { k = 1 },
]
"quoted.key" = 1
d.e.f = 2
[[c]]
x = 1
[c.sub]
y = 2
[[c]]
[[c.items]]
z = 3
[[c.items]]
z = 4
inline = { p = 1, q = { r = 2 } }
`
	lines := indexLines([]byte(src))
	for path, want := range map[string]int{
		"top": 2, "a": 3, "a.s": 4, "a.t": 8, "a.arr": 11, "a.arr[1]": 13, "a.arr[2]": 14, "a.arr[2].k": 14,
		`a."quoted.key"`: 16, "a.d": 17, "a.d.e.f": 17, "c[0]": 18, "c[0].x": 19, "c[0].sub": 20, "c[0].sub.y": 21,
		"c[1]": 22, "c[1].items[0]": 23, "c[1].items[0].z": 24, "c[1].items[1].z": 26, "c[1].items[1].inline.q.r": 27,
	} {
		if got := lines[path]; got != want {
			t.Errorf("line of %s = %d, want %d", path, got, want)
		}
	}
	if _, ok := lines["a.x"]; ok {
		t.Error("a key inside a multi-line string was indexed")
	}
	if _, ok := lines["b"]; ok {
		t.Error("a header inside a multi-line string was indexed")
	}
	if got := lineOf(lines, "c[1].items[1].nope"); got != 25 {
		t.Errorf("fallback to the parent: %d", got)
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"a": "", "a.b": "a", "a[1]": "a", "a[1].b": "a[1]", `a."x.y"`: "a", `a."x[1]".c`: `a."x[1]"`,
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
	if got := headerName("coap[0].device[12]"); got != "coap.device" {
		t.Errorf("headerName = %q", got)
	}
}

func TestReservedNamesByKind(t *testing.T) {
	// PRODUCT.md: time and errors are never point names; a device or an
	// adapter may be called so.
	c := parseOK(t, "[[coap]]\nname = \"time\"\n[[coap.device]]\ndevice = \"errors\"\nurl = \"coap://h/x\"\n", true)
	if c.CoAP[0].Name != "time" || c.CoAP[0].Devices[0].Device != "errors" {
		t.Errorf("%+v", c.CoAP[0])
	}
	for _, n := range []string{"set", "availability", "status", "stats"} {
		errs := parseErrs(t, "[[coap]]\nname = \""+n+"\"\n", false)
		if !hasError(errs, want{"coap[0].name", 2, "reserved name"}) {
			t.Errorf("%s:%s", n, dump(errs))
		}
	}
}

// CoAP over DTLS (dtls_listen, [[coap.psk]]) runs: no AllowUnsupported
// needed, and listen = "" (DTLS only) stays empty.
func TestDTLSSupported(t *testing.T) {
	c := parseOK(t, "[[coap]]\nlisten = \"\"\ndtls_listen = \"127.0.0.1:5684\"\n[[coap.psk]]\nidentity = \"sensor-17\"\nkey = \"00ff\"\n", false)
	x := c.CoAP[0]
	if x.Listen != "" || x.DTLSListen != "127.0.0.1:5684" || len(x.PSK) != 1 || x.PSK[0].Identity != "sensor-17" || string(x.PSK[0].Key) != "00ff" {
		t.Errorf("parsed %+v", x)
	}
}

// Two ports of one multi-port USB adapter (FT4232) are told apart by
// usb_interface; the same interface twice is one port opened twice.
func TestUSBInterfaceSelectsPortOfOneAdapter(t *testing.T) {
	two := "[[uart]]\nname = \"a\"\nusb = \"0403:6011\"\nusb_interface = 0\nparser = \"kv\"\n[[uart]]\nname = \"b\"\nusb = \"0403:6011\"\nusb_interface = 1\nparser = \"kv\"\n"
	c := parseOK(t, two, true)
	if c.UART[0].USBInterface != 0 || c.UART[1].USBInterface != 1 {
		t.Fatalf("interfaces %d %d", c.UART[0].USBInterface, c.UART[1].USBInterface)
	}
	same := strings.ReplaceAll(two, "usb_interface = 1", "usb_interface = 0")
	errs := parseErrs(t, same, true)
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "already opened") {
		t.Fatalf("errors %s", dump(errs))
	}
}
