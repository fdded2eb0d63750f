package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func buildTool(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(gatewayBin), filepath.Base(pkg))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestLoadWithQoS1SubscriberNothingLost drives the gateway with 64
// concurrent CoAP clients while a QoS 1 subscriber counts what the built-in
// broker delivers: every accepted reading arrives, none twice, and the
// gateway never stalls. (It caught a deadlock in the embedded broker, see
// third_party/mochi-mqtt-server/PATCHES.md.)
func TestLoadWithQoS1SubscriberNothingLost(t *testing.T) {
	load := buildTool(t, "../cmd/coapload")
	count := buildTool(t, "../cmd/mqttcount")
	p := freePorts(t)
	startGateway(t, baseConfig(p, ""))

	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	sub := exec.Command(count, "-broker", fmt.Sprintf("mqtt://127.0.0.1:%d", p.broker), "-topic", "gw-test/coap/#",
		"-qos", "1", "-idle", "5s", "-duration", "60s", "-ready-file", ready, "-json")
	sub.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var subOut strings.Builder
	sub.Stdout = &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Process.Kill(); _ = sub.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mqttcount never subscribed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	out, err := exec.Command(load, "-url", fmt.Sprintf("coap://127.0.0.1:%d", p.coap), "-clients", "64",
		"-duration", "3s", "-timeout", "3s", "-json").Output()
	if err != nil {
		t.Fatalf("coapload: %v", err)
	}
	var ls struct {
		Sent     int64            `json:"sent"`
		OK       int64            `json:"ok"`
		Codes    map[string]int64 `json:"codes"`
		Timeouts int64            `json:"timeouts"`
	}
	if err := json.Unmarshal(out, &ls); err != nil {
		t.Fatalf("coapload output %q: %v", out, err)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mqttcount: %v", err)
	}
	var cs struct {
		Unique     int64 `json:"unique"`
		Duplicates int64 `json:"duplicates"`
	}
	if err := json.Unmarshal([]byte(subOut.String()), &cs); err != nil {
		t.Fatalf("mqttcount output %q: %v", subOut.String(), err)
	}
	accepted := ls.OK
	t.Logf("sent %d, accepted %d, codes %v, timeouts %d; delivered %d unique, %d duplicates",
		ls.Sent, accepted, ls.Codes, ls.Timeouts, cs.Unique, cs.Duplicates)
	if accepted < 1000 || ls.Timeouts > 0 {
		t.Fatalf("the gateway stalled under load: %d accepted, %d timeouts", accepted, ls.Timeouts)
	}
	if cs.Unique < accepted {
		t.Fatalf("lost readings: %d accepted, %d delivered", accepted, cs.Unique)
	}
	if cs.Duplicates != 0 {
		t.Fatalf("%d duplicates on the built-in broker", cs.Duplicates)
	}
}
