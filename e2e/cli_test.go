package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/causeway/causeway/internal/testpeer"
)

func runGateway(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gatewayBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestCheckSampleConfig(t *testing.T) {
	out, errOut, code := runGateway(t, "..", nil, "check", "-c", "gateway.toml")
	if code != 0 {
		t.Fatalf("gateway check on the sample gateway.toml: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"[gateway]", `id = "gw-01"`, "[[coap]]", "[[route]]"} {
		if !strings.Contains(out, want) {
			t.Fatalf("effective config lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckReportsEveryErrorWithKeyAndLine(t *testing.T) {
	dir := t.TempDir()
	conf := `[gateway]
id = "gw"
log_levle = "info"

[queue]
max_bytes = "12XB"
fsync_interval = "5 minutes"
inflight = "many"

[[coap]]
listen = "127.0.0.1:5683"
max_payload = "16KiB"

[[coap]]
listen = "127.0.0.1:5684"

[uplink]
url = "mqtt://example.com"
password = "${CAUSEWAY_TEST_UNSET_VAR}"

[[route]]
match = "coap/*/*"
payload = "value"
`
	path := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runGateway(t, dir, nil, "check", "-c", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errOut)
	}
	want := []struct{ key, line string }{
		{"log_levle", "3"},
		{"max_bytes", "6"},
		{"fsync_interval", "7"},
		{"inflight", "8"},
		{"coap", "14"},     // duplicate name "coap"
		{"password", "19"}, // unset env
		{"payload", "23"},  // value without {point}
	}
	for _, w := range want {
		re := regexp.MustCompile(`(?m)^.*:` + w.line + `:.*` + regexp.QuoteMeta(w.key) + `.*$`)
		if !re.MatchString(errOut) {
			t.Errorf("no error naming %q at line %s in:\n%s", w.key, w.line, errOut)
		}
	}
	// run refuses to start on the same errors.
	_, runErr, code := runGateway(t, dir, nil, "run", "-c", path)
	if code != 1 || !strings.Contains(runErr, "max_bytes") {
		t.Fatalf("run with a bad config: exit %d\n%s", code, runErr)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runGateway(t, ".", nil, "version")
	if code != 0 || !strings.HasPrefix(out, "causeway gateway ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestMinimalConfigRuns starts the gateway from CONFIG.md's minimal file,
// `[[coap]]` alone, with its default ports (1883 and 5683). To leave the
// machine's own ports alone it runs in a private network namespace
// (unshare -n, as root in CI), where it is sent a reading and its built-in
// broker is watched.
func TestMinimalConfigRuns(t *testing.T) {
	unshare := testpeer.Bin(t, "unshare")
	if os.Geteuid() != 0 {
		t.Fatalf("this test needs root for a private network namespace (unshare -n); CI runs as root")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gateway.toml"), []byte("[[coap]]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`set -e
ip link set lo up
%[1]s run -c gateway.toml 2>gateway.log &
gw=$!
for i in $(seq 1 100); do grep -q "gateway ready" gateway.log && break; sleep 0.1; done
%[2]s -h 127.0.0.1 -p 1883 -t '+/coap/#' -C 1 -W 10 -v > sub.out &
sub=$!
sleep 0.5
%[3]s -m post -t 50 -e '{"temperature":21.5}' coap://127.0.0.1/minimal
wait $sub
kill -TERM $gw
wait $gw
`, gatewayBin, testpeer.Bin(t, "mosquitto_sub"), testpeer.Bin(t, "coap-client-notls"))
	cmd := exec.Command(unshare, "-n", "bash", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(filepath.Join(dir, "gateway.log"))
	if err != nil {
		t.Fatalf("minimal gateway: %v\n%s\ngateway log:\n%s", err, out, log)
	}
	sub, _ := os.ReadFile(filepath.Join(dir, "sub.out"))
	host, _ := os.Hostname()
	if !strings.HasPrefix(string(sub), host+"/coap/minimal {") || !strings.Contains(string(sub), `"temperature":21.5`) {
		t.Fatalf("built-in broker got %q, want %s/coap/minimal with the reading\ngateway log:\n%s", sub, host, log)
	}
}
