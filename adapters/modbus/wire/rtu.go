package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// Port is a serial port as go.bug.st/serial gives it: Read returns (0, nil)
// when the read timeout expires (it is not EOF), and SetReadTimeout(0) makes
// Read return at once when nothing is pending.
type Port interface {
	io.ReadWriteCloser
	// SetReadTimeout sets how long one Read waits for a first byte.
	SetReadTimeout(t time.Duration) error
	// ResetInputBuffer discards the bytes received but not yet read.
	ResetInputBuffer() error
}

// RTUOptions describes the serial line of NewRTU, for its timing: the
// character time is (1 start + DataBits + parity bit + StopBits) / Baud.
type RTUOptions struct {
	Baud     int  // bits per second; 9600 when zero
	DataBits int  // 8 when zero
	StopBits int  // 1 when zero
	Parity   byte // 'N' (or 0), 'E' or 'O'
	// Log receives drains, discards and errors (nil discards).
	Log *slog.Logger
}

// Timing constants of the RTU transports.
const (
	// minT35 is the fixed inter-frame silence above 19200 baud.
	minT35 = 1750 * time.Microsecond
	// minConnPoll is the shortest read deadline on a TCP connection (a
	// deadline already in the past makes Read fail without reading).
	minConnPoll = 200 * time.Microsecond
)

// rtuLine is what the RTU logic needs from the medium: a serial Port or a
// TCP connection.
type rtuLine interface {
	// write writes p; timeout bounds it where the medium supports it.
	write(p []byte, timeout time.Duration) (int, error)
	// read reads into p waiting at most d for the first byte; (0, nil)
	// means nothing arrived in time. Any error is a connection error.
	read(p []byte, d time.Duration) (int, error)
	// flushInput discards what the medium buffered (best effort).
	flushInput() error
	// close closes the medium.
	close() error
}

// serialLine adapts a Port.
type serialLine struct {
	p   Port
	cur time.Duration // last read timeout set, -1 before the first
}

func (s *serialLine) write(p []byte, _ time.Duration) (int, error) { return s.p.Write(p) }

func (s *serialLine) read(p []byte, d time.Duration) (int, error) {
	d = max(d, 0) // 0 polls (Port's contract)
	if d != s.cur {
		if err := s.p.SetReadTimeout(d); err != nil {
			return 0, fmt.Errorf("set read timeout: %w", err)
		}
		s.cur = d
	}
	return s.p.Read(p)
}

func (s *serialLine) flushInput() error { return s.p.ResetInputBuffer() }
func (s *serialLine) close() error      { return s.p.Close() }

// connLine adapts a net.Conn carrying RTU frames.
type connLine struct{ c net.Conn }

func (l *connLine) write(p []byte, timeout time.Duration) (int, error) {
	if err := l.c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	return l.c.Write(p)
}

func (l *connLine) read(p []byte, d time.Duration) (int, error) {
	if err := l.c.SetReadDeadline(time.Now().Add(max(d, minConnPoll))); err != nil {
		return 0, err
	}
	n, err := l.c.Read(p)
	if err != nil && isTimeout(err) {
		err = nil
	}
	return n, err
}

func (l *connLine) flushInput() error { return nil }
func (l *connLine) close() error      { return l.c.Close() }

// rtuTransport implements the RTU protocol once over an rtuLine.
type rtuTransport struct {
	name string // for errors and logs, e.g. "modbus rtu"
	log  *slog.Logger
	st   counters

	// Serial: line is fixed and tcp is nil. RTU over TCP: line wraps the
	// current connection of tcp.
	tcp *tcpConn

	mu     sync.Mutex
	line   rtuLine // serial only
	closed bool
	cl     connLine // RTU over TCP: wraps the current connection (Do only)

	charTime time.Duration // one character on the wire (0 over TCP)
	t35      time.Duration // inter-frame silence
	lastAct  time.Time     // when the last byte was sent or received

	// After a request timed out, its reply may still come. RTU has no
	// transaction id: a late reply read after the next request was sent
	// would be taken as its answer. So the next request (unless it is the
	// same one again, whose answer would be identical) first listens until
	// lateUntil, or until a late reply has come and the line is silent.
	lateUntil time.Time
	lateReq   Request

	wbuf []byte
	rbuf [2 * maxRTUFrame]byte
}

// NewRTU returns a Modbus RTU transport on the serial port p, which it owns
// (Close closes p). o describes the line's settings, used for the timing:
// the inter-frame silence t3.5 is 3.5 character times, or 1750 µs above
// 19200 baud. Before each request the transport waits for t3.5 of silence
// and drains the input (late replies, noise; counted in Stats.Discarded).
// While awaiting the answer, CRC-valid frames of another unit or another
// function are skipped (also counted), a frame of the request's unit and
// function with a bad CRC is ErrCRC, and a frame still incomplete at the
// timeout is ErrShortFrame. A connection error (port closed, EIO) is
// returned as is: the port is not reopened.
func NewRTU(p Port, o RTUOptions) Transport {
	baud, data, stop := o.Baud, o.DataBits, o.StopBits
	if baud <= 0 {
		baud = 9600
	}
	if data <= 0 {
		data = 8
	}
	if stop <= 0 {
		stop = 1
	}
	bits := 1 + data + stop
	if o.Parity != 0 && o.Parity != 'N' && o.Parity != 'n' {
		bits++
	}
	t := &rtuTransport{
		name:     "modbus rtu",
		log:      logger(o.Log),
		line:     &serialLine{p: p, cur: -1},
		charTime: time.Duration(int64(bits) * int64(time.Second) / int64(baud)),
		wbuf:     make([]byte, 0, maxRTUFrame),
	}
	t.t35 = time.Duration(int64(bits) * 35 * int64(time.Second) / (10 * int64(baud)))
	if baud > 19200 {
		t.t35 = minT35
	}
	return t
}

// NewRTUOverTCP returns a transport that sends RTU frames (unit + PDU + CRC,
// no MBAP header) over a TCP stream to addr, as transparent serial-to-
// Ethernet converters expect. It dials lazily, drains pending bytes before
// each request, skips frames for another unit and redials after a
// connection error. The serial speed behind the converter is unknown, so
// no inter-frame delay is enforced.
func NewRTUOverTCP(addr string, o TCPOptions) Transport {
	t := &rtuTransport{
		name: "modbus rtu-over-tcp " + addr,
		log:  logger(o.Log),
		wbuf: make([]byte, 0, maxRTUFrame),
	}
	t.tcp = &tcpConn{addr: addr, dialTimeout: o.DialTimeout, log: t.log, st: &t.st}
	if t.tcp.dialTimeout <= 0 {
		t.tcp.dialTimeout = DefaultDialTimeout
	}
	return t
}

// Stats implements Transport.
func (t *rtuTransport) Stats() Stats { return t.st.snapshot() }

// Close implements Transport.
func (t *rtuTransport) Close() error {
	if t.tcp != nil {
		return t.tcp.close()
	}
	t.mu.Lock()
	already := t.closed
	t.closed = true
	t.mu.Unlock()
	if already {
		return nil
	}
	return t.line.close()
}

// fail wraps err with the transport's and the request's description.
func (t *rtuTransport) fail(req Request, err error) error {
	return fmt.Errorf("%s: %s: %w", t.name, req, err)
}

// getLine returns the line to use, dialling for RTU over TCP.
func (t *rtuTransport) getLine(ctx context.Context) (rtuLine, net.Conn, error) {
	if t.tcp == nil {
		t.mu.Lock()
		closed := t.closed
		t.mu.Unlock()
		if closed {
			return nil, nil, net.ErrClosed
		}
		return t.line, nil, nil
	}
	conn, _, err := t.tcp.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	t.cl.c = conn
	return &t.cl, conn, nil
}

// connErr handles a connection error: over TCP the connection is closed so
// that the next Do redials.
func (t *rtuTransport) connErr(conn net.Conn, err error) {
	if conn != nil {
		t.tcp.drop(conn, err)
	}
}

// Do implements Transport.
func (t *rtuTransport) Do(ctx context.Context, req Request, timeout time.Duration) (Response, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var err error
	t.wbuf, err = req.AppendPDU(append(t.wbuf[:0], req.Unit))
	if err != nil {
		return Response{}, t.fail(req, err)
	}
	broadcast := req.Unit == 0
	if broadcast && req.Function <= FuncReadInputRegisters {
		return Response{}, t.fail(req, fmt.Errorf("%w: broadcast (unit 0) is for writes only", ErrInvalidRequest))
	}
	crc := CRC16(t.wbuf)
	t.wbuf = append(t.wbuf, byte(crc), byte(crc>>8))
	if err := ctx.Err(); err != nil {
		return Response{}, t.fail(req, err)
	}
	line, conn, err := t.getLine(ctx)
	if err != nil {
		return Response{}, t.fail(req, err)
	}
	if !t.lateUntil.IsZero() && sameRequest(req, t.lateReq) {
		t.lateUntil = time.Time{} // a retry: its late answer is as good as its own
	}
	if err := t.drain(ctx, line, conn, timeout); err != nil {
		return Response{}, t.fail(req, err)
	}

	n, err := line.write(t.wbuf, timeout)
	t.st.bytesOut.Add(uint64(n))
	if err != nil {
		t.connErr(conn, err)
		return Response{}, t.fail(req, fmt.Errorf("write: %w", err))
	}
	t.st.requests.Add(1)
	// The kernel queues the frame; it is on the wire after its
	// transmission time.
	sent := time.Now().Add(time.Duration(len(t.wbuf)) * t.charTime)
	t.lastAct = sent
	if broadcast {
		return Response{}, nil
	}
	resp, err := t.await(ctx, line, conn, req, sent.Add(timeout))
	if err != nil {
		if errors.Is(err, ErrTimeout) || errors.Is(err, ErrShortFrame) {
			t.lateUntil, t.lateReq = time.Now().Add(timeout), req
		}
		return resp, t.fail(req, err)
	}
	return resp, nil
}

// sameRequest reports whether a and b ask the same thing (a retry).
func sameRequest(a, b Request) bool {
	return a.Unit == b.Unit && a.Function == b.Function && a.Address == b.Address && a.Count == b.Count &&
		slices.Equal(a.Values, b.Values) && slices.Equal(a.Bits, b.Bits)
}

// quietAt is when the line counts as silent: t3.5 after the last byte, and
// not before the late-reply window of a timed-out request ends.
func (t *rtuTransport) quietAt() time.Time {
	q := t.lastAct.Add(t.t35)
	if t.lateUntil.After(q) {
		return t.lateUntil
	}
	return q
}

// drain waits until the line has been silent for t3.5 since the last byte
// sent or received, reading and discarding whatever arrives meanwhile (a
// late reply to a timed-out request, noise), then flushes the input buffer.
// It gives up with ErrTimeout if the line does not go silent within
// timeout.
func (t *rtuTransport) drain(ctx context.Context, line rtuLine, conn net.Conn, timeout time.Duration) error {
	limit := time.Now().Add(timeout)
	if t.lateUntil.After(time.Now()) {
		limit = t.lateUntil.Add(timeout)
	}
	defer func() { t.lateUntil = time.Time{} }()
	drained := 0
	defer func() {
		if drained > 0 {
			t.st.discarded.Add(uint64(drained))
			t.log.Debug("modbus: drained line before request", "line", t.name, "bytes", drained)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		quiet := t.quietAt()
		n, err := line.read(t.rbuf[:], min(quiet.Sub(now), readSlice))
		if n > 0 {
			drained += n
			t.st.bytesIn.Add(uint64(n))
			t.lastAct = time.Now()
			t.lateUntil = time.Time{} // the late reply (or noise) came: wait for silence after it
		}
		if err != nil {
			t.connErr(conn, err)
			return fmt.Errorf("drain: %w", err)
		}
		now = time.Now()
		if n == 0 && !now.Before(t.quietAt()) {
			break
		}
		if now.After(limit) {
			return fmt.Errorf("line not silent before sending (%d bytes drained): %w", drained, ErrTimeout)
		}
	}
	if err := line.flushInput(); err != nil {
		t.log.Debug("modbus: flush input", "line", t.name, "err", err)
	}
	return nil
}

// await reads the response to req until deadline.
func (t *rtuTransport) await(ctx context.Context, line rtuLine, conn net.Conn, req Request, deadline time.Time) (Response, error) {
	r, w := 0, 0
	discarded := 0
	defer func() {
		if discarded > 0 {
			t.st.discarded.Add(uint64(discarded))
			t.log.Debug("modbus: discarded bytes while awaiting response", "line", t.name, "bytes", discarded, "req", req)
		}
	}()
	for {
		for r < w {
			step, n, resp, err := examineRTU(req, t.rbuf[r:w])
			if step == rtuNeedMore {
				break
			}
			r += n
			if step == rtuDiscard {
				discarded += n
				continue
			}
			discarded += w - r // trailing bytes after the answer
			t.st.outcome(err)
			return resp, err
		}
		if r == w {
			r, w = 0, 0
		} else if w == len(t.rbuf) {
			w = copy(t.rbuf[:], t.rbuf[r:w])
			r = 0
		}

		if err := ctx.Err(); err != nil {
			discarded += w - r
			return Response{}, err
		}
		now := time.Now()
		remaining := deadline.Sub(now)
		if remaining <= 0 {
			var err error
			if w > r {
				discarded += w - r
				err = fmt.Errorf("%w (%d bytes received)", ErrShortFrame, w-r)
			} else {
				err = ErrTimeout
			}
			t.st.outcome(err)
			return Response{}, err
		}
		n, err := line.read(t.rbuf[w:], min(remaining, readSlice))
		if n > 0 {
			w += n
			t.st.bytesIn.Add(uint64(n))
			t.lastAct = time.Now()
		}
		if err != nil {
			t.connErr(conn, err)
			return Response{}, fmt.Errorf("read: %w", err)
		}
	}
}
