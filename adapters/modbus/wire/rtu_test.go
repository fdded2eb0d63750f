package wire

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRTUTiming(t *testing.T) {
	for _, tc := range []struct {
		o        RTUOptions
		charTime time.Duration
		t35      time.Duration
	}{
		{RTUOptions{Baud: 9600, DataBits: 8, StopBits: 1, Parity: 'N'}, 1041666 * time.Nanosecond, 3645833 * time.Nanosecond},
		{RTUOptions{Baud: 9600, DataBits: 8, StopBits: 1, Parity: 'E'}, 1145833 * time.Nanosecond, 4010416 * time.Nanosecond},
		{RTUOptions{Baud: 19200, DataBits: 8, StopBits: 2, Parity: 'N'}, 572916 * time.Nanosecond, 2005208 * time.Nanosecond},
		{RTUOptions{Baud: 115200, DataBits: 8, StopBits: 1, Parity: 'N'}, 86805 * time.Nanosecond, 1750 * time.Microsecond},
		{RTUOptions{}, 1041666 * time.Nanosecond, 3645833 * time.Nanosecond}, // 9600 8N1
	} {
		tr := NewRTU(nil, tc.o).(*rtuTransport)
		if tr.charTime != tc.charTime || tr.t35 != tc.t35 {
			t.Errorf("%+v: char %v t3.5 %v, want %v %v", tc.o, tr.charTime, tr.t35, tc.charTime, tc.t35)
		}
	}
}

func TestRTURead(t *testing.T) {
	b := startRTU(t, okRTU)
	ctx := context.Background()
	resp, err := b.tr.Do(ctx, readHolding(1, 100, 10), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 100, 10)
	resp, err = b.tr.Do(ctx, readHolding(1, 0, 125), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 0, 125)
	resp, err = b.tr.Do(ctx, Request{Unit: 2, Function: FuncReadDiscreteInputs, Address: 3, Count: 4}, time.Second)
	if err != nil || !slices.Equal(resp.Bits, []bool{true, false, false, true}) {
		t.Fatalf("discrete: %v, %v", resp, err)
	}
	for _, req := range []Request{
		{Unit: 1, Function: FuncWriteSingleCoil, Address: 3, Bits: []bool{true}},
		{Unit: 1, Function: FuncWriteSingleRegister, Address: 3, Values: []uint16{42}},
		{Unit: 1, Function: FuncWriteMultipleCoils, Address: 3, Bits: []bool{true, false, true}},
		{Unit: 1, Function: FuncWriteMultipleRegisters, Address: 3, Values: []uint16{1, 2, 3}},
	} {
		if _, err := b.tr.Do(ctx, req, time.Second); err != nil {
			t.Fatalf("%v: %v", req, err)
		}
	}
	st := b.tr.Stats()
	if st.Requests != 7 || st.Responses != 7 || st.Discarded != 0 || st.BytesIn == 0 || st.BytesOut == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUException(t *testing.T) {
	b := startRTU(t, okRTU)
	_, err := b.tr.Do(context.Background(), readHolding(1, 1000, 1), time.Second)
	var exc *ExceptionError
	if !errors.As(err, &exc) || exc.Code != 2 {
		t.Fatalf("err = %v, want exception 2", err)
	}
	if st := b.tr.Stats(); st.Exceptions != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUTimeout(t *testing.T) {
	b := startRTU(t, func(io.Writer, int, []byte) {})
	start := time.Now()
	_, err := b.tr.Do(context.Background(), readHolding(1, 0, 1), 80*time.Millisecond)
	wantErr(t, err, ErrTimeout)
	if el := time.Since(start); el < 80*time.Millisecond || el > 500*time.Millisecond {
		t.Fatalf("timed out after %v", el)
	}
	if errors.Is(err, ErrMalformed) {
		t.Fatal("timeout with no byte is not a short frame")
	}
	if st := b.tr.Stats(); st.Timeouts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A reply arriving after its request timed out is drained before the next
// request and not taken as its answer.
func TestRTULateReplyDrained(t *testing.T) {
	lateSent := make(chan struct{})
	b := startRTU(t, func(w io.Writer, n int, frame []byte) {
		if n == 1 {
			time.Sleep(120 * time.Millisecond)
			w.Write(rtuAnswer(frame))
			close(lateSent)
			return
		}
		w.Write(rtuAnswer(frame))
	})
	ctx := context.Background()
	_, err := b.tr.Do(ctx, readHolding(1, 0, 4), 60*time.Millisecond)
	wantErr(t, err, ErrTimeout)
	<-lateSent
	time.Sleep(30 * time.Millisecond) // let it cross socat
	// Same unit, function and count: only the drain tells them apart.
	resp, err := b.tr.Do(ctx, readHolding(1, 500, 4), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 500, 4)
	if st := b.tr.Stats(); st.Discarded != 5+8 || st.Timeouts != 1 || st.Responses != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A reply arriving after its request timed out, while the next request
// (same unit, function and count) would already be on its way, is held off
// by the late-reply window: the next request waits for it, discards it and
// gets its own answer.
func TestRTULateReplyAfterNextRequestWouldBeSent(t *testing.T) {
	b := startRTU(t, func(w io.Writer, n int, frame []byte) {
		if n == 1 {
			time.Sleep(100 * time.Millisecond) // 40 ms after the timeout
		}
		w.Write(rtuAnswer(frame))
	})
	ctx := context.Background()
	_, err := b.tr.Do(ctx, readHolding(1, 0, 4), 60*time.Millisecond)
	wantErr(t, err, ErrTimeout)
	resp, err := b.tr.Do(ctx, readHolding(1, 500, 4), time.Second) // at once
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 500, 4)
	if st := b.tr.Stats(); st.Discarded != 5+8 {
		t.Fatalf("the late reply was not discarded: stats %+v", st)
	}
}

// A retry of the timed-out request does not wait for the late-reply
// window: the late answer to the first attempt is a valid answer to it.
func TestRTURetryDoesNotWaitLateWindow(t *testing.T) {
	b := startRTU(t, func(w io.Writer, n int, frame []byte) {
		if n == 1 {
			return // the first attempt is lost
		}
		w.Write(rtuAnswer(frame))
	})
	ctx := context.Background()
	_, err := b.tr.Do(ctx, readHolding(1, 7, 2), 200*time.Millisecond)
	wantErr(t, err, ErrTimeout)
	start := time.Now()
	resp, err := b.tr.Do(ctx, readHolding(1, 7, 2), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 7, 2)
	if el := time.Since(start); el > 150*time.Millisecond {
		t.Fatalf("the retry waited %v (the late-reply window is 200ms)", el)
	}
}

// A late reply of another function that arrives after the next request was
// sent is skipped (it cannot be its answer).
func TestRTULateReplyOtherFunctionSkipped(t *testing.T) {
	b := startRTU(t, func(w io.Writer, n int, frame []byte) {
		if n == 2 {
			w.Write(mustRTU(1, 4, 2, 0x12, 0x34)) // late answer to a read input
		}
		w.Write(rtuAnswer(frame))
	})
	ctx := context.Background()
	if _, err := b.tr.Do(ctx, readHolding(1, 0, 1), time.Second); err != nil {
		t.Fatal(err)
	}
	resp, err := b.tr.Do(ctx, readHolding(1, 9, 1), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 9, 1)
	if st := b.tr.Stats(); st.Discarded != 7 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUBadCRC(t *testing.T) {
	b := startRTU(t, func(w io.Writer, n int, frame []byte) {
		out := rtuAnswer(frame)
		if n == 1 {
			out[len(out)-1] ^= 0x5A
		}
		w.Write(out)
	})
	ctx := context.Background()
	_, err := b.tr.Do(ctx, readHolding(1, 0, 3), time.Second)
	wantErr(t, err, ErrCRC)
	if !strings.Contains(err.Error(), "crc error") {
		t.Fatalf("err = %q", err)
	}
	resp, err := b.tr.Do(ctx, readHolding(1, 3, 3), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 3, 3)
	if st := b.tr.Stats(); st.CRCErrors != 1 || st.Responses != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUOtherUnitIgnored(t *testing.T) {
	b := startRTU(t, func(w io.Writer, n int, frame []byte) {
		other := slices.Clone(frame)
		other[0] = 9
		w.Write(rtuAnswer(other)) // a complete, valid frame of unit 9
		w.Write(rtuAnswer(frame))
	})
	resp, err := b.tr.Do(context.Background(), readHolding(1, 20, 2), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 20, 2)
	if st := b.tr.Stats(); st.Discarded != 9 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUGarbageDrained(t *testing.T) {
	b := startRTU(t, okRTU)
	garbage := []byte{0x01, 0x03, 0x04, 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0xFF, 0x55}
	if _, err := b.peer.Write(garbage); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	resp, err := b.tr.Do(context.Background(), readHolding(1, 42, 3), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 42, 3)
	if st := b.tr.Stats(); st.Discarded != uint64(len(garbage)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUShortFrame(t *testing.T) {
	b := startRTU(t, func(w io.Writer, n int, frame []byte) {
		w.Write(rtuAnswer(frame)[:6])
	})
	_, err := b.tr.Do(context.Background(), readHolding(1, 0, 4), 80*time.Millisecond)
	wantErr(t, err, ErrShortFrame)
	wantErr(t, err, ErrMalformed)
	if !strings.Contains(err.Error(), "short frame") {
		t.Fatalf("err = %q", err)
	}
	if st := b.tr.Stats(); st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUContextCancel(t *testing.T) {
	b := startRTU(t, func(io.Writer, int, []byte) {})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.tr.Do(ctx, readHolding(1, 0, 1), 10*time.Second)
	wantErr(t, err, context.Canceled)
	if el := time.Since(start); el > 150*time.Millisecond {
		t.Fatalf("cancel honoured after %v", el)
	}
}

func TestRTUBroadcast(t *testing.T) {
	var got atomic.Int32
	b := startRTU(t, func(w io.Writer, n int, frame []byte) { got.Add(1) })
	ctx := context.Background()
	_, err := b.tr.Do(ctx, Request{Unit: 0, Function: FuncWriteSingleRegister, Address: 1, Values: []uint16{7}}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.tr.Do(ctx, readHolding(0, 0, 1), time.Second)
	wantErr(t, err, ErrInvalidRequest)
	deadline := time.Now().Add(time.Second)
	for got.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got.Load() != 1 {
		t.Fatal("broadcast not received")
	}
}

func TestRTUClose(t *testing.T) {
	b := startRTU(t, func(io.Writer, int, []byte) {})
	time.AfterFunc(30*time.Millisecond, func() { b.tr.Close() })
	start := time.Now()
	_, err := b.tr.Do(context.Background(), readHolding(1, 0, 1), 10*time.Second)
	if err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Close took effect after %v", el)
	}
	_, err = b.tr.Do(context.Background(), readHolding(1, 0, 1), time.Second)
	wantErr(t, err, net.ErrClosed)
}

// ---- RTU over TCP ----

// startRTUServer serves RTU frames over TCP with h.
func startRTUServer(t testing.TB, h rtuHandler) *fakeServer {
	return startServer(t, func(s *fakeServer, c net.Conn) { serveRTU(c, h, s.next) })
}

func TestRTUOverTCP(t *testing.T) {
	srv := startRTUServer(t, okRTU)
	tr := NewRTUOverTCP(srv.addr(), TCPOptions{})
	defer tr.Close()
	ctx := context.Background()
	resp, err := tr.Do(ctx, readHolding(1, 100, 10), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 100, 10)
	_, err = tr.Do(ctx, readHolding(1, 1000, 1), time.Second)
	var exc *ExceptionError
	if !errors.As(err, &exc) || exc.Code != 2 {
		t.Fatalf("err = %v, want exception 2", err)
	}
	if _, err := tr.Do(ctx, Request{Unit: 1, Function: FuncWriteMultipleRegisters, Address: 3, Values: []uint16{1, 2}}, time.Second); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Requests != 3 || st.Responses != 3 || st.Exceptions != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRTUOverTCPLateAndForeign(t *testing.T) {
	lateSent := make(chan struct{})
	srv := startRTUServer(t, func(w io.Writer, n int, frame []byte) {
		switch n {
		case 1:
			time.Sleep(100 * time.Millisecond)
			w.Write(rtuAnswer(frame))
			close(lateSent)
		case 2:
			other := slices.Clone(frame)
			other[0] = 7
			w.Write(rtuAnswer(other))
			w.Write(rtuAnswer(frame))
		default:
			out := rtuAnswer(frame)
			out[3] ^= 1
			w.Write(out)
		}
	})
	tr := NewRTUOverTCP(srv.addr(), TCPOptions{})
	defer tr.Close()
	ctx := context.Background()
	_, err := tr.Do(ctx, readHolding(1, 0, 2), 50*time.Millisecond)
	wantErr(t, err, ErrTimeout)
	<-lateSent
	time.Sleep(20 * time.Millisecond)
	resp, err := tr.Do(ctx, readHolding(1, 50, 2), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 50, 2)
	if st := tr.Stats(); st.Discarded != 2*9 {
		t.Fatalf("stats %+v", st)
	}
	_, err = tr.Do(ctx, readHolding(1, 0, 2), time.Second)
	wantErr(t, err, ErrCRC)
}

func TestRTUOverTCPReconnect(t *testing.T) {
	var closeNext atomic.Bool
	var srv *fakeServer
	srv = startRTUServer(t, func(w io.Writer, n int, frame []byte) {
		w.Write(rtuAnswer(frame))
		if closeNext.Swap(false) {
			srv.closeConns()
		}
	})
	tr := NewRTUOverTCP(srv.addr(), TCPOptions{})
	defer tr.Close()
	ctx := context.Background()
	closeNext.Store(true)
	if _, err := tr.Do(ctx, readHolding(1, 0, 1), time.Second); err != nil {
		t.Fatal(err)
	}
	// The drain before the next request sees the EOF, or the request's
	// read does: either way a connection error, then a redial.
	_, err := tr.Do(ctx, readHolding(1, 0, 1), time.Second)
	if err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want a connection error", err)
	}
	resp, err := tr.Do(ctx, readHolding(1, 8, 1), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkHolding(t, resp, 8, 1)
	if st := tr.Stats(); st.Reconnects != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkRTUOverTCPRead125 is one 125-register read round trip of RTU
// frames over loopback TCP (drain included).
func BenchmarkRTUOverTCPRead125(b *testing.B) {
	srv := startRTUServer(b, okRTU)
	tr := NewRTUOverTCP(srv.addr(), TCPOptions{})
	defer tr.Close()
	ctx := context.Background()
	req := readHolding(1, 0, 125)
	if _, err := tr.Do(ctx, req, time.Second); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.Do(ctx, req, time.Second)
		if err != nil || len(resp.Registers) != 125 {
			b.Fatal(err)
		}
	}
}
