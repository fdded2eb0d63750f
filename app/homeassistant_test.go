package app

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/internal/modbustest"
	"github.com/causeway/causeway/internal/testpeer"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const haConfig = `
[gateway]
id = "gw-ha"
data_dir = %q
[broker]
listen = "127.0.0.1:0"
[homeassistant]
enabled = true
[[modbus]]
url = %q
[[modbus.device]]
name = "boiler"
unit_id = 1
interval = "200ms"
[[modbus.device.point]]
name = "supply_temp"
table = "holding"
address = 100
type = "int16"
scale = 0.1
unit = "degC"
[[modbus.device.point]]
name = "setpoint"
table = "holding"
address = 101
scale = 0.5
unit = "degC"
writable = true
[[modbus.device.point]]
name = "pump"
table = "coil"
address = 0
type = "bool"
writable = true
[[modbus.device.point]]
name = "alarm"
table = "discrete"
address = 0
type = "bool"
[[modbus.device.point]]
name = "energy"
table = "input"
address = 0
type = "uint32"
unit = "kWh"
[[route]]
match = "modbus/boiler/setpoint"
topic = "{gateway}/{adapter}/{device}/{point}"
payload = "value"
`

// TestHomeAssistantDiscovery: the discovery messages of a Modbus device
// match the golden files; Home Assistant's "online" gets them again; a
// reload that removes a point removes its entity.
func TestHomeAssistantDiscovery(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{})
	dir := t.TempDir()
	file := fmt.Sprintf(haConfig, dir, srv.URL())
	r := start(t, file)
	port := r.a.BrokerAddr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	var p int
	fmt.Sscan(port, &p)
	sub := testpeer.Subscribe(t, p, "homeassistant/#")

	got := map[string]string{}
	for _, m := range sub.Drain(time.Second) {
		got[m.Topic] = m.Payload
	}
	golden := filepath.Join("testdata", "homeassistant")
	if *update {
		os.RemoveAll(golden)
		os.MkdirAll(golden, 0o755)
		for topic, payload := range got {
			var v any
			if err := json.Unmarshal([]byte(payload), &v); err != nil {
				t.Fatal(err)
			}
			b, _ := json.MarshalIndent(map[string]any{"topic": topic, "payload": v}, "", "  ")
			os.WriteFile(filepath.Join(golden, strings.ReplaceAll(topic, "/", "_")+".json"), append(b, '\n'), 0o644)
		}
	}
	files, _ := filepath.Glob(filepath.Join(golden, "*.json"))
	if len(files) != 6 || len(got) != 6 { // the gateway and 5 points
		t.Fatalf("%d golden files, %d discovery messages: %v", len(files), len(got), slices.Sorted(func(yield func(string) bool) {
			for k := range got {
				if !yield(k) {
					return
				}
			}
		}))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Topic   string `json:"topic"`
			Payload any    `json:"payload"`
		}
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		var gotPayload any
		if err := json.Unmarshal([]byte(got[want.Topic]), &gotPayload); err != nil {
			t.Fatalf("%s: %q: %v", want.Topic, got[want.Topic], err)
		}
		w, _ := json.Marshal(want.Payload)
		g, _ := json.Marshal(gotPayload)
		if string(w) != string(g) {
			t.Errorf("%s:\n got %s\nwant %s", want.Topic, g, w)
		}
	}

	// Home Assistant restarts: everything again.
	if err := r.a.Broker().Publish("homeassistant/status", []byte("online"), 1, false); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range sub.Drain(time.Second) {
		if strings.HasSuffix(m.Topic, "/config") {
			n++
		}
	}
	if n != 6 {
		t.Fatalf("re-announced %d messages, want 6", n)
	}

	// The pump leaves the configuration: its entity is removed.
	i := strings.Index(file, "[[modbus.device.point]]\nname = \"pump\"")
	j := strings.Index(file, "[[modbus.device.point]]\nname = \"alarm\"")
	if err := r.a.Reload(parse(t, file[:i]+file[j:])); err != nil {
		t.Fatal(err)
	}
	removed := sub.Drain(time.Second)
	if len(removed) != 1 || removed[0].Topic != "homeassistant/switch/gw-ha/modbus_boiler_pump/config" || removed[0].Payload != "" {
		t.Fatalf("after removing the pump: %+v", removed)
	}
	// The state file lists what is announced.
	r.stop()
	b, err := os.ReadFile(filepath.Join(dir, "homeassistant.json"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"Point"`); n != 4 {
		t.Fatalf("state file holds %d entities, want 4:\n%s", n, b)
	}
}

// TestHomeAssistantDiscoveryBounded: points seen in frames (devices that
// name themselves) are announced up to the cap, then no more, with one
// warning; points already announced stay.
func TestHomeAssistantDiscoveryBounded(t *testing.T) {
	var logs strings.Builder
	cfg := parse(t, fmt.Sprintf(`
[gateway]
id = "gw-cap"
data_dir = %q
[homeassistant]
enabled = true
[[coap]]
listen = "127.0.0.1:0"
`, t.TempDir()))
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := a.ha
	d.max = 3
	d.sync(nil, true)
	for i := range 5 {
		f := bridge.Frame{Adapter: "coap", Device: fmt.Sprintf("dev%d", i), Points: []bridge.Point{{Name: "t", Value: bridge.Number(1)}}}
		d.observe(&f, a.engine.Load())
	}
	if len(d.announced) != 3 {
		t.Fatalf("%d entities announced, want the cap of 3", len(d.announced))
	}
	for i := range 3 {
		if _, ok := d.announced[fmt.Sprintf("coap/dev%d/t", i)]; !ok {
			t.Fatalf("dev%d not announced: %v", i, d.announced)
		}
	}
	if n := strings.Count(logs.String(), "too many entities"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
}
