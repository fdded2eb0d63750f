package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/modbustest"
	"github.com/causeway/causeway/internal/testpeer"
)

// modbusConfig is a gateway with a built-in broker and one [[modbus]] block.
func modbusConfig(brokerPort int, modbus string) string {
	return fmt.Sprintf(`[gateway]
id = "gw-test"
data_dir = "./data"
log_level = "debug"

[broker]
listen = "127.0.0.1:%d"

%s
`, brokerPort, modbus)
}

// vector is one golden decoding case of adapters/modbus/testdata/vectors.json.
type vector struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Order      string          `json:"order"`
	Length     int             `json:"length"`
	Scale      float64         `json:"scale"`
	Offset     float64         `json:"offset"`
	Registers  []uint16        `json:"registers"`
	Kind       string          `json:"kind"`
	Value      json.RawMessage `json:"value"`
	DecodeOnly bool            `json:"decode_only"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("../adapters/modbus/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// decodeFrame parses a default-route JSON payload keeping numbers exact.
func decodeFrame(t *testing.T, payload string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	return m
}

// waitMsg waits for a message on topic that ok accepts, skipping others.
func waitMsg(t *testing.T, s *testpeer.Sub, topic string, d time.Duration, ok func(testpeer.Message) bool) testpeer.Message {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no matching message on %s within %v", topic, d)
		}
		m := s.WaitFor(t, topic, left)
		if ok(m) {
			return m
		}
	}
}

func errorsOf(m map[string]any) map[string]any {
	e, _ := m["errors"].(map[string]any)
	return e
}

// Every type and byte order of the golden vectors, served by a real Modbus
// server (libmodbus) over TCP and over RTU on a pty pair, decodes to the
// expected value on MQTT; coils, discrete inputs and input registers too.
func TestModbusEveryTypeAndOrder(t *testing.T) {
	vs := loadVectors(t)
	for _, rtu := range []bool{false, true} {
		name := "tcp"
		if rtu {
			name = "rtu"
		}
		t.Run(name, func(t *testing.T) {
			var initLines, points strings.Builder
			addr := 0
			for _, v := range vs {
				fmt.Fprintf(&initLines, "1 holding %d", addr)
				for _, r := range v.Registers {
					fmt.Fprintf(&initLines, " %d", r)
				}
				initLines.WriteString("\n")
				fmt.Fprintf(&points, "[[modbus.device.point]]\nname = %q\naddress = %d\ntype = %q\norder = %q\n", v.Name, addr, v.Type, v.Order)
				if v.Length > 0 {
					fmt.Fprintf(&points, "length = %d\n", v.Length)
				}
				if v.Scale != 0 && v.Scale != 1 {
					fmt.Fprintf(&points, "scale = %v\n", v.Scale)
				}
				if v.Offset != 0 {
					fmt.Fprintf(&points, "offset = %v\n", v.Offset)
				}
				addr += len(v.Registers)
			}
			initLines.WriteString("1 coil 5 1\n1 discrete 3 1\n1 input 10 1234\n")
			points.WriteString("[[modbus.device.point]]\nname = \"relay\"\ntable = \"coil\"\naddress = 5\n")
			points.WriteString("[[modbus.device.point]]\nname = \"door\"\ntable = \"discrete\"\naddress = 3\n")
			points.WriteString("[[modbus.device.point]]\nname = \"flow\"\ntable = \"input\"\naddress = 10\nscale = 0.01\nunit = \"m3/h\"\n")

			srv := modbustest.Start(t, modbustest.Options{RTU: rtu, Init: initLines.String()})
			p := freePorts(t)
			block := fmt.Sprintf("[[modbus]]\nurl = %q\ntimeout = \"1s\"\n[[modbus.device]]\nname = \"meter\"\nunit_id = 1\ninterval = \"500ms\"\n%s", srv.URL(), points.String())
			startGateway(t, modbusConfig(p.broker, block))
			sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/#")

			m := decodeFrame(t, sub.WaitFor(t, "gw-test/modbus/meter", 10*time.Second).Payload)
			// A new subscriber gets the availability, retained.
			av := testpeer.Subscribe(t, p.broker, "gw-test/modbus/meter/availability").WaitFor(t, "gw-test/modbus/meter/availability", 5*time.Second)
			if av.Payload != "online" || !av.Retain {
				t.Fatalf("availability %q retain=%v, want online, retained", av.Payload, av.Retain)
			}
			if e := errorsOf(m); len(e) > 0 {
				t.Fatalf("points with errors: %v", e)
			}
			for _, v := range vs {
				got, ok := m[v.Name]
				if !ok {
					t.Errorf("%s: missing from %v", v.Name, m)
					continue
				}
				checkVectorValue(t, v, got)
			}
			if m["relay"] != true || m["door"] != true || fmt.Sprint(m["flow"]) != "12.34" {
				t.Errorf("relay %v door %v flow %v, want true true 12.34", m["relay"], m["door"], m["flow"])
			}
		})
	}
}

func checkVectorValue(t *testing.T, v vector, got any) {
	t.Helper()
	switch v.Kind {
	case "integer":
		n, ok := got.(json.Number)
		if !ok || n.String() != string(v.Value) {
			t.Errorf("%s: got %v (%T), want the integer %s", v.Name, got, got, v.Value)
		}
	case "number":
		n, ok := got.(json.Number)
		want, _ := strconv.ParseFloat(string(v.Value), 64)
		f, err := strconv.ParseFloat(n.String(), 64)
		if !ok || err != nil || math.Abs(f-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: got %v, want %s", v.Name, got, v.Value)
		}
	case "bool":
		if fmt.Sprint(got) != string(v.Value) {
			t.Errorf("%s: got %v, want %s", v.Name, got, v.Value)
		}
	case "string":
		var want string
		_ = json.Unmarshal(v.Value, &want)
		if got != want {
			t.Errorf("%s: got %q, want %q", v.Name, got, want)
		}
	default:
		t.Errorf("%s: unknown kind %q", v.Name, v.Kind)
	}
}

// optimalReads is an independent computation of the fewest reads for
// points (address, width) of one table: a dynamic program over the sorted
// points, each read a run of consecutive points with gaps <= maxGap and a
// span <= limit.
func optimalReads(pts [][2]int, maxGap, limit int) int {
	sort.Slice(pts, func(i, j int) bool { return pts[i][0] < pts[j][0] })
	valid := func(j, i int) bool { // points j..i-1 in one read
		end := pts[j][0] + pts[j][1]
		for k := j + 1; k < i; k++ {
			if pts[k][0]-end > maxGap {
				return false
			}
			end = max(end, pts[k][0]+pts[k][1])
		}
		return end-pts[j][0] <= limit
	}
	n := len(pts)
	best := make([]int, n+1) // best[i]: fewest reads for the first i points
	for i := 1; i <= n; i++ {
		best[i] = math.MaxInt
		for j := 0; j < i; j++ {
			if best[j] != math.MaxInt && valid(j, i) && best[j]+1 < best[i] {
				best[i] = best[j] + 1
			}
		}
	}
	return best[n]
}

// A device with 40 scattered points is read with the fewest requests its
// max_gap allows, counted on the server.
func TestModbusPlannerRequestsCountedOnServer(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{})
	const maxGap = 4
	var points strings.Builder
	byTable := map[string][][2]int{}
	addr := map[string]int{"holding": 0, "input": 100, "coil": 0}
	steps := []int{1, 2, 9, 3, 1, 6, 12, 2, 5, 4, 7, 1}
	for i := 0; i < 40; i++ {
		table := []string{"holding", "holding", "input", "coil"}[i%4]
		typ, w := "uint16", 1
		switch {
		case table == "coil":
			typ = "bool"
		case i%3 == 0:
			typ, w = "float32", 2
		}
		a := addr[table]
		fmt.Fprintf(&points, "[[modbus.device.point]]\nname = \"p%d\"\ntable = %q\naddress = %d\ntype = %q\n", i, table, a, typ)
		byTable[table] = append(byTable[table], [2]int{a, w})
		addr[table] = a + w + steps[i%len(steps)]
	}
	want := optimalReads(byTable["holding"], maxGap, 125) + optimalReads(byTable["input"], maxGap, 125) + optimalReads(byTable["coil"], maxGap, 2000)
	p := freePorts(t)
	block := fmt.Sprintf("[[modbus]]\nurl = %q\n[[modbus.device]]\nname = \"scattered\"\ninterval = \"1500ms\"\nmax_gap = %d\n%s", srv.URL(), maxGap, points.String())
	startGateway(t, modbusConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/#")
	// One whole cycle: the requests between two frames.
	sub.WaitFor(t, "gw-test/modbus/scattered", 10*time.Second)
	srv.ResetRequests()
	m := decodeFrame(t, sub.WaitFor(t, "gw-test/modbus/scattered", 10*time.Second).Payload)
	if len(errorsOf(m)) > 0 || len(m) != 41 {
		t.Fatalf("frame %v: want 40 good points", m)
	}
	// The server's REQ lines reach the test after the frame may have: wait
	// for them, and make sure no more come for this cycle.
	srv.WaitRequests(want+1, 300*time.Millisecond)
	got := len(srv.Requests())
	t.Logf("requests per cycle: %d, optimum %d (naive: 40)", got, want)
	if got != want {
		t.Fatalf("the server saw %d requests for one cycle, the optimum for max_gap %d is %d: %v", got, maxGap, want, srv.Requests())
	}

	// `gateway modbus plan` prints the same number of requests.
	cfgPath := t.TempDir() + "/gateway.toml"
	if err := os.WriteFile(cfgPath, []byte(modbusConfig(p.broker, block)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gatewayBin, "modbus", "plan", "-c", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("modbus plan: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d requests", want)) {
		t.Fatalf("modbus plan output does not say %d requests:\n%s", want, out)
	}
}

// Unit 2 stops answering on an RTU line shared with unit 1: it turns bad
// and offline within timeout x (retries+1) (plus a cycle), unit 1 keeps
// its cycle throughout, and unit 2 comes back by itself.
func TestModbusDeadUnitIsolatedOnSharedRTULine(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{RTU: true, Units: []int{1, 2}, Init: "1 holding 0 11\n2 holding 0 22\n"})
	p := freePorts(t)
	block := fmt.Sprintf(`[[modbus]]
url = %q
timeout = "200ms"
retries = 1
[[modbus.device]]
name = "one"
unit_id = 1
interval = "250ms"
[[modbus.device.point]]
name = "v"
address = 0
[[modbus.device]]
name = "two"
unit_id = 2
interval = "250ms"
[[modbus.device.point]]
name = "v"
address = 0
`, srv.URL())
	startGateway(t, modbusConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/#")
	waitMsg(t, sub, "gw-test/modbus/two/availability", 10*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })
	waitMsg(t, sub, "gw-test/modbus/one/availability", 10*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })

	if _, err := srv.Control("mute 2"); err != nil {
		t.Fatal(err)
	}
	muted := time.Now()
	// Collect for 3 s: unit one's frames and unit two's availability.
	var oneTimes []time.Time
	var offlineAt time.Time
	var twoBad int
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case m := <-sub.C:
			switch m.Topic {
			case "gw-test/modbus/one":
				f := decodeFrame(t, m.Payload)
				if len(errorsOf(f)) > 0 || fmt.Sprint(f["v"]) != "11" {
					t.Fatalf("unit one disturbed: %s", m.Payload)
				}
				oneTimes = append(oneTimes, time.Now())
			case "gw-test/modbus/two":
				if e := errorsOf(decodeFrame(t, m.Payload)); fmt.Sprint(e["v"]) == "timeout" {
					twoBad++
				}
			case "gw-test/modbus/two/availability":
				if m.Payload == "offline" && offlineAt.IsZero() {
					offlineAt = time.Now()
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	if offlineAt.IsZero() || twoBad == 0 {
		t.Fatalf("unit two not reported offline/bad after mute (bad frames %d)", twoBad)
	}
	// timeout x (retries+1) = 400 ms, plus at most one interval before the
	// next cycle starts, plus the late-reply window and scheduling slack.
	if d := offlineAt.Sub(muted); d > 1500*time.Millisecond {
		t.Fatalf("offline %v after the mute, want within ~1s", d)
	}
	if len(oneTimes) < 5 {
		t.Fatalf("unit one published %d frames in 3 s while unit two was dead", len(oneTimes))
	}
	for i := 1; i < len(oneTimes); i++ {
		if gap := oneTimes[i].Sub(oneTimes[i-1]); gap > 1200*time.Millisecond {
			t.Fatalf("unit one's cycle stalled for %v while unit two was dead", gap)
		}
	}
	t.Logf("offline after %v; unit one: %d frames in 3 s; unit two: %d bad frames", offlineAt.Sub(muted).Round(time.Millisecond), len(oneTimes), twoBad)

	if _, err := srv.Control("unmute 2"); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, sub, "gw-test/modbus/two/availability", 15*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })
	waitMsg(t, sub, "gw-test/modbus/two", 5*time.Second, func(m testpeer.Message) bool {
		f := decodeFrame(t, m.Payload)
		return len(errorsOf(f)) == 0 && fmt.Sprint(f["v"]) == "22"
	})
}

// A read that makes the device answer exception 2 is split: the readable
// points keep being read, the bad one is reported under errors.
func TestModbusExceptionIsolatesUnreadablePoint(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 10 1 2 3 4 5 6\n", Holes: []string{"1:holding:12"}})
	p := freePorts(t)
	var points strings.Builder
	for a := 10; a <= 15; a++ {
		fmt.Fprintf(&points, "[[modbus.device.point]]\nname = \"r%d\"\naddress = %d\n", a, a)
	}
	block := fmt.Sprintf("[[modbus]]\nurl = %q\n[[modbus.device]]\nname = \"dev\"\ninterval = \"300ms\"\n%s", srv.URL(), points.String())
	startGateway(t, modbusConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/dev")
	for range 3 {
		f := decodeFrame(t, sub.WaitFor(t, "gw-test/modbus/dev", 10*time.Second).Payload)
		e := errorsOf(f)
		if len(e) != 1 || !strings.Contains(fmt.Sprint(e["r12"]), "exception 2 (illegal data address)") {
			t.Fatalf("errors %v, want only r12: exception 2", e)
		}
		for a, want := range map[int]string{10: "1", 11: "2", 13: "4", 14: "5", 15: "6"} {
			if got := fmt.Sprint(f[fmt.Sprintf("r%d", a)]); got != want {
				t.Fatalf("r%d = %s, want %s (frame %v)", a, got, want, f)
			}
		}
	}
	// After the split, a cycle no longer asks for the whole range.
	srv.ResetRequests()
	sub.WaitFor(t, "gw-test/modbus/dev", 5*time.Second)
	sub.WaitFor(t, "gw-test/modbus/dev", 5*time.Second)
	for _, r := range srv.Requests() {
		if r.Addr <= 12 && r.Addr+r.Count > 12 && r.Count > 1 {
			t.Fatalf("a cycle still reads %d+%d across the unreadable register: %v", r.Addr, r.Count, srv.Requests())
		}
	}
}

// A corrupted RTU reply is a CRC error (after the retries), a reply that
// arrives after the timeout is never taken for the answer to another
// request, and the line recovers.
func TestModbusCorruptAndLateRepliesRTU(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{RTU: true, Init: "1 holding 0 111\n1 holding 50 222\n"})
	p := freePorts(t)
	block := fmt.Sprintf(`[[modbus]]
url = %q
timeout = "150ms"
retries = 0
[[modbus.device]]
name = "dev"
interval = "200ms"
max_gap = 0
[[modbus.device.point]]
name = "a"
address = 0
[[modbus.device.point]]
name = "b"
address = 50
`, srv.URL())
	g := startGateway(t, modbusConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/dev")
	check := func(m testpeer.Message) map[string]any {
		f := decodeFrame(t, m.Payload)
		e := errorsOf(f)
		if _, bad := e["a"]; !bad && fmt.Sprint(f["a"]) != "111" {
			t.Fatalf("a = %v: a reply was taken for another request's answer (%s)", f["a"], m.Payload)
		}
		if _, bad := e["b"]; !bad && fmt.Sprint(f["b"]) != "222" {
			t.Fatalf("b = %v: a reply was taken for another request's answer (%s)", f["b"], m.Payload)
		}
		return e
	}
	waitMsg(t, sub, "gw-test/modbus/dev", 10*time.Second, func(m testpeer.Message) bool { return len(check(m)) == 0 })

	if _, err := srv.Control("corrupt 1 1"); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, sub, "gw-test/modbus/dev", 5*time.Second, func(m testpeer.Message) bool {
		e := check(m)
		return fmt.Sprint(e["a"]) == "crc error" || fmt.Sprint(e["b"]) == "crc error"
	})

	// Late replies: 200 ms after requests that time out at 150 ms.
	if _, err := srv.Control("delay 1 200"); err != nil {
		t.Fatal(err)
	}
	timeouts := 0
	end := time.Now().Add(2 * time.Second)
	for time.Now().Before(end) {
		e := check(sub.WaitFor(t, "gw-test/modbus/dev", 5*time.Second))
		if fmt.Sprint(e["a"]) == "timeout" || fmt.Sprint(e["b"]) == "timeout" {
			timeouts++
		}
	}
	if timeouts == 0 {
		t.Fatal("no timeout reported while the device answered late")
	}
	if _, err := srv.Control("delay 1 0"); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, sub, "gw-test/modbus/dev", 10*time.Second, func(m testpeer.Message) bool { return len(check(m)) == 0 })
	if !strings.Contains(g.Log(), "crc error") {
		t.Error("the CRC error was not logged")
	}
}

// Commands write writable points with their type, order and scale and
// publish the read-back values; a non-writable point is refused.
func TestModbusCommandsWriteAndReadBack(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 30 200\n1 input 0 5\n"})
	p := freePorts(t)
	block := fmt.Sprintf(`[[modbus]]
url = %q
[[modbus.device]]
name = "boiler"
interval = "500ms"
[[modbus.device.point]]
name = "setpoint"
address = 20
type = "float32"
order = "CDAB"
writable = true
[[modbus.device.point]]
name = "limit"
address = 30
scale = 0.1
writable = true
[[modbus.device.point]]
name = "pump"
table = "coil"
address = 5
writable = true
[[modbus.device.point]]
name = "flow"
table = "input"
address = 0
`, srv.URL())
	startGateway(t, modbusConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/boiler/#")
	sub.WaitFor(t, "gw-test/modbus/boiler/availability", 10*time.Second)
	pub := func(topic, payload string) {
		t.Helper()
		out, err := exec.Command(testpeer.Bin(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.broker), "-q", "1", "-t", topic, "-m", payload).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub: %v %s", err, out)
		}
	}
	result := func() map[string]any {
		t.Helper()
		return decodeFrame(t, sub.WaitFor(t, "gw-test/modbus/boiler/set/result", 10*time.Second).Payload)
	}

	pub("gw-test/modbus/boiler/set", `{"setpoint":21.5,"limit":42.3,"pump":true}`)
	r := result()
	vals, _ := r["values"].(map[string]any)
	if r["ok"] != true || fmt.Sprint(vals["setpoint"]) != "21.5" || fmt.Sprint(vals["limit"]) != "42.3" || vals["pump"] != true {
		t.Fatalf("result %v", r)
	}
	regs, err := srv.Get(1, "holding", 20, 2)
	if err != nil {
		t.Fatal(err)
	}
	if regs[0] != 0x0000 || regs[1] != 0x41AC { // 21.5 = 0x41AC0000, words swapped
		t.Fatalf("setpoint registers %04X, want 0000 41AC (CDAB)", regs)
	}
	if regs, _ := srv.Get(1, "holding", 30, 1); regs[0] != 423 {
		t.Fatalf("limit register %d, want 423 (42.3 / 0.1)", regs[0])
	}
	if bits, _ := srv.Get(1, "coil", 5, 1); bits[0] != 1 {
		t.Fatalf("pump coil %v, want 1", bits)
	}

	pub("gw-test/modbus/boiler/setpoint/set", "19")
	if r := result(); r["ok"] != true {
		t.Fatalf("bare value command: %v", r)
	}
	pub("gw-test/modbus/boiler/flow/set", "3")
	if r := result(); r["ok"] != false || r["error"] != "point flow is not writable" {
		t.Fatalf("write to a read-only point: %v", r)
	}
	pub("gw-test/modbus/boiler/set", `{"setpoint":1,"limit":99999}`)
	if r := result(); r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), "out of range") {
		t.Fatalf("out-of-range value: %v", r)
	}
	if regs, _ := srv.Get(1, "holding", 20, 2); regs[1] != 0x4198 { // 19.0; the refused command wrote nothing
		t.Fatalf("setpoint registers %04X after a refused command, want 19.0 (0000 4198)", regs)
	}
	other := testpeer.Subscribe(t, p.broker, "gw-test/+/+/set/result")
	pub("gw-test/modbus/nosuch/set", `{"a":1}`)
	if r := decodeFrame(t, other.WaitFor(t, "gw-test/modbus/nosuch/set/result", 5*time.Second).Payload); r["error"] != "no device nosuch on adapter modbus" {
		t.Fatalf("command to an unknown device: %v", r)
	}
	pub("gw-test/coap/x/set", `{"a":1}`)
	if r := decodeFrame(t, other.WaitFor(t, "gw-test/coap/x/set/result", 5*time.Second).Payload); r["error"] != "no adapter named coap" {
		t.Fatalf("command to an unknown adapter: %v", r)
	}
	pub("gw-test/modbus/boiler/set", `{"setpoint":`)
	if r := decodeFrame(t, other.WaitFor(t, "gw-test/modbus/boiler/set/result", 5*time.Second).Payload); r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), "invalid command") {
		t.Fatalf("malformed command: %v", r)
	}
}

// The TCP connection is re-established after the server restarts; the
// device goes offline meanwhile and comes back by itself.
func TestModbusTCPReconnectsAfterServerRestart(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 0 7\n"})
	p := freePorts(t)
	block := fmt.Sprintf("[[modbus]]\nurl = %q\ntimeout = \"200ms\"\nretries = 0\n[[modbus.device]]\nname = \"plc\"\ninterval = \"200ms\"\n[[modbus.device.point]]\nname = \"v\"\naddress = 0\n", srv.URL())
	startGateway(t, modbusConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/plc/#")
	waitMsg(t, sub, "gw-test/modbus/plc/availability", 10*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })
	srv.Stop()
	waitMsg(t, sub, "gw-test/modbus/plc/availability", 10*time.Second, func(m testpeer.Message) bool { return m.Payload == "offline" })
	srv.Restart(t)
	if err := srv.Set(1, "holding", 0, 8); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, sub, "gw-test/modbus/plc/availability", 20*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })
	waitMsg(t, sub, "gw-test/modbus/plc", 5*time.Second, func(m testpeer.Message) bool {
		return fmt.Sprint(decodeFrame(t, m.Payload)["v"]) == "8"
	})
}

// `gateway modbus read` decodes what a technician asks for.
func TestModbusReadCommand(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 100 59769 17142 59769 17142\n"})
	out, err := exec.Command(gatewayBin, "modbus", "read", "-url", srv.URL(), "-unit", "1", "-table", "holding",
		"-address", "100", "-count", "2", "-type", "float32", "-order", "CDAB").CombinedOutput()
	if err != nil {
		t.Fatalf("modbus read: %v\n%s", err, out)
	}
	if bytes.Count(out, []byte("123.456")) != 2 || !bytes.Contains(out, []byte("0xE979 0x42F6")) {
		t.Fatalf("modbus read output:\n%s", out)
	}
	out, err = exec.Command(gatewayBin, "modbus", "read", "-url", srv.URL(), "-address", "65535", "-count", "2").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("out of range")) {
		t.Fatalf("read past 65535: err %v\n%s", err, out)
	}
}

// rtuovertcp:// speaks RTU frames over TCP, as a serial-to-Ethernet
// converter does: socat bridges a TCP port to the real server's RTU line.
func TestModbusRTUOverTCP(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{RTU: true, Init: "1 holding 0 4242\n"})
	port := testpeer.FreeTCPPort(t)
	conv := exec.Command(testpeer.Bin(t, "socat"), fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", port), "FILE:"+srv.DevicePath()+",raw,echo=0")
	if err := conv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conv.Process.Kill(); _ = conv.Wait() })
	p := freePorts(t)
	block := fmt.Sprintf("[[modbus]]\nurl = \"rtuovertcp://127.0.0.1:%d\"\n[[modbus.device]]\nname = \"conv\"\ninterval = \"300ms\"\n[[modbus.device.point]]\nname = \"v\"\naddress = 0\n", port)
	startGateway(t, modbusConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/modbus/conv")
	waitMsg(t, sub, "gw-test/modbus/conv", 10*time.Second, func(m testpeer.Message) bool {
		return fmt.Sprint(decodeFrame(t, m.Payload)["v"]) == "4242"
	})
}

// With subscribe_commands (the default), a command published on the uplink
// broker (under topic_prefix) is executed and its result published there.
func TestModbusCommandFromUplink(t *testing.T) {
	up := testpeer.StartMosquitto(t, 0)
	srv := modbustest.Start(t, modbustest.Options{Init: "1 holding 5 10\n"})
	p := freePorts(t)
	block := fmt.Sprintf(`[uplink]
url = %q
topic_prefix = "site/"

[[modbus]]
url = %q
[[modbus.device]]
name = "boiler"
interval = "500ms"
[[modbus.device.point]]
name = "setpoint"
address = 5
writable = true
`, up.URL(), srv.URL())
	g := startGateway(t, modbusConfig(p.broker, block))
	remote := testpeer.Subscribe(t, up.Port, "site/gw-test/modbus/boiler/#")
	waitMsg(t, remote, "site/gw-test/modbus/boiler/availability", 10*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.Log(), "uplink subscribed") {
		if time.Now().After(deadline) {
			t.Fatal("the uplink never subscribed to the command topics")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command(testpeer.Bin(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", strconv.Itoa(up.Port), "-q", "1",
		"-t", "site/gw-test/modbus/boiler/setpoint/set", "-m", "23").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	r := decodeFrame(t, remote.WaitFor(t, "site/gw-test/modbus/boiler/set/result", 10*time.Second).Payload)
	vals, _ := r["values"].(map[string]any)
	if r["ok"] != true || fmt.Sprint(vals["setpoint"]) != "23" {
		t.Fatalf("result on the uplink: %v", r)
	}
	if regs, err := srv.Get(1, "holding", 5, 1); err != nil || regs[0] != 23 {
		t.Fatalf("register %v %v, want 23", regs, err)
	}
}
