package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

// TestMain lets a test run the real command: the test binary re-executed
// with COAPLOAD_RUN_MAIN=1 is coapload (see runMainProcess).
func TestMain(m *testing.M) {
	if os.Getenv("COAPLOAD_RUN_MAIN") == "1" {
		os.Args = append([]string{"coapload"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// answered is what a restartable test server answered, over all its lives.
type answered struct {
	mu    sync.Mutex
	codes map[int64][]codes.Code // seq → codes sent back, one per request received
	paths []map[string]int       // per life: path → 2.xx answers
}

func newAnswered() *answered { return &answered{codes: map[int64][]codes.Code{}} }

// okSeqs returns the seqs answered with a 2.xx code at least once.
func (a *answered) okSeqs() map[int64]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	ok := map[int64]bool{}
	for seq, cs := range a.codes {
		for _, c := range cs {
			if c>>5 == 2 {
				ok[seq] = true
			}
		}
	}
	return ok
}

// serveAt starts a CoAP server on addr (host:port) that answers every POST
// with codeFor(seq) and records it in a, as its next life. The returned
// function stops it and closes its socket, like a killed gateway: from then
// on the port answers with ICMP port unreachable.
func serveAt(t *testing.T, addr string, a *answered, codeFor func(seq int64) codes.Code) (stop func()) {
	t.Helper()
	a.mu.Lock()
	life := len(a.paths)
	a.paths = append(a.paths, map[string]int{})
	a.mu.Unlock()
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, m *mux.Message) {
		body, _ := io.ReadAll(m.Body())
		var v struct{ Seq int64 }
		if err := json.Unmarshal(body, &v); err != nil {
			_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
			return
		}
		code := codeFor(v.Seq)
		p, _ := m.Path()
		a.mu.Lock()
		a.codes[v.Seq] = append(a.codes[v.Seq], code)
		if code>>5 == 2 {
			a.paths[life][p]++
		}
		a.mu.Unlock()
		_ = w.SetResponse(code, message.TextPlain, nil)
	}))
	var l *coapnet.UDPConn
	var err error
	for range 50 { // the port was ours a moment ago; retry briefly if not yet free
		if l, err = coapnet.NewListenUDP("udp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Error(err) // may run outside the test goroutine
		return func() {}
	}
	s := udp.NewServer(options.WithMux(r), options.WithErrors(func(error) {}))
	go func() { _ = s.Serve(l) }()
	var once sync.Once
	stop = func() { once.Do(func() { s.Stop(); _ = l.Close() }) }
	t.Cleanup(stop)
	return stop
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// readAcked parses an -acked file strictly: one decimal number per line,
// every line terminated.
func readAcked(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", path)
	}
	var seqs []int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		n, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		seqs = append(seqs, n)
	}
	return seqs
}

// checkAcked checks that the file lists exactly one line per 2.xx response
// res counted, each seq once, each answered 2.xx by the server.
func checkAcked(t *testing.T, seqs []int64, res *Result, a *answered) {
	t.Helper()
	ok := a.okSeqs()
	seen := map[int64]bool{}
	for _, s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d acked twice", s)
		}
		seen[s] = true
		if !ok[s] {
			t.Fatalf("seq %d in the acked file, but the server never answered it 2.xx", s)
		}
	}
	if uint64(len(seqs)) != res.OK || res.Acked != res.OK {
		t.Fatalf("acked file has %d seqs, result acked %d, 2.xx responses %d", len(seqs), res.Acked, res.OK)
	}
}

func TestAckedFileListsOnly2xx(t *testing.T) {
	for _, con := range []bool{true, false} {
		name := map[bool]string{true: "CON", false: "NON"}[con]
		t.Run(name, func(t *testing.T) {
			addr := freeUDPAddr(t)
			a := newAnswered()
			// every fifth seq is refused: 5.03 must not be listed
			serveAt(t, addr, a, func(seq int64) codes.Code {
				if seq%5 == 0 {
					return codes.ServiceUnavailable
				}
				return codes.Changed
			})
			file := filepath.Join(t.TempDir(), "acked")
			// -acked appends: what is there already stays.
			if err := os.WriteFile(file, []byte("1000000\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := config{target: addr, clients: 3, window: 4, devices: 3, size: 64, count: 500, con: con,
				timeout: 5 * time.Second, run: 3, acked: file}
			res, err := run(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != 500 || res.OK != 400 || res.Codes["5.03"] != 100 || res.Acked != 400 || res.AckedFile != file {
				t.Fatalf("%+v", res)
			}
			seqs := readAcked(t, file)
			if len(seqs) != 401 || seqs[0] != 1000000 {
				t.Fatalf("%d lines, first %v", len(seqs), seqs[:1])
			}
			seqs = seqs[1:]
			checkAcked(t, seqs, res, a)
			for _, s := range seqs {
				if s%5 == 0 || s < 0 || s >= 500 {
					t.Fatalf("seq %d listed", s)
				}
			}
		})
	}
}

func TestAckedFileBadPath(t *testing.T) {
	cfg := config{target: "127.0.0.1:9", clients: 1, window: 1, devices: 1, size: 64, count: 1, con: true,
		timeout: time.Second, run: 1, acked: filepath.Join(t.TempDir(), "no", "such", "dir")}
	if res, err := run(context.Background(), cfg, io.Discard); err == nil || res != nil {
		t.Fatalf("run with an unwritable -acked: %v, %v", res, err)
	}
}

// TestAckLogFlushesWhileRunning: lines reach the file within the flush
// interval, not only at close, and always whole.
func TestAckLogFlushesWhileRunning(t *testing.T) {
	file := filepath.Join(t.TempDir(), "acked")
	al, err := openAckLog(file, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(1000) {
		al.add(i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		if strings.Count(string(b), "\n") == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the file holds %d bytes", len(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A burst larger than the buffer: every write(2) ends at a line end,
	// so the file always ends with a newline.
	for i := range int64(20000) {
		al.add(1_000_000_000 + i)
		if i%4000 == 0 {
			if b, _ := os.ReadFile(file); len(b) > 0 && b[len(b)-1] != '\n' {
				t.Fatalf("file ends mid-line after %d adds", i)
			}
		}
	}
	if err := al.close(); err != nil {
		t.Fatal(err)
	}
	if seqs := readAcked(t, file); len(seqs) != 21000 || al.count() != 21000 {
		t.Fatalf("%d lines, count %d", len(seqs), al.count())
	}
}

// TestRunSurvivesTargetRestart kills the target twice under a steady CON or
// NON load and brings it back on the same address: first silent (requests
// time out), then gone (ICMP port unreachable, which makes go-coap close
// the connection), then answering again. Every client must carry on and be
// answered by the new server, and the -acked file must list exactly the
// seqs that got a 2.xx response.
func TestRunSurvivesTargetRestart(t *testing.T) {
	for _, con := range []bool{true, false} {
		name := map[bool]string{true: "CON", false: "NON"}[con]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := freeUDPAddr(t)
			a := newAnswered()
			ok := func(int64) codes.Code { return codes.Changed }
			stop := serveAt(t, addr, a, ok)
			file := filepath.Join(t.TempDir(), "acked")
			const clients = 4
			cfg := config{target: addr, clients: clients, window: 2, devices: clients, size: 64, rate: 200,
				duration: 4 * time.Second, con: con, timeout: 300 * time.Millisecond, pause: 50 * time.Millisecond,
				run: 4, acked: file}
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(500 * time.Millisecond)
				stop()
				// silent: a socket that never answers, so no ICMP either
				silent, err := net.ListenPacket("udp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Second)
				_ = silent.Close()
				time.Sleep(500 * time.Millisecond) // gone: port unreachable
				stop = serveAt(t, addr, a, ok)
				time.Sleep(500 * time.Millisecond)
				stop() // killed again, back at once
				serveAt(t, addr, a, ok)
			}()
			res, err := run(context.Background(), cfg, io.Discard)
			<-done
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("sent %d ok %d timeouts %d errors %d reconnects %d conn errors %d; first error %q",
				res.Sent, res.OK, res.Timeouts, res.Errors, res.Reconnects, res.ConnErrors, res.FirstError)
			if res.Timeouts == 0 || res.Reconnects == 0 || res.OK == 0 || res.OK >= res.Sent {
				t.Fatalf("%+v", res)
			}
			a.mu.Lock()
			lives := len(a.paths)
			last := a.paths[lives-1]
			a.mu.Unlock()
			if lives != 3 {
				t.Fatalf("%d server lives", lives)
			}
			// every client (one device each) was answered by the last server
			for d := range clients {
				if p := "/dev" + strconv.Itoa(d); last[p] == 0 {
					t.Fatalf("client of %s was never answered after the restarts: %v", p, last)
				}
			}
			checkAcked(t, readAcked(t, file), res, a)
		})
	}
}

// TestCountWithRateKeepsSchedule: -count ends the run after exactly N
// requests (seqs 0..N-1), sent on the -rate schedule, not as a burst.
func TestCountWithRateKeepsSchedule(t *testing.T) {
	addr, rec := startServer(t, codes.Changed)
	cfg := config{target: addr, clients: 4, window: 4, devices: 4, size: 64, rate: 100, count: 50,
		con: true, timeout: 5 * time.Second, run: 1}
	start := time.Now()
	res, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// 50 at 100/s: the last one is due at 490 ms.
	if took < 450*time.Millisecond || took > 5*time.Second {
		t.Fatalf("50 requests at 100/s took %v", took)
	}
	if res.Sent != 50 || res.OK != 50 || res.LastSeq != 49 {
		t.Fatalf("%+v", res)
	}
	if res.SendSeconds < 0.45 || res.Rate > 115 {
		t.Fatalf("sent over %.3fs at %.0f/s", res.SendSeconds, res.Rate)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seqs) != 50 {
		t.Fatalf("server saw %d seqs", len(rec.seqs))
	}
}

// runMainProcess starts the coapload command (this test binary as main).
func runMainProcess(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "COAPLOAD_RUN_MAIN=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &out
}

// TestAckedFileCompleteOnSignal runs the command and stops it with SIGTERM
// or SIGINT in the middle of the run: it still prints its summary, and the
// -acked file lists every 2.xx response of the summary.
func TestAckedFileCompleteOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			addr := freeUDPAddr(t)
			a := newAnswered()
			serveAt(t, addr, a, func(int64) codes.Code { return codes.Created })
			file := filepath.Join(t.TempDir(), "acked")
			cmd, out := runMainProcess(t, "-url", "coap://"+addr, "-clients", "4", "-rate", "2000",
				"-duration", "60s", "-acked", file, "-json")
			// wait until the first flush shows up, then stop it
			deadline := time.Now().Add(10 * time.Second)
			for {
				if st, err := os.Stat(file); err == nil && st.Size() > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no acked seq flushed within 10s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("coapload: %v", err)
			}
			var res Result
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if res.Sent == 0 || res.OK == 0 || res.Sent > 20_000 { // stopped well before -duration
				t.Fatalf("%+v", res)
			}
			checkAcked(t, readAcked(t, file), &res, a)
		})
	}
}
