package modbustest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain fails the package when a server or socat outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	out, err := exec.Command("pgrep", "-a", "-P", strconv.Itoa(os.Getpid())).Output()
	var left []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "modbus-testserver") || strings.Contains(l, "socat") {
			left = append(left, l)
		}
	}
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) { // 1: no process
		fmt.Fprintf(os.Stderr, "pgrep: %v\n", err)
		code = 1
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "processes left running:\n%s\n", strings.Join(left, "\n"))
		code = 1
	}
	os.Exit(code)
}

// replyTimeout bounds every wait for something that must come; generous,
// since a loaded machine (make test runs packages side by side) can stall
// socat or the server for a while. Waits for what must not come are short.
const replyTimeout = 5 * time.Second

const initContents = `# unit 1
1 coil 0 1 0 1 1
1 discrete 10 0 1 1
1 holding 100 0x1234 42 65535   # three registers
1 input 200 7 8
# unit 2
2 coil 0 0 1
2 discrete 10 1
2 holding 100 0xBEEF
2 input 200 9
`

// ---- raw Modbus PDUs -------------------------------------------------------

func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func rtuFrame(unit byte, pdu []byte) []byte {
	f := append([]byte{unit}, pdu...)
	return binary.LittleEndian.AppendUint16(f, crc16(f))
}

func readPDU(fc byte, addr, count uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16([]byte{fc}, addr), count)
}

func writeRegsPDU(addr uint16, vals ...uint16) []byte {
	p := readPDU(16, addr, uint16(len(vals)))
	p = append(p, byte(2*len(vals)))
	for _, v := range vals {
		p = binary.BigEndian.AppendUint16(p, v)
	}
	return p
}

func writeCoilsPDU(addr uint16, bits ...bool) []byte {
	p := readPDU(15, addr, uint16(len(bits)))
	packed := make([]byte, (len(bits)+7)/8)
	for i, b := range bits {
		if b {
			packed[i/8] |= 1 << (i % 8)
		}
	}
	p = append(p, byte(len(packed)))
	return append(p, packed...)
}

// values decodes a read reply (FC 1-4) of n values.
func values(t testing.TB, fc byte, pdu []byte, n int) []uint16 {
	t.Helper()
	if len(pdu) < 2 || pdu[0] != fc {
		t.Fatalf("reply % x to fc %d", pdu, fc)
	}
	out := make([]uint16, n)
	data := pdu[2:]
	if fc <= 2 {
		if int(pdu[1]) != (n+7)/8 || len(data) != int(pdu[1]) {
			t.Fatalf("bit reply % x for %d bits", pdu, n)
		}
		for i := range out {
			out[i] = uint16(data[i/8] >> (i % 8) & 1)
		}
		return out
	}
	if int(pdu[1]) != 2*n || len(data) != 2*n {
		t.Fatalf("register reply % x for %d registers", pdu, n)
	}
	for i := range out {
		out[i] = binary.BigEndian.Uint16(data[2*i:])
	}
	return out
}

func wantValues(t testing.TB, what string, got []uint16, want ...uint16) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantException(t testing.TB, pdu []byte, fc, code byte) {
	t.Helper()
	if !bytes.Equal(pdu, []byte{fc | 0x80, code}) {
		t.Errorf("reply % x, want exception %d to fc %d", pdu, code, fc)
	}
}

// ---- a raw Modbus TCP client -----------------------------------------------

type tcpClient struct {
	t    testing.TB
	conn net.Conn
	tid  uint16
}

func dialTCP(t testing.TB, addr string) *tcpClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &tcpClient{t: t, conn: c}
}

func (c *tcpClient) send(unit byte, pdu []byte) uint16 {
	c.t.Helper()
	c.tid++
	adu := binary.BigEndian.AppendUint16(nil, c.tid)
	adu = append(adu, 0, 0)
	adu = binary.BigEndian.AppendUint16(adu, uint16(len(pdu)+1))
	adu = append(adu, unit)
	if _, err := c.conn.Write(append(adu, pdu...)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return c.tid
}

// recv reads one reply: its transaction id, unit and PDU.
func (c *tcpClient) recv(timeout time.Duration) (uint16, byte, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	h := make([]byte, 7)
	if _, err := io.ReadFull(c.conn, h); err != nil {
		return 0, 0, nil, err
	}
	if binary.BigEndian.Uint16(h[2:]) != 0 {
		return 0, 0, nil, fmt.Errorf("protocol id in % x", h)
	}
	pdu := make([]byte, int(binary.BigEndian.Uint16(h[4:]))-1)
	if _, err := io.ReadFull(c.conn, pdu); err != nil {
		return 0, 0, nil, err
	}
	return binary.BigEndian.Uint16(h), h[6], pdu, nil
}

func (c *tcpClient) do(unit byte, pdu []byte) []byte {
	c.t.Helper()
	tid := c.send(unit, pdu)
	gotTid, gotUnit, rsp, err := c.recv(replyTimeout)
	if err != nil {
		c.t.Fatalf("unit %d request % x: %v", unit, pdu, err)
	}
	if gotTid != tid || gotUnit != unit {
		c.t.Fatalf("reply tid %d unit %d, want %d %d", gotTid, gotUnit, tid, unit)
	}
	return rsp
}

// ---- a raw Modbus RTU client on the pty ------------------------------------

type rtuClient struct {
	t testing.TB
	f *os.File
}

func openRTU(t testing.TB, path string) *rtuClient {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return &rtuClient{t: t, f: f}
}

func (c *rtuClient) send(frame []byte) {
	c.t.Helper()
	if _, err := c.f.Write(frame); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv returns the bytes that arrive within timeout, once the line has been
// quiet for 30 ms; nil when nothing came.
func (c *rtuClient) recv(timeout time.Duration) []byte {
	var got []byte
	buf := make([]byte, 512)
	deadline := time.Now().Add(timeout)
	for {
		_ = c.f.SetReadDeadline(deadline)
		n, err := c.f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				c.t.Fatalf("read: %v", err)
			}
			return got
		}
		deadline = time.Now().Add(30 * time.Millisecond)
	}
}

// do sends a request and returns the reply's PDU after checking its address
// and CRC.
func (c *rtuClient) do(unit byte, pdu []byte) []byte {
	c.t.Helper()
	c.send(rtuFrame(unit, pdu))
	f := c.recv(replyTimeout)
	if len(f) < 4 {
		c.t.Fatalf("unit %d request % x: reply % x", unit, pdu, f)
	}
	if f[0] != unit {
		c.t.Fatalf("reply from unit %d, want %d: % x", f[0], unit, f)
	}
	if binary.LittleEndian.Uint16(f[len(f)-2:]) != crc16(f[:len(f)-2]) {
		c.t.Fatalf("reply with a bad CRC: % x", f)
	}
	return f[1 : len(f)-2]
}

func wantRequests(t testing.TB, s *Server, want ...Request) {
	t.Helper()
	got := s.WaitRequests(len(want), replyTimeout)
	if len(got) != len(want) {
		t.Fatalf("%d requests %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		g := got[i]
		g.Time = time.Time{}
		if g != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, g, want[i])
		}
	}
}

// wantCounters waits until the server's counters line is want.
func wantCounters(t testing.TB, s *Server, want string) {
	t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for {
		line, err := s.Control("counters")
		if err == nil && line == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("counters: %q %v, want %q", line, err, want)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReplies waits until n REP lines arrived and returns their statuses.
func waitReplies(t testing.TB, s *Server, n int) []string {
	t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for {
		reps := s.Replies()
		if len(reps) >= n || time.Now().After(deadline) {
			var st []string
			for _, r := range reps {
				st = append(st, fmt.Sprintf("%d/%d:%s", r.Unit, r.FC, r.Status))
			}
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---- TCP -------------------------------------------------------------------

func TestTCPReadsEveryTable(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Units: []int{1, 2}, Init: initContents})
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.URL() != "tcp://"+s.Addr() {
		t.Fatalf("Addr %q URL %q", s.Addr(), s.URL())
	}
	c := dialTCP(t, s.Addr())
	wantValues(t, "u1 coils", values(t, 1, c.do(1, readPDU(1, 0, 5)), 5), 1, 0, 1, 1, 0)
	wantValues(t, "u1 discrete", values(t, 2, c.do(1, readPDU(2, 10, 3)), 3), 0, 1, 1)
	wantValues(t, "u1 holding", values(t, 3, c.do(1, readPDU(3, 100, 4)), 4), 0x1234, 42, 65535, 0)
	wantValues(t, "u1 input", values(t, 4, c.do(1, readPDU(4, 200, 2)), 2), 7, 8)
	wantValues(t, "u2 coils", values(t, 1, c.do(2, readPDU(1, 0, 2)), 2), 0, 1)
	wantValues(t, "u2 discrete", values(t, 2, c.do(2, readPDU(2, 10, 1)), 1), 1)
	wantValues(t, "u2 holding", values(t, 3, c.do(2, readPDU(3, 100, 1)), 1), 0xBEEF)
	wantValues(t, "u2 input", values(t, 4, c.do(2, readPDU(4, 200, 1)), 1), 9)
	// The whole address space exists, up to 65535.
	wantValues(t, "u1 holding 65535", values(t, 3, c.do(1, readPDU(3, 65535, 1)), 1), 0)
	wantException(t, c.do(1, readPDU(3, 65535, 2)), 3, 2)
	wantException(t, c.do(1, readPDU(3, 0, 126)), 3, 3)
	wantException(t, c.do(1, []byte{0x2B, 0x0E, 1, 0}), 0x2B, 1)
	// A unit that is not served: the gateway's answer, exception 11.
	wantException(t, c.do(7, readPDU(3, 0, 1)), 3, 11)

	wantRequests(t, s,
		Request{Unit: 1, FC: 1, Addr: 0, Count: 5}, Request{Unit: 1, FC: 2, Addr: 10, Count: 3},
		Request{Unit: 1, FC: 3, Addr: 100, Count: 4}, Request{Unit: 1, FC: 4, Addr: 200, Count: 2},
		Request{Unit: 2, FC: 1, Addr: 0, Count: 2}, Request{Unit: 2, FC: 2, Addr: 10, Count: 1},
		Request{Unit: 2, FC: 3, Addr: 100, Count: 1}, Request{Unit: 2, FC: 4, Addr: 200, Count: 1},
		Request{Unit: 1, FC: 3, Addr: 65535, Count: 1}, Request{Unit: 1, FC: 3, Addr: 65535, Count: 2},
		Request{Unit: 1, FC: 3, Addr: 0, Count: 126}, Request{Unit: 1, FC: 0x2B, Addr: 0, Count: 0},
		Request{Unit: 7, FC: 3, Addr: 0, Count: 1})
	st := waitReplies(t, s, 13)
	want := "[1/1:ok 1/2:ok 1/3:ok 1/4:ok 2/1:ok 2/2:ok 2/3:ok 2/4:ok 1/3:ok 1/3:exception=2 1/3:exception=3 1/43:exception=1 7/3:exception=11]"
	if fmt.Sprint(st) != want {
		t.Errorf("replies %v\nwant %s", st, want)
	}
	s.ResetRequests()
	if len(s.Requests()) != 0 || len(s.Replies()) != 0 {
		t.Errorf("ResetRequests left %v %v", s.Requests(), s.Replies())
	}
	c.do(1, readPDU(3, 0, 1))
	wantRequests(t, s, Request{Unit: 1, FC: 3, Addr: 0, Count: 1})
}

func TestTCPWritesLand(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Units: []int{1, 2}, Init: initContents})
	c := dialTCP(t, s.Addr())
	if rsp := c.do(1, readPDU(6, 300, 0xCAFE)); !bytes.Equal(rsp, readPDU(6, 300, 0xCAFE)) {
		t.Errorf("fc6 echo % x", rsp)
	}
	if rsp := c.do(1, writeRegsPDU(301, 1, 2, 3)); !bytes.Equal(rsp, readPDU(16, 301, 3)) {
		t.Errorf("fc16 reply % x", rsp)
	}
	if rsp := c.do(2, readPDU(5, 40, 0xFF00)); !bytes.Equal(rsp, readPDU(5, 40, 0xFF00)) {
		t.Errorf("fc5 echo % x", rsp)
	}
	if rsp := c.do(2, writeCoilsPDU(50, true, false, true, true, false, false, false, false, true)); !bytes.Equal(rsp, readPDU(15, 50, 9)) {
		t.Errorf("fc15 reply % x", rsp)
	}
	// FC5 takes only 0x0000 and 0xFF00.
	wantException(t, c.do(2, readPDU(5, 41, 0x1234)), 5, 3)

	get := func(unit int, table string, addr, n int) []uint16 {
		v, err := s.Get(unit, table, addr, n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	wantValues(t, "u1 holding 300..303", get(1, "holding", 300, 4), 0xCAFE, 1, 2, 3)
	wantValues(t, "u2 coils 40..41", get(2, "coil", 40, 2), 1, 0)
	wantValues(t, "u2 coils 50..58", get(2, "coil", 50, 9), 1, 0, 1, 1, 0, 0, 0, 0, 1)
	wantValues(t, "u2 holding 300", get(2, "holding", 300, 1), 0) // units are separate
	// set, then read back over Modbus.
	if err := s.Set(1, "input", 500, 11, 0x22); err != nil {
		t.Fatal(err)
	}
	wantValues(t, "u1 input 500", values(t, 4, c.do(1, readPDU(4, 500, 2)), 2), 11, 0x22)
	if _, err := s.Control("set 1 discrete 7 1 1"); err != nil {
		t.Fatal(err)
	}
	wantValues(t, "u1 discrete 7", values(t, 2, c.do(1, readPDU(2, 6, 3)), 3), 0, 1, 1)
}

func TestTCPHoles(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Init: "1 holding 20 5 6\n", Holes: []string{"1:holding:20-21", "1:coil:7"}})
	c := dialTCP(t, s.Addr())
	wantException(t, c.do(1, readPDU(3, 18, 3)), 3, 2) // touches 20
	wantException(t, c.do(1, readPDU(3, 21, 1)), 3, 2)
	wantValues(t, "holding 22", values(t, 3, c.do(1, readPDU(3, 22, 2)), 2), 0, 0)
	wantValues(t, "holding 10..19", values(t, 3, c.do(1, readPDU(3, 10, 10)), 10), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	wantException(t, c.do(1, readPDU(6, 20, 99)), 6, 2)
	wantException(t, c.do(1, writeRegsPDU(19, 1, 2)), 16, 2)
	wantException(t, c.do(1, readPDU(1, 0, 8)), 1, 2)
	wantException(t, c.do(1, readPDU(5, 7, 0xFF00)), 5, 2)
	wantValues(t, "input 20 (no hole there)", values(t, 4, c.do(1, readPDU(4, 20, 1)), 1), 0)
	// FC 22 (mask write) and FC 23 (write and read) are checked on both ranges.
	wantException(t, c.do(1, []byte{22, 0, 21, 0xFF, 0xFF, 0, 0}), 22, 2)
	wantException(t, c.do(1, []byte{23, 0, 0, 0, 2, 0, 20, 0, 1, 2, 0, 9}), 23, 2)
	wantException(t, c.do(1, []byte{23, 0, 20, 0, 2, 0, 0, 0, 1, 2, 0, 9}), 23, 2)
	if rsp := c.do(1, []byte{23, 0, 0, 0, 2, 0, 30, 0, 1, 2, 0, 9}); !bytes.Equal(rsp, []byte{23, 4, 0, 0, 0, 0}) {
		t.Errorf("fc23 reply % x", rsp)
	}
	if rsp := c.do(1, []byte{22, 0, 30, 0xFF, 0xF0, 0, 3}); !bytes.Equal(rsp, []byte{22, 0, 30, 0xFF, 0xF0, 0, 3}) {
		t.Errorf("fc22 reply % x", rsp)
	}
	// FC 7, which libmodbus does not implement: illegal function.
	wantException(t, c.do(1, []byte{7}), 7, 1)
	if v, err := s.Get(1, "holding", 30, 1); err != nil || v[0] != 3 { // (9 & 0xFFF0) | (3 & 0x000F)
		t.Errorf("fc22/23 writes: %v %v", v, err)
	}
	if v, err := s.Get(1, "holding", 19, 3); err != nil || fmt.Sprint(v) != "[0 5 6]" {
		t.Errorf("writes into a hole landed: %v %v", v, err)
	}
	// Holes can change at run time.
	if _, err := s.Control("unhole 1 holding 20-21"); err != nil {
		t.Fatal(err)
	}
	wantValues(t, "holding 20 unholed", values(t, 3, c.do(1, readPDU(3, 20, 2)), 2), 5, 6)
	if _, err := s.Control("hole 1 input 3"); err != nil {
		t.Fatal(err)
	}
	wantException(t, c.do(1, readPDU(4, 0, 4)), 4, 2)
}

func TestTCPMuteDelayCorrupt(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Units: []int{1, 2}, Init: initContents})
	c := dialTCP(t, s.Addr())

	control := func(cmd string) {
		t.Helper()
		if line, err := s.Control(cmd); err != nil || !strings.HasPrefix(line, "OK") {
			t.Fatalf("%s: %q %v", cmd, line, err)
		}
	}
	control("mute 1")
	c.send(1, readPDU(3, 100, 1))
	waitReplies(t, s, 1) // the server has read it (and answered nothing)
	if _, _, rsp, err := c.recv(200 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("muted unit answered % x (%v)", rsp, err)
	}
	wantValues(t, "u2 while u1 muted", values(t, 3, c.do(2, readPDU(3, 100, 1)), 1), 0xBEEF)
	control("unmute 1")
	wantValues(t, "u1 unmuted", values(t, 3, c.do(1, readPDU(3, 100, 1)), 1), 0x1234)

	// A delayed unit holds only its own replies: another client is served
	// meanwhile (the order of the REP lines below shows it).
	control("delay 1 1000")
	start := time.Now()
	c.send(1, readPDU(3, 100, 1))
	c2 := dialTCP(t, s.Addr())
	wantValues(t, "u2 during u1's delay", values(t, 3, c2.do(2, readPDU(3, 100, 1)), 1), 0xBEEF)
	if _, _, rsp, err := c.recv(replyTimeout); err != nil || len(rsp) != 4 {
		t.Fatalf("delayed reply % x %v", rsp, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("delayed reply after %v, want >= 1s", d)
	}
	control("delay 1 0")

	// Corrupt over TCP: only the first half of the ADU comes.
	control("corrupt 1 1")
	c.send(1, readPDU(3, 100, 3)) // 15-byte ADU: 7 arrive
	_ = c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	got, err := io.ReadAll(c.conn)
	if !errors.Is(err, os.ErrDeadlineExceeded) || len(got) != 7 {
		t.Errorf("corrupted reply % x (%v), want the first 7 bytes of 15", got, err)
	}
	// The next reply is whole again (on a new connection: the old stream is out of step).
	c3 := dialTCP(t, s.Addr())
	wantValues(t, "after corrupt", values(t, 3, c3.do(1, readPDU(3, 100, 3)), 3), 0x1234, 42, 65535)

	st := waitReplies(t, s, 7)
	want := "[1/3:muted 2/3:ok 1/3:ok 2/3:ok 1/3:delayed=1000 1/3:corrupted 1/3:ok]"
	if fmt.Sprint(st) != want {
		t.Errorf("replies %v\nwant %s", st, want)
	}
}

func TestTCPRestartAndManyClients(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Init: "1 holding 0 77\n"})
	addr := s.Addr()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		c := dialTCP(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				tid := c.send(1, readPDU(3, 0, 1))
				gotTid, _, rsp, err := c.recv(replyTimeout)
				if err != nil || gotTid != tid || !bytes.Equal(rsp, []byte{3, 2, 0, 77}) {
					t.Errorf("client: tid %d/%d % x %v", gotTid, tid, rsp, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(s.WaitRequests(40, replyTimeout)); n != 40 {
		t.Errorf("%d requests, want 40", n)
	}
	c := dialTCP(t, addr)
	c.do(1, readPDU(6, 0, 78))
	s.Restart(t)
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, was %s", s.Addr(), addr)
	}
	// The old connection is gone; a new one sees the initial contents again.
	c.send(1, readPDU(3, 0, 1))
	if _, _, rsp, err := c.recv(time.Second); err == nil {
		t.Errorf("old connection still answered % x", rsp)
	}
	c2 := dialTCP(t, addr)
	wantValues(t, "after restart", values(t, 3, c2.do(1, readPDU(3, 0, 1)), 1), 77)
	// Stop, then Restart brings it back too.
	s.Stop()
	if _, err := s.Control("counters"); err == nil {
		t.Error("Control worked on a stopped server")
	}
	s.Restart(t)
	wantValues(t, "after stop+restart", values(t, 3, dialTCP(t, addr).do(1, readPDU(3, 0, 1)), 1), 77)
}

// ---- RTU -------------------------------------------------------------------

func TestRTUTwoUnitsOnOneLine(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{RTU: true, Units: []int{1, 2}, Init: initContents, Holes: []string{"2:holding:5"}})
	if s.URL() != "rtu://"+s.DevicePath() || !strings.HasPrefix(s.URL(), "rtu:///") {
		t.Fatalf("URL %q DevicePath %q", s.URL(), s.DevicePath())
	}
	c := openRTU(t, s.DevicePath())
	for i := 0; i < 3; i++ {
		wantValues(t, "u1 holding", values(t, 3, c.do(1, readPDU(3, 100, 3)), 3), 0x1234, 42, 65535)
		wantValues(t, "u2 holding", values(t, 3, c.do(2, readPDU(3, 100, 1)), 1), 0xBEEF)
	}
	wantValues(t, "u1 coils", values(t, 1, c.do(1, readPDU(1, 0, 4)), 4), 1, 0, 1, 1)
	wantValues(t, "u2 coils", values(t, 1, c.do(2, readPDU(1, 0, 2)), 2), 0, 1)
	wantValues(t, "u1 discrete", values(t, 2, c.do(1, readPDU(2, 10, 3)), 3), 0, 1, 1)
	wantValues(t, "u2 discrete", values(t, 2, c.do(2, readPDU(2, 10, 1)), 1), 1)
	wantValues(t, "u1 input", values(t, 4, c.do(1, readPDU(4, 200, 2)), 2), 7, 8)
	wantValues(t, "u2 input", values(t, 4, c.do(2, readPDU(4, 200, 1)), 1), 9)

	// Writes land in their unit only.
	if rsp := c.do(2, writeRegsPDU(5, 9)); !bytes.Equal(rsp, []byte{0x90, 2}) {
		t.Errorf("write into unit 2's hole: % x", rsp)
	}
	if rsp := c.do(1, writeRegsPDU(5, 9, 10)); !bytes.Equal(rsp, readPDU(16, 5, 2)) {
		t.Errorf("fc16 reply % x", rsp)
	}
	c.do(2, readPDU(6, 6, 0xABCD))
	c.do(1, writeCoilsPDU(20, true, true))
	v1, _ := s.Get(1, "holding", 5, 2)
	v2, _ := s.Get(2, "holding", 5, 2)
	c1, _ := s.Get(1, "coil", 20, 2)
	if fmt.Sprint(v1, v2, c1) != "[9 10] [0 43981] [1 1]" {
		t.Errorf("after writes: u1 %v u2 %v u1 coils %v", v1, v2, c1)
	}

	// Each check of silence below first waits until the server has handled
	// the frame (REQ line or counters), so that a loaded machine cannot make
	// it pass or fail by accident.
	noAnswer := func(what string) {
		t.Helper()
		if f := c.recv(200 * time.Millisecond); f != nil {
			t.Errorf("%s answered % x", what, f)
		}
	}
	// A unit nobody serves gets no answer.
	c.send(rtuFrame(3, readPDU(3, 0, 1)))
	reqs := s.WaitRequests(17, replyTimeout)
	if len(reqs) != 17 || reqs[16] != (Request{Unit: 3, FC: 3, Addr: 0, Count: 1, Time: reqs[16].Time}) {
		t.Fatalf("%d requests, last %+v; want 17", len(reqs), reqs[len(reqs)-1])
	}
	noAnswer("unit 3")
	// A request with a bad CRC is no request.
	bad := rtuFrame(1, readPDU(3, 0, 1))
	bad[len(bad)-1] ^= 0xFF
	c.send(bad)
	wantCounters(t, s, "OK requests=17 replies=16 bad=1")
	noAnswer("a request with a bad CRC")
	// A request cut by a gap longer than the 3.5-character silence is two bad
	// frames. (The opposite, two pieces within 3.6 ms making one frame, holds
	// too but cannot be tested reliably on a loaded machine.)
	f := rtuFrame(2, readPDU(3, 100, 1))
	c.send(f[:3])
	wantCounters(t, s, "OK requests=17 replies=16 bad=2")
	c.send(f[3:])
	wantCounters(t, s, "OK requests=17 replies=16 bad=3")
	noAnswer("a request cut by a silence")
	// Broadcast (unit 0): every unit writes, nobody answers.
	c.send(rtuFrame(0, readPDU(6, 1000, 4242)))
	if reqs := s.WaitRequests(18, replyTimeout); len(reqs) != 18 || reqs[17].Unit != 0 {
		t.Fatalf("no broadcast request in %v", reqs)
	}
	noAnswer("broadcast")
	for _, u := range []int{1, 2} {
		if v, err := s.Get(u, "holding", 1000, 1); err != nil || v[0] != 4242 {
			t.Errorf("broadcast write on unit %d: %v %v", u, v, err)
		}
	}
}

func TestRTUMuteDelayCorrupt(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{RTU: true, Baud: 19200, Parity: "E", Units: []int{1, 2}, Init: initContents})
	c := openRTU(t, s.DevicePath())
	control := func(cmd string) {
		t.Helper()
		if _, err := s.Control(cmd); err != nil {
			t.Fatal(err)
		}
	}
	control("mute 2")
	c.send(rtuFrame(2, readPDU(3, 100, 1)))
	waitReplies(t, s, 1) // the server has read it (and answered nothing)
	if f := c.recv(200 * time.Millisecond); f != nil {
		t.Errorf("muted unit 2 answered % x", f)
	}
	wantValues(t, "u1 while u2 muted", values(t, 3, c.do(1, readPDU(3, 100, 1)), 1), 0x1234)
	control("unmute 2")
	wantValues(t, "u2 unmuted", values(t, 3, c.do(2, readPDU(3, 100, 1)), 1), 0xBEEF)

	control("corrupt 1 2")
	for i := 0; i < 2; i++ {
		c.send(rtuFrame(1, readPDU(3, 100, 1)))
		f := c.recv(replyTimeout)
		if len(f) != 7 || f[0] != 1 || binary.LittleEndian.Uint16(f[5:]) == crc16(f[:5]) {
			t.Errorf("corrupted reply %d: % x, want 7 bytes with a bad CRC", i, f)
		}
	}
	wantValues(t, "u1 after 2 corrupt", values(t, 3, c.do(1, readPDU(3, 100, 1)), 1), 0x1234)

	control("delay 1 250")
	start := time.Now()
	wantValues(t, "u1 delayed", values(t, 3, c.do(1, readPDU(3, 100, 1)), 1), 0x1234)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("delayed reply after %v, want >= 250ms", d)
	}
	control("delay 1 0")
	// Without delay the reply still waits for the 3.5-character silence
	// (2.0 ms at 19200 8E1) after the request.
	start = time.Now()
	c.do(1, readPDU(3, 100, 1))
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Errorf("reply after %v, before the 3.5-character silence", d)
	}
	st := waitReplies(t, s, 8)
	want := "[2/3:muted 1/3:ok 2/3:ok 1/3:corrupted 1/3:corrupted 1/3:ok 1/3:delayed=250 1/3:ok]"
	if fmt.Sprint(st) != want {
		t.Errorf("replies %v\nwant %s", st, want)
	}
}

// ---- control protocol and process handling ---------------------------------

func TestControlErrors(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	for _, cmd := range []string{
		"frobnicate", "mute 9", "mute x", "delay 1", "delay 1 -5", "corrupt 1 x",
		"set 1 holding 0 65536", "set 1 coil 0 2", "set 1 bogus 0 1", "set 1 holding 65535 1 2",
		"get 1 holding 65535 2", "get 1 holding 0 0", "hole 1 holding 5-3",
	} {
		line, err := s.Control(cmd)
		if err == nil || !strings.HasPrefix(line, "ERR ") {
			t.Errorf("%q: %q %v, want an ERR", cmd, line, err)
		}
	}
	if line, err := s.Control("set 1 holding 0 0x10 20"); err != nil || line != "OK set 2" {
		t.Errorf("set: %q %v", line, err)
	}
	if v, err := s.Get(1, "holding", 0, 3); err != nil || fmt.Sprint(v) != "[16 20 0]" {
		t.Errorf("get: %v %v", v, err)
	}
	// Concurrent callers each get their own answer.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.Get(1, "holding", i%2, 1)
			want := []uint16{16, 20}[i%2]
			if err != nil || len(v) != 1 || v[0] != want {
				t.Errorf("concurrent get %d: %v %v", i, v, err)
			}
		}()
	}
	wg.Wait()
	if line, err := s.Control("reset-counters"); err != nil || line != "OK reset-counters" {
		t.Errorf("reset-counters: %q %v", line, err)
	}
	if line, err := s.Control("quit"); err != nil || line != "OK quit" {
		t.Errorf("quit: %q %v", line, err)
	}
}

func TestBadStartFails(t *testing.T) {
	t.Parallel()
	bin := Binary(t)
	dir := t.TempDir()
	bad := dir + "/init.txt"
	if err := os.WriteFile(bad, []byte("1 holding 0 1\n3 holding 0 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--tcp", "127.0.0.1:0", "--init", bad},
		{"--tcp", "127.0.0.1:0", "--holes", "1:holding:x"},
		{"--rtu", dir + "/nonexistent"},
		{"--rtu", dir + "/x", "--units", "0"},
		{},
	} {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || stderr.Len() == 0 || len(out) != 0 {
			t.Errorf("%v: exit %v, stdout %q, stderr %q; want exit 2 with a message", args, err, out, stderr.String())
		}
	}
}

func TestSignalAndEOFStop(t *testing.T) {
	t.Parallel()
	bin := Binary(t)
	for _, how := range []string{"SIGTERM", "SIGINT", "EOF"} {
		cmd := exec.Command(bin, "--tcp", "127.0.0.1:0")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, err := stdout.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "READY tcp 127.0.0.1:") {
			t.Fatalf("%q %v", buf[:n], err)
		}
		switch how {
		case "SIGTERM":
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case "SIGINT":
			_ = cmd.Process.Signal(syscall.SIGINT)
		default:
			stdin.Close()
		}
		done := make(chan error, 1)
		go func() { _, _ = io.Copy(io.Discard, stdout); done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: exit %v, want 0", how, err)
			}
		case <-time.After(replyTimeout):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s: still running after %v", how, replyTimeout)
		}
	}
}
