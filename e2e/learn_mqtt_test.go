package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
	"github.com/eclipse/paho.golang/paho"
)

// TestLearnMQTT runs docs/learn-mqtt.md, the hands-on MQTT guide, so that
// it cannot rot: every example in it is typed into one bash session, as a
// reader would, against a gateway started with the sample gateway.toml, and
// what each prints is compared with what the guide says it prints.
//
// How the guide is marked up:
//
//   - A fenced block with the info string `console` is an example. A line
//     starting with "$ " is a command; a command line ending in `\` goes on
//     on the next line, and one holding a here-document (<<'EOF') goes on
//     to its terminator. Every other line is output, expected from the
//     commands before it. The whole block is one bash script (the commands
//     in order), and its output (standard output and error, as a terminal
//     shows them) must equal the block's output lines in order: exactly,
//     after trailing blanks are trimmed, except that "…" matches any text
//     within a line (time stamps, ids, counters). `console unordered`
//     compares the lines in any order (retained messages come in no fixed
//     order); the guide says so where it uses it.
//   - `toml append`: lines the reader adds at the end of gateway.toml. The
//     test appends them; the guide's next command (gateway reload) applies
//     them.
//   - `toml broker`: the reader's new [broker] table (with [[broker.user]]
//     blocks). The test replaces the [broker] table of gateway.toml with it
//     and restarts the gateway, as the reader does with Ctrl-C and make run.
//   - Other blocks (sh, plain toml) are not run.
//
// The blocks run in order in one bash process, as in the reader's terminal:
// background jobs (%1) and files persist from one block to the next. bash
// forgets finished jobs before each command, as an interactive shell does
// before each prompt, so that %1 is the job the reader's shell calls %1. It
// runs under `stdbuf -oL` so that mosquitto_sub writes each line as it
// arrives, as it does on a terminal. Lines that bash prints about its jobs
// (`… line 7: 1234 Killed  mosquitto_sub …`) are ignored: an interactive
// shell prints them differently and the guide leaves them out.
//
// Ports: the guide uses the sample's ports (broker 1883, CoAP 5683, HTTP
// 9100) and its own (TLS 8883, WebSocket 8083, gw-02's CoAP 5685, a dead
// uplink 1884, the lamp 5699). The test replaces each, in gateway.toml, the
// commands, the toml blocks and the expected output, with a free port, and
// makes mosquitto_sub, mosquitto_pub and mosquitto_rr use the free broker
// port by default (their options file in $XDG_CONFIG_HOME), since the guide
// leaves out `-p 1883`. `coap://127.0.0.1/` (CoAP's default port) becomes
// `coap://127.0.0.1:<port>/`. `./bin/gateway` is the binary under test.
//
// After the guide, the test also connects an MQTT client over the
// WebSocket endpoint the guide configures (Debian's mosquitto clients
// cannot), as the guide's user, and receives the gateway's status.
func TestLearnMQTT(t *testing.T) {
	for _, b := range []string{"bash", "stdbuf", "mosquitto_sub", "mosquitto_pub", "mosquitto_rr",
		"coap-client-notls", "coap-server-notls", "openssl", "curl", "sed", "grep", "head"} {
		testpeer.Bin(t, b) // fails loudly when a peer is missing
	}
	steps := parseGuide(t, filepath.Join("..", "docs", "learn-mqtt.md"))

	rw := newPortRewriter(t)
	dir := t.TempDir()
	sample, err := os.ReadFile(filepath.Join("..", "gateway.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id = "gw-01"`, `listen = "127.0.0.1:1883"`, `listen = "0.0.0.0:5683"`, `listen = "127.0.0.1:9100"`} {
		if !strings.Contains(string(sample), want) {
			t.Fatalf("gateway.toml no longer has %s: docs/learn-mqtt.md assumes it", want)
		}
	}
	cfg := strings.ReplaceAll(rw.apply(string(sample)), `"0.0.0.0:`, `"127.0.0.1:`)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(gatewayBin, filepath.Join(dir, "bin", "gateway")); err != nil {
		t.Fatal(err)
	}
	xdg := t.TempDir()
	for _, c := range []string{"mosquitto_sub", "mosquitto_pub", "mosquitto_rr"} {
		if err := os.WriteFile(filepath.Join(xdg, c), []byte("-p "+rw.ports["1883"]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	g := startGatewayIn(t, dir, cfg)
	g.waitReady()
	sh := startGuideShell(t, dir, xdg)

	start := time.Now()
	var brokerBlock string
	ran := 0
	for i, s := range steps {
		name := fmt.Sprintf("docs/learn-mqtt.md:%d (%s)", s.line, s.heading)
		switch s.kind {
		case stepAppend:
			f, err := os.OpenFile(filepath.Join(dir, "gateway.toml"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteString("\n" + rw.apply(s.text))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		case stepBroker:
			brokerBlock = rw.apply(s.text)
			cur, err := os.ReadFile(filepath.Join(dir, "gateway.toml"))
			if err != nil {
				t.Fatal(err)
			}
			next, err := replaceBrokerTable(string(cur), brokerBlock)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if _, err := g.stop(); err != nil {
				t.Fatalf("%s: stopping the gateway for the new [broker]: %v\n%s", name, err, g.Log())
			}
			g = startGatewayIn(t, dir, next)
			g.waitReady()
		case stepConsole:
			// Before each command, as an interactive shell does before
			// each prompt, bash forgets the jobs that ended, so that job
			// numbers (%1) are the ones the reader sees.
			script := rw.apply("jobs >/dev/null\n"+strings.Join(s.commands, "\njobs >/dev/null\n")) + "\n"
			shown := rw.apply(strings.Join(s.commands, "\n")) + "\n"
			t0 := time.Now()
			got, err := sh.run(i, script, 30*time.Second)
			if err != nil {
				t.Fatalf("%s: %v\ncommands:\n%s\noutput so far:\n%s", name, err, shown, got) // the gateway's log follows
			}
			ran++
			want := make([]string, len(s.output))
			for j, l := range s.output {
				want[j] = rw.apply(l)
			}
			gotLines := outputLines(got)
			if msg := compareOutput(gotLines, trimLines(want), s.unordered); msg != "" {
				t.Errorf("%s: %s\n--- commands\n%s--- got\n%s\n--- want\n%s", name, msg, shown,
					strings.Join(gotLines, "\n"), strings.Join(trimLines(want), "\n"))
			}
			t.Logf("%s: %v", name, time.Since(t0).Round(10*time.Millisecond))
		}
	}
	if ran < 30 {
		t.Errorf("only %d examples ran: the guide's console blocks were not found", ran)
	}
	t.Logf("%d examples in %v", ran, time.Since(start).Round(100*time.Millisecond))

	if brokerBlock == "" {
		t.Fatal("the guide has no `toml broker` block: the WebSocket check has nothing to connect to")
	}
	checkGuideWebSocket(t, brokerBlock)
}

// checkGuideWebSocket connects an MQTT 5 client over the WebSocket listener
// of the guide's [broker] table, as its first user, and waits for the
// retained gateway status.
//
// Keepalive 0 and QoS 0: paho writes a packet as several buffers, from
// more than one goroutine (its pinger, its acknowledgements); on a TCP
// socket each packet is one writev, but dialMQTTWebSocket sends every
// buffer as a WebSocket message of its own, so two packets written at once
// would interleave. With neither a pinger nor acknowledgements, packets
// are written one at a time, by this goroutine.
func checkGuideWebSocket(t *testing.T, broker string) {
	t.Helper()
	ws := regexp.MustCompile(`(?m)^websocket = "([^"]+)"`).FindStringSubmatch(broker)
	user := regexp.MustCompile(`(?m)^name = "([^"]+)"`).FindStringSubmatch(broker)
	pw := regexp.MustCompile(`(?m)^password = "([^"]+)"`).FindStringSubmatch(broker)
	if ws == nil || user == nil || pw == nil {
		t.Fatalf("the guide's [broker] table has no websocket, user name or password:\n%s", broker)
	}
	conn, err := dialMQTTWebSocket("ws://" + ws[1] + "/mqtt")
	if err != nil {
		t.Fatalf("WebSocket %s: %v", ws[1], err)
	}
	got := make(chan string, 4)
	cli := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet.Topic + " " + string(pr.Packet.Payload)
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Connect(ctx, &paho.Connect{ClientID: "learn-mqtt-ws", KeepAlive: 0, CleanStart: true,
		Username: user[1], UsernameFlag: true, Password: []byte(pw[1]), PasswordFlag: true}); err != nil {
		t.Fatalf("MQTT over WebSocket as %s: %v", user[1], err)
	}
	defer func() { _ = cli.Disconnect(&paho.Disconnect{}) }()
	if _, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "gw-01/status", QoS: 0}}}); err != nil {
		t.Fatalf("subscribe over WebSocket: %v", err)
	}
	select {
	case m := <-got:
		if m != "gw-01/status online" {
			t.Fatalf("over WebSocket: %q, want gw-01/status online", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("over WebSocket: no gw-01/status within 10s")
	}
}

type stepKind int

const (
	stepConsole stepKind = iota
	stepAppend
	stepBroker
)

type guideStep struct {
	kind      stepKind
	line      int // of the opening fence
	heading   string
	commands  []string // console: each command, continuation lines included
	output    []string // console: the expected lines
	unordered bool
	text      string // toml: the block
}

var heredocRE = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)

func parseGuide(t *testing.T, path string) []guideStep {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var steps []guideStep
	heading := "top"
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "#!") {
			heading = strings.TrimSpace(l)
			continue
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		info := strings.Fields(strings.TrimPrefix(l, "```"))
		open := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: unclosed code block", path, open+1)
		}
		if len(info) == 0 {
			continue
		}
		s := guideStep{line: open + 1, heading: heading}
		switch {
		case info[0] == "console":
			s.kind = stepConsole
			for _, w := range info[1:] {
				if w != "unordered" {
					t.Fatalf("%s:%d: unknown word %q after console", path, open+1, w)
				}
				s.unordered = true
			}
			if err := parseConsole(&s, body); err != nil {
				t.Fatalf("%s:%d: %v", path, open+1, err)
			}
		case info[0] == "toml" && len(info) > 1 && info[1] == "append":
			s.kind, s.text = stepAppend, strings.Join(body, "\n")+"\n"
		case info[0] == "toml" && len(info) > 1 && info[1] == "broker":
			s.kind, s.text = stepBroker, strings.Join(body, "\n")+"\n"
		default:
			continue
		}
		steps = append(steps, s)
	}
	return steps
}

func parseConsole(s *guideStep, body []string) error {
	for j := 0; j < len(body); j++ {
		l := body[j]
		if !strings.HasPrefix(l, "$ ") {
			if len(s.commands) == 0 && strings.TrimSpace(l) != "" {
				return fmt.Errorf("output %q before any command", l)
			}
			s.output = append(s.output, l)
			continue
		}
		cmd := []string{strings.TrimPrefix(l, "$ ")}
		if m := heredocRE.FindStringSubmatch(l); m != nil {
			for j++; j < len(body) && body[j] != m[1]; j++ {
				cmd = append(cmd, body[j])
			}
			if j == len(body) {
				return fmt.Errorf("here-document %s not terminated", m[1])
			}
			cmd = append(cmd, body[j])
		}
		for strings.HasSuffix(cmd[len(cmd)-1], `\`) {
			j++
			if j == len(body) {
				return fmt.Errorf("command %q continues past the block", cmd[0])
			}
			cmd = append(cmd, body[j])
		}
		s.commands = append(s.commands, strings.Join(cmd, "\n"))
	}
	if len(s.commands) == 0 {
		return fmt.Errorf("console block without a command")
	}
	return nil
}

// portRewriter maps the guide's ports to free ones.
type portRewriter struct {
	ports map[string]string
	re    *regexp.Regexp
}

func newPortRewriter(t *testing.T) *portRewriter {
	t.Helper()
	tcp := func() string { return fmt.Sprint(testpeer.FreeTCPPort(t)) }
	udp := func() string { return fmt.Sprint(testpeer.FreeUDPPort(t)) }
	p := map[string]string{
		"1883": tcp(), // the built-in broker
		"9100": tcp(), // [http]
		"8883": tcp(), // the broker's TLS listener
		"8083": tcp(), // the broker's WebSocket listener
		"1884": tcp(), // gw-02's uplink while nothing listens there
		"5683": udp(), // the CoAP server
		"5685": udp(), // gw-02's CoAP server
		"5699": udp(), // the lamp (coap-server-notls)
	}
	var alts []string
	for k := range p {
		alts = append(alts, k)
	}
	return &portRewriter{ports: p, re: regexp.MustCompile(`\b(` + strings.Join(alts, "|") + `)\b`)}
}

func (r *portRewriter) apply(s string) string {
	s = strings.ReplaceAll(s, "coap://127.0.0.1/", "coap://127.0.0.1:5683/")
	return r.re.ReplaceAllStringFunc(s, func(p string) string { return r.ports[p] })
}

// replaceBrokerTable replaces the [broker] table of a gateway.toml (its
// header up to the next table header) with block.
func replaceBrokerTable(file, block string) (string, error) {
	lines := strings.Split(file, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "[broker]") {
			start = i
			break
		}
	}
	if start < 0 {
		return "", fmt.Errorf("gateway.toml has no [broker] table")
	}
	end := start + 1
	for end < len(lines) && !strings.HasPrefix(lines[end], "[") {
		end++
	}
	out := append(append(append([]string{}, lines[:start]...), strings.TrimRight(block, "\n"), ""), lines[end:]...)
	return strings.Join(out, "\n"), nil
}

// bashJobLine is what bash prints about a background job that ended by a
// signal, e.g. "/tmp/x/block-12.sh: line 7: 1234 Killed  mosquitto_sub …".
var bashJobLine = regexp.MustCompile(`^(.*: line \d+: +)?\d+ (Killed|Terminated|Stopped|Hangup|Aborted|Done)\b|^\[\d+\][+-]? `)

// outputLines splits what a block printed into lines as a terminal shows
// them, without bash's job lines and trailing blanks.
func outputLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(out, "\r", ""), "\n") {
		if bashJobLine.MatchString(l) {
			continue
		}
		lines = append(lines, l)
	}
	return trimLines(lines)
}

// trimLines trims trailing blanks of every line and drops trailing empty
// lines.
func trimLines(in []string) []string {
	out := make([]string, len(in))
	for i, l := range in {
		out[i] = strings.TrimRight(l, " \t")
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// linePattern turns an expected line into a regexp: "…" matches anything.
func linePattern(want string) *regexp.Regexp {
	parts := strings.Split(want, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`)
}

// compareOutput returns "" when got matches want, else what differs.
func compareOutput(got, want []string, unordered bool) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d lines, want %d", len(got), len(want))
	}
	if !unordered {
		for i := range want {
			if !linePattern(want[i]).MatchString(got[i]) {
				return fmt.Sprintf("line %d is %q, want %q", i+1, got[i], want[i])
			}
		}
		return ""
	}
	used := make([]bool, len(got))
	for _, w := range want {
		re, found := linePattern(w), false
		for i, g := range got {
			if !used[i] && re.MatchString(g) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return fmt.Sprintf("no line matches %q (in any order)", w)
		}
	}
	return ""
}

// guideShell is one bash process that runs the guide's blocks in turn, as
// the reader's terminal does.
type guideShell struct {
	dir   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	out   []byte
	pos   int // output of earlier blocks ends here
	more  chan struct{}
	done  chan struct{}
}

func startGuideShell(t *testing.T, dir, xdg string) *guideShell {
	t.Helper()
	home := t.TempDir()
	sh := &guideShell{dir: filepath.Join(home, "blocks"), more: make(chan struct{}, 1), done: make(chan struct{})}
	if err := os.Mkdir(sh.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sh.cmd = exec.Command(testpeer.Bin(t, "stdbuf"), "-oL", "-eL", testpeer.Bin(t, "bash"), "--noprofile", "--norc")
	sh.cmd.Dir = dir
	sh.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH") + ":/usr/sbin:/sbin",
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + xdg,
		"LANG=C.UTF-8",
		"TERM=dumb",
	}
	// Its own process group, so that what the blocks leave running
	// (a background job of a failed block) is killed with it.
	sh.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sh.cmd.Stdout, sh.cmd.Stderr = w, w
	if sh.stdin, err = sh.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := sh.cmd.Start(); err != nil {
		t.Fatalf("start bash: %v", err)
	}
	w.Close()
	go func() {
		defer close(sh.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				sh.mu.Lock()
				sh.out = append(sh.out, buf[:n]...)
				sh.mu.Unlock()
				select {
				case sh.more <- struct{}{}:
				default:
				}
			}
			if err != nil {
				r.Close()
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = sh.stdin.Close()
		_ = syscall.Kill(-sh.cmd.Process.Pid, syscall.SIGKILL)
		_ = sh.cmd.Wait()
		<-sh.done
	})
	return sh
}

// run runs script as block n and returns what it printed.
func (sh *guideShell) run(n int, script string, timeout time.Duration) (string, error) {
	path := filepath.Join(sh.dir, fmt.Sprintf("block-%d.sh", n))
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return "", err
	}
	marker := fmt.Sprintf("@@learn-mqtt block %d done@@", n)
	if _, err := fmt.Fprintf(sh.stdin, "source '%s' </dev/null; printf '\\n%s\\n'\n", path, marker); err != nil {
		return "", fmt.Errorf("bash: %v", err)
	}
	deadline := time.After(timeout)
	for {
		sh.mu.Lock()
		rest := sh.out[sh.pos:]
		if i := bytes.Index(rest, []byte(marker+"\n")); i >= 0 {
			got := string(rest[:i])
			sh.pos += i + len(marker) + 1
			sh.mu.Unlock()
			return got, nil
		}
		sofar := string(rest)
		sh.mu.Unlock()
		select {
		case <-sh.more:
		case <-sh.done:
			return sofar, fmt.Errorf("bash exited")
		case <-deadline:
			return sofar, fmt.Errorf("not finished within %v", timeout)
		}
	}
}
