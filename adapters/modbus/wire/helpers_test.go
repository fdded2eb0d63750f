package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/causeway/causeway/internal/serialport"
	"github.com/causeway/causeway/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The fake device: holding register a holds a, input register a holds
// a+0x4000, coil/discrete input a is on when a%3 == 0; addresses >= 1000
// answer exception 2 (illegal data address).
func holdingValue(addr int) uint16 { return uint16(addr) }
func inputValue(addr int) uint16   { return uint16(addr + 0x4000) }
func bitValue(addr int) bool       { return addr%3 == 0 }

// devicePDU appends the fake device's response to the request pdu to dst.
func devicePDU(dst, pdu []byte) []byte {
	if len(pdu) < 5 {
		if len(pdu) == 0 {
			return append(dst, 0x80, 3)
		}
		return append(dst, pdu[0]|0x80, 3)
	}
	fc := pdu[0]
	addr := int(pdu[1])<<8 | int(pdu[2])
	cnt := int(pdu[3])<<8 | int(pdu[4])
	if addr >= 1000 {
		return append(dst, fc|0x80, 2)
	}
	switch fc {
	case FuncReadCoils, FuncReadDiscreteInputs:
		bc := (cnt + 7) / 8
		dst = append(dst, fc, byte(bc))
		start := len(dst)
		dst = append(dst, make([]byte, bc)...)
		for i := range cnt {
			if bitValue(addr + i) {
				dst[start+i/8] |= 1 << (i % 8)
			}
		}
		return dst
	case FuncReadHoldingRegisters, FuncReadInputRegisters:
		dst = append(dst, fc, byte(2*cnt))
		for i := range cnt {
			v := holdingValue(addr + i)
			if fc == FuncReadInputRegisters {
				v = inputValue(addr + i)
			}
			dst = append(dst, byte(v>>8), byte(v))
		}
		return dst
	case FuncWriteSingleCoil, FuncWriteSingleRegister, FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		return append(dst, pdu[:5]...)
	}
	return append(dst, fc|0x80, 1)
}

// checkHolding checks resp as the fake device's answer to reading count
// holding registers at addr.
func checkHolding(t testing.TB, resp Response, addr, count int) {
	t.Helper()
	if len(resp.Registers) != count {
		t.Fatalf("got %d registers, want %d", len(resp.Registers), count)
	}
	for i, v := range resp.Registers {
		if v != holdingValue(addr+i) {
			t.Fatalf("register %d = %d, want %d", addr+i, v, holdingValue(addr+i))
		}
	}
}

// readHolding is the request for count holding registers at addr.
func readHolding(unit byte, addr, count int) Request {
	return Request{Unit: unit, Function: FuncReadHoldingRegisters, Address: uint16(addr), Count: uint16(count)}
}

// ---- Modbus TCP fake server ----

// mbapHandler answers one MBAP request; it runs on the connection's
// goroutine and writes whatever it likes (or nothing, or closes c).
type mbapHandler func(c net.Conn, n int, tid uint16, unit byte, pdu []byte)

// answerMBAP is the fake device's well-behaved answer.
func answerMBAP(c net.Conn, tid uint16, unit byte, pdu []byte, buf []byte) {
	buf = AppendMBAP(buf[:0], tid, unit, devicePDU(buf[mbapHeaderLen:mbapHeaderLen], pdu))
	c.Write(buf)
}

type fakeServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	count int // requests handled, all connections
}

// startMBAPServer starts a Modbus TCP server on loopback; h nil answers
// every request as the fake device.
func startMBAPServer(t testing.TB, h mbapHandler) *fakeServer {
	return startServer(t, func(s *fakeServer, c net.Conn) { s.serveMBAP(c, h) })
}

// startServer runs serve for every accepted connection until the test ends.
func startServer(t testing.TB, serve func(*fakeServer, net.Conn)) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(s, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.closeConns()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

// closeConns closes every accepted connection.
func (s *fakeServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// next numbers a request across connections.
func (s *fakeServer) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	return s.count
}

func (s *fakeServer) serveMBAP(c net.Conn, h mbapHandler) {
	hdr := make([]byte, mbapHeaderLen)
	pdu := make([]byte, maxPDU)
	out := make([]byte, 0, maxMBAPFrame)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		l := int(hdr[4])<<8 | int(hdr[5])
		if l < 2 || l > maxMBAPLength {
			return
		}
		if _, err := io.ReadFull(c, pdu[:l-1]); err != nil {
			return
		}
		tid := uint16(hdr[0])<<8 | uint16(hdr[1])
		n := s.next()
		if h == nil {
			answerMBAP(c, tid, hdr[6], pdu[:l-1], out)
			continue
		}
		h(c, n, tid, hdr[6], pdu[:l-1])
	}
}

// ---- RTU fake device ----

// rtuHandler answers the n-th (from 1) request frame; it writes to w
// whatever it likes.
type rtuHandler func(w io.Writer, n int, frame []byte)

// rtuAnswer is the fake device's well-behaved answer to the request frame.
func rtuAnswer(frame []byte) []byte {
	return AppendRTU(nil, frame[0], devicePDU(nil, frame[1:len(frame)-2]))
}

// rtuRequestLen returns the length of the RTU request frame starting b: 0
// if more bytes are needed, -1 if b[0] cannot start one.
func rtuRequestLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case 1, 2, 3, 4, 5, 6:
		return 8
	case 15, 16:
		if len(b) < 7 {
			return 0
		}
		return 9 + int(b[6])
	}
	return -1
}

// serveRTU reads request frames from rw and hands them to h until a read
// fails. n counts requests from 1.
func serveRTU(rw io.ReadWriter, h rtuHandler, counter func() int) {
	buf := make([]byte, 0, 1024)
	tmp := make([]byte, 512)
	for {
		k, err := rw.Read(tmp)
		buf = append(buf, tmp[:k]...)
		for {
			l := rtuRequestLen(buf)
			if l < 0 {
				buf = buf[:0]
				break
			}
			if l == 0 || len(buf) < l {
				break
			}
			frame := append([]byte(nil), buf[:l]...)
			buf = append(buf[:0], buf[l:]...)
			h(rw, counter(), frame)
		}
		if err != nil {
			return
		}
	}
}

// okRTU answers every request as the fake device.
func okRTU(w io.Writer, _ int, frame []byte) { w.Write(rtuAnswer(frame)) }

// ---- pty pair from socat ----

// rtuBench is an RTU transport on one end of a socat pty pair, and the fake
// device (driven by h) on the other end.
type rtuBench struct {
	tr   Transport
	peer *os.File // the device's end: write here to reach the transport
	mu   sync.Mutex
	n    int
}

// startRTU opens a pty pair, NewRTU on one end at 115200 baud and a fake
// device running h on the other.
func startRTU(t testing.TB, h rtuHandler) *rtuBench {
	t.Helper()
	pp := testpeer.StartPTYPair(t)
	port, err := serialport.Open(pp.A, 115200, 8, 'N', 1)
	if err != nil {
		t.Fatalf("serialport.Open: %v", err)
	}
	peer, err := os.OpenFile(pp.B, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		port.Close()
		t.Fatalf("open peer end: %v", err)
	}
	b := &rtuBench{tr: NewRTU(port, RTUOptions{Baud: 115200}), peer: peer}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveRTU(peer, h, b.next)
	}()
	t.Cleanup(func() {
		b.tr.Close()
		peer.Close()
		<-done
	})
	return b
}

func (b *rtuBench) next() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return b.n
}

// ---- misc ----

// wantErr fails unless errors.Is(err, target).
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

// mustRTU is AppendRTU into a fresh slice.
func mustRTU(unit byte, pdu ...byte) []byte { return AppendRTU(nil, unit, pdu) }
