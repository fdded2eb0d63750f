package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

type ports struct{ coap, broker int }

func freePorts(t *testing.T) ports {
	return ports{coap: testpeer.FreeUDPPort(t), broker: testpeer.FreeTCPPort(t)}
}

func baseConfig(p ports, extra string) string {
	return fmt.Sprintf(`[gateway]
id = "gw-test"
data_dir = "./data"
log_level = "info"

[broker]
listen = "127.0.0.1:%d"

[[coap]]
listen = "127.0.0.1:%d"
max_payload = "4KiB"
%s
`, p.broker, p.coap, extra)
}

// jsonReading checks a default-route payload: a "time" in UTC with
// milliseconds plus the expected points, nothing else.
func jsonReading(t *testing.T, payload string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(payload), &got); err != nil {
		t.Fatalf("payload %q is not JSON: %v", payload, err)
	}
	ts, _ := got["time"].(string)
	if !timeRE.MatchString(ts) {
		t.Fatalf("payload %s: time %q is not UTC with milliseconds", payload, ts)
	}
	delete(got, "time")
	if len(got) != len(want) {
		t.Fatalf("payload %s: got points %v, want %v", payload, got, want)
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Fatalf("payload %s: %s = %v, want %v", payload, k, got[k], v)
		}
	}
}

func TestCoAPReadingsReachBuiltInBrokerAndUplink(t *testing.T) {
	up := testpeer.StartMosquitto(t, 0)
	p := freePorts(t)
	cfg := baseConfig(p, fmt.Sprintf(`
[uplink]
url = "%s"
topic_prefix = "site/"
`, up.URL()))
	startGateway(t, cfg)
	local := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")
	remote := testpeer.Subscribe(t, up.Port, "site/gw-test/coap/#")

	cases := []struct {
		name, method, path, format, payload string
		topic                               string
		want                                map[string]any
	}{
		{"json object", "post", "/boiler", "50", `{"temperature":21.5,"humidity":40,"pump":true,"mode":"eco"}`,
			"gw-test/coap/boiler", map[string]any{"temperature": 21.5, "humidity": 40, "pump": true, "mode": "eco"}},
		{"text number to point", "put", "/boiler/flow", "0", `3.25`, "gw-test/coap/boiler", map[string]any{"flow": 3.25}},
		{"text string", "post", "/door/state", "0", `open`, "gw-test/coap/door", map[string]any{"state": "open"}},
		{"bare value to device", "post", "/meter", "0", `42`, "gw-test/coap/meter", map[string]any{"value": 42}},
		{"senml json", "post", "/greenhouse", "110", `[{"bn":"greenhouse/","n":"temperature","u":"Cel","v":19.5},{"n":"humidity","v":61},{"n":"vent","vb":false}]`,
			"gw-test/coap/greenhouse", map[string]any{"temperature": 19.5, "humidity": 61, "vent": false}},
		{"no content format, json", "post", "/tank", "", `{"level":0.75}`, "gw-test/coap/tank", map[string]any{"level": 0.75}},
		{"non-confirmable", "post", "/nonsensor", "50", `{"v":1}`, "gw-test/coap/nonsensor", map[string]any{"v": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var extra []string
			if c.name == "non-confirmable" {
				extra = append(extra, "-N")
			}
			code, body := coap(t, p.coap, c.method, c.path, c.format, c.payload, extra...)
			if c.name != "non-confirmable" && code != "2.04" {
				t.Fatalf("response %s %q, want 2.04", code, body)
			}
			m := local.WaitFor(t, c.topic, 5*time.Second)
			jsonReading(t, m.Payload, c.want)
			r := remote.WaitFor(t, "site/"+c.topic, 5*time.Second)
			if r.Payload != m.Payload {
				t.Fatalf("uplink payload %q differs from local %q", r.Payload, m.Payload)
			}
			if r.QoS != 1 {
				t.Fatalf("uplink QoS %d, want 1 (default route)", r.QoS)
			}
		})
	}
}

func TestRoutesChangeTopicPayloadQoSRetain(t *testing.T) {
	up := testpeer.StartMosquitto(t, 0)
	p := freePorts(t)
	cfg := baseConfig(p, fmt.Sprintf(`
[uplink]
url = "%s"

[[route]]                      # CONFIG.md's example, matched on coap
match = "coap/boiler/*"
topic = "{gateway}/{adapter}/{device}/{point}"
payload = "value"
qos = 1
retain = true

[[route]]
match = "coap/quiet/*"
drop = true

[[route]]
match = "coap/meter/**"
topic = "plant/{device}/senml"
payload = "senml"
qos = 0
uplink = false

[[route]]                      # per point JSON, only for one point name anywhere
match = "coap/*/alarm"
topic = "alarms/{device}/{point}"
`, up.URL()))
	startGateway(t, cfg)
	local := testpeer.Subscribe(t, p.broker, "#")
	remote := testpeer.Subscribe(t, up.Port, "#")

	if code, body := coap(t, p.coap, "post", "/boiler", "50", `{"supply_temp":55.5,"pump":true,"mode":"eco"}`); code != "2.04" {
		t.Fatalf("boiler: %s %s", code, body)
	}
	for topic, want := range map[string]string{"gw-test/coap/boiler/supply_temp": "55.5", "gw-test/coap/boiler/pump": "true", "gw-test/coap/boiler/mode": "eco"} {
		if m := local.WaitFor(t, topic, 5*time.Second); m.Payload != want || m.QoS != 1 {
			t.Fatalf("%s = %q qos %d, want %q qos 1", topic, m.Payload, m.QoS, want)
		}
		if m := remote.WaitFor(t, topic, 5*time.Second); m.Payload != want {
			t.Fatalf("uplink %s = %q, want %q", topic, m.Payload, want)
		}
	}
	// Retained: a subscriber that arrives later still gets the last value,
	// flagged retained.
	late := testpeer.Subscribe(t, p.broker, "gw-test/coap/boiler/supply_temp")
	if m := late.WaitFor(t, "gw-test/coap/boiler/supply_temp", 5*time.Second); !m.Retain || m.Payload != "55.5" {
		t.Fatalf("late subscriber got %+v, want retained 55.5", m)
	}

	// drop: nothing published; the request still succeeds.
	if code, _ := coap(t, p.coap, "post", "/quiet", "50", `{"x":1}`); code != "2.04" {
		t.Fatalf("quiet: %s", code)
	}
	// senml, qos 0, not on the uplink.
	if code, _ := coap(t, p.coap, "post", "/meter", "50", `{"energy":1234.5,"power":7}`); code != "2.04" {
		t.Fatalf("meter: %s", code)
	}
	m := local.WaitFor(t, "plant/meter/senml", 5*time.Second)
	if m.QoS != 0 {
		t.Fatalf("senml route qos = %d, want 0", m.QoS)
	}
	var recs []map[string]any
	if err := json.Unmarshal([]byte(m.Payload), &recs); err != nil || len(recs) != 2 {
		t.Fatalf("senml payload %q: %v", m.Payload, err)
	}
	if recs[0]["n"] != "energy" || recs[0]["v"] != 1234.5 || recs[1]["n"] != "power" || recs[1]["v"] != 7.0 || recs[0]["bt"] == nil {
		t.Fatalf("senml records %v", recs)
	}
	// Points of one frame split across routes: alarm goes per point, the
	// rest by the default route.
	if code, _ := coap(t, p.coap, "post", "/pump3", "50", `{"alarm":true,"rpm":1450}`); code != "2.04" {
		t.Fatalf("pump3: %s", code)
	}
	a := local.WaitFor(t, "alarms/pump3/alarm", 5*time.Second)
	jsonReading(t, a.Payload, map[string]any{"alarm": true})
	d := local.WaitFor(t, "gw-test/coap/pump3", 5*time.Second)
	jsonReading(t, d.Payload, map[string]any{"rpm": 1450})

	// Nothing of quiet anywhere; nothing of meter on the uplink.
	time.Sleep(300 * time.Millisecond)
	localRest, remoteRest := local.Drain(200*time.Millisecond), remote.Drain(200*time.Millisecond)
	for _, m := range append(localRest, remoteRest...) {
		if strings.Contains(m.Topic, "quiet") {
			t.Fatalf("dropped point published: %+v", m)
		}
	}
	for _, m := range remoteRest {
		if strings.HasPrefix(m.Topic, "plant/") {
			t.Fatalf("uplink = false route reached the uplink: %+v", m)
		}
	}
}

func TestBadInputGetsDocumentedCodesAndServiceContinues(t *testing.T) {
	p := freePorts(t)
	startGateway(t, baseConfig(p, ""))
	local := testpeer.Subscribe(t, p.broker, "gw-test/coap/#")

	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"blob":"`+strings.Repeat("x", 5000)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, format, payload string
		extra                               []string
		code, bodyHas                       string
	}{
		{"malformed json", "post", "/dev1", "50", `{"temperature":`, nil, "4.00", "JSON"},
		{"object to a point", "post", "/dev1/temp", "50", `{"a":1}`, nil, "4.00", ""},
		{"reserved point name time", "post", "/dev1", "50", `{"time":5}`, nil, "4.00", "time"},
		{"reserved point name errors", "post", "/dev1", "50", `{"errors":5}`, nil, "4.00", "errors"},
		{"reserved device name", "post", "/status", "50", `{"a":1}`, nil, "4.00", "status"},
		{"reserved point in path", "put", "/dev1/set", "0", `1`, nil, "4.00", "set"},
		{"plus in name", "post", "/dev%2B1", "50", `{"a":1}`, nil, "4.00", ""},
		{"unsupported content format", "post", "/dev1", "41", `<x/>`, nil, "4.15", ""},
		{"oversized", "post", "/dev1", "50", "", []string{"-f", big}, "4.13", ""},
		{"too deep a path", "post", "/a/b/c", "50", `{"a":1}`, nil, "4.04", ""},
		{"root path", "post", "/", "50", `{"a":1}`, nil, "4.04", ""},
		{"nested value", "post", "/dev1", "50", `{"a":{"b":1}}`, nil, "4.00", "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := coap(t, p.coap, c.method, c.path, c.format, c.payload, c.extra...)
			if code != c.code {
				t.Fatalf("code %s (%q), want %s", code, body, c.code)
			}
			if c.bodyHas != "" && !strings.Contains(body, c.bodyHas) {
				t.Fatalf("diagnostic %q does not mention %q", body, c.bodyHas)
			}
			// The gateway keeps serving others.
			if code, _ := coap(t, p.coap, "post", "/healthy", "50", `{"ok":1}`); code != "2.04" {
				t.Fatalf("good request after bad one: %s", code)
			}
			local.WaitFor(t, "gw-test/coap/healthy", 5*time.Second)
		})
	}
	for _, m := range local.Drain(200 * time.Millisecond) {
		if m.Topic != "gw-test/coap/healthy" {
			t.Fatalf("a refused reading was published: %+v", m)
		}
	}
}

func TestUplinkDownThenUpDeliversHeldMessages(t *testing.T) {
	up := testpeer.StartMosquitto(t, 0)
	// The uplink's port is held by a proxy that refuses connections until
	// Start: a merely free port could be taken by a test running in
	// parallel (once the gateway delivered to another test's broker).
	link := testpeer.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", up.Port))
	p := freePorts(t)
	startGateway(t, baseConfig(p, fmt.Sprintf(`
[uplink]
url = %q
`, link.URL())))
	const n = 20
	for i := range n {
		if code, _ := coap(t, p.coap, "post", "/held", "50", fmt.Sprintf(`{"seq":%d}`, i)); code != "2.04" {
			t.Fatalf("reading %d: %s", i, code)
		}
	}
	sub := testpeer.Subscribe(t, up.Port, "gw-test/coap/held")
	link.Start()
	for i := range n {
		m := sub.Next(t, 20*time.Second)
		var v struct{ Seq int }
		if err := json.Unmarshal([]byte(m.Payload), &v); err != nil || v.Seq != i {
			t.Fatalf("message %d: %q (want seq %d, in order)", i, m.Payload, i)
		}
	}
}

func TestSIGTERMDuringStreamExitsCleanlyWithin2s(t *testing.T) {
	up := testpeer.StartMosquitto(t, 0)
	p := freePorts(t)
	g := startGateway(t, baseConfig(p, fmt.Sprintf("[uplink]\nurl = %q\n", up.URL())))
	local := testpeer.Subscribe(t, p.broker, "gw-test/status")
	remote := testpeer.Subscribe(t, up.Port, "gw-test/status")
	if m := local.Next(t, 5*time.Second); m.Payload != "online" {
		t.Fatalf("built-in status %q, want online", m.Payload)
	}
	if m := remote.WaitFor(t, "gw-test/status", 5*time.Second); m.Payload != "online" {
		t.Fatalf("uplink status %q, want online", m.Payload)
	}
	// A stream of readings from a background client while the signal arrives.
	stopStream := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for i := 0; ; i++ {
			select {
			case <-stopStream:
				return
			default:
			}
			_ = exec.Command(testpeer.Bin(t, "coap-client-notls"), "-N", "-B", "1", "-m", "post", "-t", "50",
				"-e", fmt.Sprintf(`{"seq":%d}`, i), fmt.Sprintf("coap://127.0.0.1:%d/streamer", p.coap)).Run()
		}
	}()
	t.Cleanup(func() { close(stopStream); <-streamDone })
	time.Sleep(time.Second)
	took, err := g.stop()
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, g.Log())
	}
	if took > 2*time.Second {
		t.Fatalf("shutdown took %v, want < 2s", took)
	}
	if m := local.WaitFor(t, "gw-test/status", 2*time.Second); m.Payload != "offline" {
		t.Fatalf("built-in status after SIGTERM %q, want offline", m.Payload)
	}
	if m := remote.WaitFor(t, "gw-test/status", 5*time.Second); m.Payload != "offline" {
		t.Fatalf("uplink status after SIGTERM %q, want offline", m.Payload)
	}
}

// TestFullOfflineQueueIsBoundedAndLoud: with the uplink unreachable and a
// tiny queue that keeps what it has (drop_newest), readings are accepted
// until the queue is full; after that a device gets 5.03 (retry later, not
// a silent 2.04), the drop is logged, and the built-in broker keeps
// serving.
func TestFullOfflineQueueIsBoundedAndLoud(t *testing.T) {
	p := freePorts(t)
	g := startGateway(t, baseConfig(p, fmt.Sprintf(`
[uplink]
url = "mqtt://127.0.0.1:%d"

[queue]
max_bytes = "1KiB"
when_full = "drop_newest"
`, testpeer.NewProxy(t, "127.0.0.1:9").Port))) // held, never started: unreachable
	var codes []string
	for i := 0; i < 40; i++ {
		code, _ := coap(t, p.coap, "post", "/filler", "50", fmt.Sprintf(`{"seq":%d,"pad":"0123456789abcdef"}`, i))
		codes = append(codes, code)
		if code == "5.03" {
			break
		}
	}
	if codes[0] != "2.04" || codes[len(codes)-1] != "5.03" {
		t.Fatalf("codes %v: want 2.04 while the queue has room, then 5.03 once it is full", codes)
	}
	for _, c := range codes[:len(codes)-1] {
		if c != "2.04" {
			t.Fatalf("codes %v: a reading before the queue filled was refused", codes)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(g.Log(), "offline queue dropped messages") {
		if time.Now().After(deadline) {
			t.Fatalf("the drop was not logged:\n%s", g.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("accepted %d readings into a 1 KiB queue, then 5.03", len(codes)-1)
}
