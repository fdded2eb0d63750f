package wire

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTCPClient(t testing.TB, addr string) Transport {
	tr := NewTCP(addr, TCPOptions{DialTimeout: time.Second})
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestTCPRead(t *testing.T) {
	srv := startMBAPServer(t, nil)
	tr := newTCPClient(t, srv.addr())
	ctx := context.Background()

	resp, err := tr.Do(ctx, readHolding(1, 100, 10), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 100, 10)

	resp, err = tr.Do(ctx, Request{Unit: 1, Function: FuncReadInputRegisters, Address: 7, Count: 2}, time.Second)
	if err != nil || !slices.Equal(resp.Registers, []uint16{inputValue(7), inputValue(8)}) {
		t.Fatalf("input: %v, %v", resp, err)
	}
	resp, err = tr.Do(ctx, Request{Unit: 1, Function: FuncReadCoils, Address: 2, Count: 5}, time.Second)
	if err != nil || !slices.Equal(resp.Bits, []bool{false, true, false, false, true}) {
		t.Fatalf("coils: %v, %v", resp, err)
	}
	for _, req := range []Request{
		{Unit: 1, Function: FuncWriteSingleCoil, Address: 3, Bits: []bool{true}},
		{Unit: 1, Function: FuncWriteSingleRegister, Address: 3, Values: []uint16{42}},
		{Unit: 1, Function: FuncWriteMultipleCoils, Address: 3, Bits: []bool{true, false, true}},
		{Unit: 1, Function: FuncWriteMultipleRegisters, Address: 3, Values: []uint16{1, 2, 3}},
	} {
		if _, err := tr.Do(ctx, req, time.Second); err != nil {
			t.Fatalf("%v: %v", req, err)
		}
	}
	st := tr.Stats()
	if st.Requests != 7 || st.Responses != 7 || st.Timeouts+st.Malformed+st.Exceptions+st.Discarded+st.Reconnects != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.BytesOut == 0 || st.BytesIn == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPException(t *testing.T) {
	srv := startMBAPServer(t, nil)
	tr := newTCPClient(t, srv.addr())
	_, err := tr.Do(context.Background(), readHolding(1, 1000, 2), time.Second)
	var exc *ExceptionError
	if !errors.As(err, &exc) || exc.Code != 2 || exc.Function != FuncReadHoldingRegisters {
		t.Fatalf("err = %v, want exception 2", err)
	}
	if !strings.Contains(err.Error(), "modbus exception 2 (illegal data address)") {
		t.Fatalf("err = %q", err)
	}
	if st := tr.Stats(); st.Exceptions != 1 || st.Responses != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPInvalidRequestNotSent(t *testing.T) {
	tr := NewTCP("127.0.0.1:1", TCPOptions{})
	defer tr.Close()
	_, err := tr.Do(context.Background(), readHolding(1, 0, 200), time.Second)
	wantErr(t, err, ErrInvalidRequest)
	if st := tr.Stats(); st.Requests != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A reply that arrives after its request timed out must not be taken as the
// answer to the next request.
func TestTCPLateReplyDiscarded(t *testing.T) {
	srv := startMBAPServer(t, func(c net.Conn, n int, tid uint16, unit byte, pdu []byte) {
		if n == 1 {
			time.Sleep(150 * time.Millisecond) // after the client's timeout
		}
		answerMBAP(c, tid, unit, pdu, make([]byte, 0, maxMBAPFrame))
	})
	tr := newTCPClient(t, srv.addr())
	ctx := context.Background()

	start := time.Now()
	_, err := tr.Do(ctx, readHolding(1, 0, 4), 50*time.Millisecond)
	wantErr(t, err, ErrTimeout)
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("timeout took %v", el)
	}
	if !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err = %q", err)
	}
	// The late reply to request 1 (registers 0..3) arrives before the reply
	// to request 2 (registers 500..503).
	resp, err := tr.Do(ctx, readHolding(1, 500, 4), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 500, 4)
	st := tr.Stats()
	if st.Discarded == 0 || st.Timeouts != 1 || st.Reconnects != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPWrongUnitDiscarded(t *testing.T) {
	srv := startMBAPServer(t, func(c net.Conn, n int, tid uint16, unit byte, pdu []byte) {
		buf := make([]byte, 0, maxMBAPFrame)
		answerMBAP(c, tid, unit+1, pdu, buf) // wrong unit first
		answerMBAP(c, tid, unit, pdu, buf)
	})
	tr := newTCPClient(t, srv.addr())
	resp, err := tr.Do(context.Background(), readHolding(3, 10, 2), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 10, 2)
	if st := tr.Stats(); st.Discarded != 7+2+4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPTimeoutKeepsConnection(t *testing.T) {
	srv := startMBAPServer(t, func(c net.Conn, n int, tid uint16, unit byte, pdu []byte) {
		if n == 1 {
			return // never answered
		}
		answerMBAP(c, tid, unit, pdu, make([]byte, 0, maxMBAPFrame))
	})
	tr := newTCPClient(t, srv.addr())
	_, err := tr.Do(context.Background(), readHolding(1, 0, 1), 30*time.Millisecond)
	wantErr(t, err, ErrTimeout)
	resp, err := tr.Do(context.Background(), readHolding(1, 0, 1), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 0, 1)
	if st := tr.Stats(); st.Reconnects != 0 || st.Timeouts != 1 {
		t.Fatalf("stats %+v", st)
	}
	srv.mu.Lock()
	conns := len(srv.conns)
	srv.mu.Unlock()
	if conns != 1 {
		t.Fatalf("%d connections, want 1", conns)
	}
}

func TestTCPReconnect(t *testing.T) {
	var closeNext atomic.Bool
	srv := startMBAPServer(t, func(c net.Conn, n int, tid uint16, unit byte, pdu []byte) {
		answerMBAP(c, tid, unit, pdu, make([]byte, 0, maxMBAPFrame))
		if closeNext.Swap(false) {
			c.Close()
		}
	})
	tr := newTCPClient(t, srv.addr())
	ctx := context.Background()
	closeNext.Store(true)
	if _, err := tr.Do(ctx, readHolding(1, 0, 1), time.Second); err != nil {
		t.Fatal(err)
	}
	// The server closed the connection after answering: the next Do fails
	// with a connection error (not a timeout)...
	_, err := tr.Do(ctx, readHolding(1, 0, 1), time.Second)
	if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want a connection error", err)
	}
	// ... and the one after redials.
	resp, err := tr.Do(ctx, readHolding(1, 5, 1), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 5, 1)
	if st := tr.Stats(); st.Reconnects != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr := newTCPClient(t, addr)
	_, err = tr.Do(context.Background(), readHolding(1, 0, 1), time.Second)
	if err == nil || !strings.Contains(err.Error(), "dial") {
		t.Fatalf("err = %v, want a dial error", err)
	}
}

func TestTCPDesyncClosesConnection(t *testing.T) {
	srv := startMBAPServer(t, func(c net.Conn, n int, tid uint16, unit byte, pdu []byte) {
		if n == 1 {
			c.Write([]byte{byte(tid >> 8), byte(tid), 0, 1, 0, 3, unit, 3, 0}) // protocol id 1
			return
		}
		answerMBAP(c, tid, unit, pdu, make([]byte, 0, maxMBAPFrame))
	})
	tr := newTCPClient(t, srv.addr())
	_, err := tr.Do(context.Background(), readHolding(1, 0, 1), time.Second)
	wantErr(t, err, ErrMalformed)
	if !strings.Contains(err.Error(), "desynchronized") {
		t.Fatalf("err = %v", err)
	}
	resp, err := tr.Do(context.Background(), readHolding(1, 0, 1), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 0, 1)
	if st := tr.Stats(); st.Reconnects != 1 || st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPShortFrame(t *testing.T) {
	srv := startMBAPServer(t, func(c net.Conn, n int, tid uint16, unit byte, pdu []byte) {
		// announces 1 + 2 + 4 bytes but sends 1 + 2 + 2
		c.Write([]byte{byte(tid >> 8), byte(tid), 0, 0, 0, 7, unit, 3, 4, 0, 1})
	})
	tr := newTCPClient(t, srv.addr())
	_, err := tr.Do(context.Background(), readHolding(1, 0, 2), 50*time.Millisecond)
	wantErr(t, err, ErrShortFrame)
	wantErr(t, err, ErrMalformed)
	if !strings.Contains(err.Error(), "short frame") {
		t.Fatalf("err = %q", err)
	}
}

func TestTCPMalformedResponse(t *testing.T) {
	srv := startMBAPServer(t, func(c net.Conn, n int, tid uint16, unit byte, pdu []byte) {
		c.Write(AppendMBAP(nil, tid, unit, []byte{3, 2, 0, 1})) // 1 register for 2
	})
	tr := newTCPClient(t, srv.addr())
	_, err := tr.Do(context.Background(), readHolding(1, 0, 2), time.Second)
	wantErr(t, err, ErrMalformed)
	if st := tr.Stats(); st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPContextCancel(t *testing.T) {
	srv := startMBAPServer(t, func(net.Conn, int, uint16, byte, []byte) {})
	tr := newTCPClient(t, srv.addr())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err := tr.Do(ctx, readHolding(1, 0, 1), 10*time.Second)
	wantErr(t, err, context.Canceled)
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Fatalf("cancel honoured after %v", el)
	}
}

func TestTCPCloseDuringDo(t *testing.T) {
	srv := startMBAPServer(t, func(net.Conn, int, uint16, byte, []byte) {})
	tr := NewTCP(srv.addr(), TCPOptions{})
	time.AfterFunc(30*time.Millisecond, func() { tr.Close() })
	start := time.Now()
	_, err := tr.Do(context.Background(), readHolding(1, 0, 1), 10*time.Second)
	if err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Close took effect after %v", el)
	}
	_, err = tr.Do(context.Background(), readHolding(1, 0, 1), time.Second)
	wantErr(t, err, net.ErrClosed)
}

// BenchmarkTCPRead125 is one 125-register read round trip over loopback.
func BenchmarkTCPRead125(b *testing.B) {
	srv := startMBAPServer(b, nil)
	tr := newTCPClient(b, srv.addr())
	ctx := context.Background()
	req := readHolding(1, 0, 125)
	if _, err := tr.Do(ctx, req, time.Second); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := tr.Do(ctx, req, time.Second)
		if err != nil || len(resp.Registers) != 125 {
			b.Fatal(err)
		}
	}
}
