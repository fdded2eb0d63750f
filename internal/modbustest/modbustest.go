// Package modbustest runs a real, independent Modbus server for tests: the C
// program in server/modbus-testserver.c (built on libmodbus), serving Modbus
// TCP on 127.0.0.1 or Modbus RTU on one end of a socat pseudo-terminal pair.
//
// Tests steer it through its control protocol (mute, delay, corrupt, set,
// get, holes) and read back every request it received. A test whose peers
// are missing (gcc, libmodbus, socat) fails with an install hint; it never
// skips. Only tests import this package.
package modbustest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Install is the command that provides every peer this package needs.
const Install = "apt-get install libmodbus-dev gcc pkg-config socat (or: make test-deps as root)"

// Options says what the server serves.
type Options struct {
	RTU    bool     // serve RTU on a socat pty pair instead of TCP
	Baud   int      // RTU, default 9600
	Parity string   // RTU: "N" (default), "E" or "O"
	Units  []int    // default {1}
	Init   string   // contents of the --init file: lines "UNIT TABLE ADDRESS VALUE..."
	Holes  []string // e.g. "1:holding:20-21": addresses answering exception 2
}

// Request is one REQ line of the server: a request it received.
type Request struct {
	Unit, FC, Addr, Count int
	Time                  time.Time // when the helper read the line
}

// Reply is one REP line of the server: what it did with a request. Status is
// "ok", "exception=N", "muted", "corrupted" or "delayed=MS".
type Reply struct {
	Unit, FC int
	Status   string
	Time     time.Time
}

// Server is a running modbus-testserver (and, for RTU, its socat pty pair).
type Server struct {
	opts Options
	bin  string
	dir  string
	args []string // everything but --tcp/--rtu
	addr string   // TCP: 127.0.0.1:PORT
	dev  string   // RTU: the pty end for the client
	srv  string   // RTU: the pty end the server opens

	ctlMu sync.Mutex // serializes Control

	mu     sync.Mutex
	server *proc
	socat  *proc
	reqs   []Request
	reps   []Reply
	other  []string      // BAD/CONN lines, for failure reports
	trace  []string      // the last REQ/REP lines, for failure reports
	logs   []string      // stderr of processes that have ended
	notify chan struct{} // closed and replaced when a REQ/REP line arrives
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	ready  chan string // the READY line
	ctl    chan string // OK/ERR lines
	done   chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Start starts a server for the test and stops it when the test ends. The
// binary is $MODBUS_TESTSERVER, else <repo>/bin/modbus-testserver (built by
// make) when it is not older than its source, else one compiled here with gcc.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Baud == 0 {
		o.Baud = 9600
	}
	if o.Parity == "" {
		o.Parity = "N"
	}
	if len(o.Units) == 0 {
		o.Units = []int{1}
	}
	s := &Server{opts: o, bin: Binary(t), dir: t.TempDir(), notify: make(chan struct{})}
	units := make([]string, len(o.Units))
	for i, u := range o.Units {
		units[i] = strconv.Itoa(u)
	}
	s.args = []string{"--units", strings.Join(units, ",")}
	if o.Init != "" {
		p := filepath.Join(s.dir, "init.txt")
		if err := os.WriteFile(p, []byte(o.Init), 0o644); err != nil {
			t.Fatalf("modbustest: %v", err)
		}
		s.args = append(s.args, "--init", p)
	}
	if len(o.Holes) > 0 {
		s.args = append(s.args, "--holes", strings.Join(o.Holes, ","))
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.report(t)
		}
	})
	if o.RTU {
		s.startSocat(t)
		s.startServer(t, "--rtu", s.srv, "--baud", strconv.Itoa(o.Baud), "--parity", o.Parity)
	} else {
		s.startServer(t, "--tcp", "127.0.0.1:0")
	}
	return s
}

// report logs what the processes wrote on stderr and the lines that tests
// do not read back, to explain a failure.
func (s *Server) report(t testing.TB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.logs {
		if strings.TrimSpace(l) != "" {
			t.Log(l)
		}
	}
	if len(s.other) > 0 {
		t.Logf("modbus-testserver other output:\n%s", strings.Join(s.other, "\n"))
	}
	if len(s.trace) > 0 {
		t.Logf("modbus-testserver last requests and replies:\n%s", strings.Join(s.trace, "\n"))
	}
}

// Binary returns the path of the modbus-testserver program, building it when
// needed (see Start).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MODBUS_TESTSERVER"); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			t.Fatalf("MODBUS_TESTSERVER=%s: not a program (%v)", p, err)
		}
		return p
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("modbustest: %v", err)
	}
	src := filepath.Join(root, "internal", "modbustest", "server", "modbus-testserver.c")
	srcSt, err := os.Stat(src)
	if err != nil {
		t.Fatalf("modbustest: %v", err)
	}
	made := filepath.Join(root, "bin", "modbus-testserver")
	if st, err := os.Stat(made); err == nil && !st.ModTime().Before(srcSt.ModTime()) {
		return made
	}
	buildOnce.Do(func() { built, buildErr = build(src) })
	if buildErr != nil {
		t.Fatalf("modbustest: %v", buildErr)
	}
	return built
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// build compiles src into a cache directory keyed by its contents and flags,
// so that test binaries running at the same time share one build.
func build(src string) (string, error) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", fmt.Errorf("gcc is not installed, needed to build modbus-testserver: %s", Install)
	}
	pc, err := exec.LookPath("pkg-config")
	if err != nil {
		return "", fmt.Errorf("pkg-config is not installed, needed to build modbus-testserver: %s", Install)
	}
	flags, err := exec.Command(pc, "--cflags", "--libs", "libmodbus").Output()
	if err != nil {
		return "", fmt.Errorf("libmodbus is not installed (pkg-config libmodbus: %v): %s", err, Install)
	}
	code, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(code, flags...))
	dir := filepath.Join(os.TempDir(), "causeway-modbus-testserver-"+hex.EncodeToString(sum[:8]))
	out := filepath.Join(dir, "modbus-testserver")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := append([]string{"-O2", "-Wall", "-Wextra", "-o", tmp.Name(), src}, strings.Fields(string(flags))...)
	if msg, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// repoRoot finds the module's root: beside this source file when the build
// kept its path, else the first directory upwards from the working directory
// that holds go.mod.
func repoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return filepath.Clean(root), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func (s *Server) startSocat(t testing.TB) {
	t.Helper()
	bin, err := exec.LookPath("socat")
	if err != nil {
		t.Fatalf("test peer socat is not installed: %s", Install)
	}
	s.dev = filepath.Join(s.dir, "dev")
	s.srv = filepath.Join(s.dir, "srv")
	p := s.spawn(t, "socat", bin, "-d", "-d", "pty,raw,echo=0,link="+s.dev, "pty,raw,echo=0,link="+s.srv)
	s.mu.Lock()
	s.socat = p
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err1 := os.Stat(s.dev)
		_, err2 := os.Stat(s.srv)
		if err1 == nil && err2 == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("socat exited at start:\n%s", p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("socat made no pty pair in 5 s:\n%s", p.stderr)
		}
	}
}

// startServer starts modbus-testserver with the mode arguments and waits for
// its READY line.
func (s *Server) startServer(t testing.TB, mode ...string) {
	t.Helper()
	args := append(append([]string{}, mode...), s.args...)
	p := s.spawn(t, "modbus-testserver", s.bin, args...)
	s.mu.Lock()
	s.server = p
	s.mu.Unlock()
	select {
	case line := <-p.ready:
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("modbus-testserver: bad READY line %q", line)
		}
		if f[1] == "tcp" {
			s.addr = f[2]
		}
	case <-p.done:
		t.Fatalf("modbus-testserver %s exited at start:\n%s", strings.Join(args, " "), p.stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("modbus-testserver %s not READY in 10 s:\n%s", strings.Join(args, " "), p.stderr)
	}
}

// spawn starts a process whose stdout is read line by line until it ends.
func (s *Server) spawn(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{
		name:   name,
		cmd:    cmd,
		stderr: &syncBuffer{},
		ready:  make(chan string, 1),
		ctl:    make(chan string, 16),
		done:   make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			s.line(p, sc.Text())
		}
		_, _ = io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		s.mu.Lock()
		s.logs = append(s.logs, fmt.Sprintf("%s %s (%v) stderr:\n%s", name, strings.Join(args, " "), err, p.stderr))
		s.mu.Unlock()
		close(p.done)
	}()
	return p
}

// line handles one line of a process's stdout.
func (s *Server) line(p *proc, line string) {
	now := time.Now()
	switch {
	case strings.HasPrefix(line, "READY "):
		select {
		case p.ready <- line:
		default:
		}
	case line == "OK" || strings.HasPrefix(line, "OK ") || strings.HasPrefix(line, "ERR"):
		select {
		case p.ctl <- line:
		default: // nobody waits for it any more
		}
	case strings.HasPrefix(line, "REQ "):
		kv := fields(line)
		r := Request{Unit: atoi(kv["unit"]), FC: atoi(kv["fc"]), Addr: atoi(kv["addr"]), Count: atoi(kv["count"]), Time: now}
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.traceLine(now, line)
		s.wake()
		s.mu.Unlock()
	case strings.HasPrefix(line, "REP "):
		kv := fields(line)
		r := Reply{Unit: atoi(kv["unit"]), FC: atoi(kv["fc"]), Status: kv["status"], Time: now}
		s.mu.Lock()
		s.reps = append(s.reps, r)
		s.traceLine(now, line)
		s.wake()
		s.mu.Unlock()
	default:
		s.mu.Lock()
		if len(s.other) < 1000 {
			s.other = append(s.other, line)
		}
		s.mu.Unlock()
	}
}

// traceLine keeps the last 40 REQ/REP lines; s.mu is held.
func (s *Server) traceLine(now time.Time, line string) {
	if len(s.trace) == 40 {
		s.trace = s.trace[1:]
	}
	s.trace = append(s.trace, now.Format("15:04:05.000 ")+line)
}

// wake tells WaitRequests that a line arrived; s.mu is held.
func (s *Server) wake() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// fields parses "WORD k=v k=v..." (a value may itself hold '=').
func fields(line string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(line)[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Addr is the TCP server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// DevicePath is, for RTU, the pty end that the client (the gateway) opens.
func (s *Server) DevicePath() string { return s.dev }

// URL is "tcp://127.0.0.1:PORT" or, for RTU, "rtu://" + DevicePath()
// (three slashes: rtu:///tmp/x/dev).
func (s *Server) URL() string {
	if s.opts.RTU {
		return "rtu://" + s.dev
	}
	return "tcp://" + s.addr
}

// Control sends one control line (mute U, unmute U, delay U MS, corrupt U N,
// set U TABLE ADDR VALUE..., get U TABLE ADDR COUNT, hole U TABLE A[-B],
// unhole U TABLE A[-B], counters, reset-counters, quit) and returns the
// server's OK/ERR line; an ERR line is also an error.
func (s *Server) Control(cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return "", fmt.Errorf("control command %q holds a line break", cmd)
	}
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	s.mu.Lock()
	p := s.server
	s.mu.Unlock()
	if p == nil {
		return "", errors.New("modbus-testserver is not running")
	}
	for len(p.ctl) > 0 { // answers to commands that timed out
		<-p.ctl
	}
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return "", fmt.Errorf("control %q: %v", cmd, err)
	}
	var line string
	select {
	case line = <-p.ctl:
	case <-p.done:
		// Every line was handled before done closed: "quit" has its OK.
		select {
		case line = <-p.ctl:
		default:
			return "", fmt.Errorf("control %q: modbus-testserver exited", cmd)
		}
	case <-time.After(5 * time.Second):
		return "", fmt.Errorf("control %q: no answer in 5 s", cmd)
	}
	if strings.HasPrefix(line, "ERR") {
		return line, fmt.Errorf("control %q: %s", cmd, line)
	}
	return line, nil
}

// Get reads count values of table (coil, discrete, holding, input) of unit
// from the server's memory, holes or not. Bits read as 0 or 1.
func (s *Server) Get(unit int, table string, addr, count int) ([]uint16, error) {
	line, err := s.Control(fmt.Sprintf("get %d %s %d %d", unit, table, addr, count))
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)[1:]
	if len(f) != count {
		return nil, fmt.Errorf("get: %d values in %q, want %d", len(f), line, count)
	}
	vals := make([]uint16, count)
	for i, v := range f {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("get: %q: %v", line, err)
		}
		vals[i] = uint16(n)
	}
	return vals, nil
}

// Set writes values into table of unit, starting at addr.
func (s *Server) Set(unit int, table string, addr int, values ...uint16) error {
	var b strings.Builder
	fmt.Fprintf(&b, "set %d %s %d", unit, table, addr)
	for _, v := range values {
		fmt.Fprintf(&b, " %d", v)
	}
	_, err := s.Control(b.String())
	return err
}

// Requests returns every request received since the start or the last
// ResetRequests.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Replies returns what the server did with each request (same period as
// Requests).
func (s *Server) Replies() []Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reply(nil), s.reps...)
}

// ResetRequests forgets the requests and replies seen so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs, s.reps = nil, nil
}

// WaitRequests waits until at least n requests were seen (or d passed) and
// returns them.
func (s *Server) WaitRequests(n int, d time.Duration) []Request {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.reqs) >= n {
			r := append([]Request(nil), s.reqs...)
			s.mu.Unlock()
			return r
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return s.Requests()
		}
	}
}

// Stop stops the server and socat now (SIGTERM, SIGKILL after 2 s) and waits
// for them. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, so := s.server, s.socat
	s.server, s.socat = nil, nil
	s.mu.Unlock()
	stop(srv)
	stop(so)
}

func stop(p *proc) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Restart starts the TCP server again on the same port, with its initial
// contents (mute, delay and written values are gone, as after a device
// reboot). The requests seen so far are kept.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.opts.RTU {
		t.Fatal("modbustest: Restart is for TCP servers only")
	}
	s.mu.Lock()
	srv := s.server
	s.server = nil
	s.mu.Unlock()
	stop(srv)
	s.startServer(t, "--tcp", s.addr)
}
