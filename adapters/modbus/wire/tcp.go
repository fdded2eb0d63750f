package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// TCPOptions configures NewTCP and NewRTUOverTCP.
type TCPOptions struct {
	// DialTimeout bounds one dial (DefaultDialTimeout when zero); the dial
	// also honours the Do's context.
	DialTimeout time.Duration
	// Log receives connection events and discards (nil discards).
	Log *slog.Logger
}

// tcpConn manages the lazily dialled, reconnecting connection shared by the
// Modbus TCP and RTU-over-TCP transports.
type tcpConn struct {
	addr        string
	dialTimeout time.Duration
	log         *slog.Logger
	st          *counters

	mu     sync.Mutex
	conn   net.Conn // nil until dialled, and after a connection error
	closed bool     // Close was called
	dialed bool     // a connection was established before
}

// get returns the current connection, dialling one if there is none. fresh
// reports whether it was dialled by this call.
func (c *tcpConn) get(ctx context.Context) (conn net.Conn, fresh bool, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, net.ErrClosed
	}
	if c.conn != nil {
		conn = c.conn
		c.mu.Unlock()
		return conn, false, nil
	}
	c.mu.Unlock()

	d := net.Dialer{Timeout: c.dialTimeout}
	conn, err = d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial: %w", err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		conn.Close()
		return nil, false, net.ErrClosed
	}
	c.conn = conn
	re := c.dialed
	c.dialed = true
	c.mu.Unlock()
	if re {
		c.st.reconnects.Add(1)
		c.log.Info("modbus: reconnected", "addr", c.addr)
	} else {
		c.log.Debug("modbus: connected", "addr", c.addr)
	}
	return conn, true, nil
}

// drop closes conn after a connection error (cause) so that the next get
// redials.
func (c *tcpConn) drop(conn net.Conn, cause error) {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	closed := c.closed
	c.mu.Unlock()
	conn.Close()
	if !closed {
		c.log.Warn("modbus: connection closed", "addr", c.addr, "err", cause)
	}
}

// close closes the connection for good.
func (c *tcpConn) close() error {
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.closed = true
	c.mu.Unlock()
	if conn != nil {
		return conn.Close()
	}
	return nil
}

// isTimeout reports whether err is a read or write deadline expiring.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tcpTransport is Modbus TCP (MBAP framing).
type tcpTransport struct {
	c   tcpConn
	st  counters
	tid uint16

	wbuf []byte
	// rbuf holds received bytes rbuf[r:w] not yet consumed; a partial frame
	// (a late reply still arriving) is kept across Do calls.
	rbuf [2 * maxMBAPFrame]byte
	r, w int
}

// NewTCP returns a Modbus TCP transport to addr ("host:port"). It dials
// lazily on the first Do, numbers requests with an incrementing transaction
// id, discards replies whose transaction id or unit does not match (late
// replies to timed-out requests), and redials after a connection error.
func NewTCP(addr string, o TCPOptions) Transport {
	t := &tcpTransport{wbuf: make([]byte, 0, maxMBAPFrame)}
	t.c = tcpConn{addr: addr, dialTimeout: o.DialTimeout, log: logger(o.Log), st: &t.st}
	if t.c.dialTimeout <= 0 {
		t.c.dialTimeout = DefaultDialTimeout
	}
	return t
}

// Stats implements Transport.
func (t *tcpTransport) Stats() Stats { return t.st.snapshot() }

// Close implements Transport.
func (t *tcpTransport) Close() error { return t.c.close() }

// fail wraps err with the transport's and the request's description.
func (t *tcpTransport) fail(req Request, err error) error {
	return fmt.Errorf("modbus tcp %s: %s: %w", t.c.addr, req, err)
}

// Do implements Transport.
func (t *tcpTransport) Do(ctx context.Context, req Request, timeout time.Duration) (Response, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var err error
	t.wbuf, err = req.AppendPDU(append(t.wbuf[:0], 0, 0, 0, 0, 0, 0, req.Unit))
	if err != nil {
		return Response{}, t.fail(req, err)
	}
	if err := ctx.Err(); err != nil {
		return Response{}, t.fail(req, err)
	}
	conn, fresh, err := t.c.get(ctx)
	if err != nil {
		return Response{}, t.fail(req, err)
	}
	if fresh {
		t.r, t.w = 0, 0 // nothing from an old connection may be parsed
	}
	t.tid++
	tid := t.tid
	l := len(t.wbuf) - 6
	t.wbuf[0], t.wbuf[1] = byte(tid>>8), byte(tid)
	t.wbuf[4], t.wbuf[5] = byte(l>>8), byte(l)

	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		t.c.drop(conn, err)
		return Response{}, t.fail(req, err)
	}
	n, err := conn.Write(t.wbuf)
	t.st.bytesOut.Add(uint64(n))
	if err != nil {
		t.c.drop(conn, err)
		return Response{}, t.fail(req, fmt.Errorf("write: %w", err))
	}
	t.st.requests.Add(1)

	resp, err := t.await(ctx, conn, req, tid, time.Now().Add(timeout))
	if err != nil {
		return resp, t.fail(req, err)
	}
	return resp, nil
}

// await reads until the frame with transaction id tid arrives, the deadline
// passes, ctx is done or the connection fails.
func (t *tcpTransport) await(ctx context.Context, conn net.Conn, req Request, tid uint16, deadline time.Time) (Response, error) {
	discarded := 0
	defer func() {
		if discarded > 0 {
			t.st.discarded.Add(uint64(discarded))
			t.c.log.Debug("modbus: discarded frames", "addr", t.c.addr, "bytes", discarded, "awaiting_tid", tid)
		}
	}()
	for {
		// Consume the complete frames buffered so far.
		for t.w-t.r >= mbapHeaderLen {
			h := t.rbuf[t.r:t.w]
			ftid := uint16(h[0])<<8 | uint16(h[1])
			proto := uint16(h[2])<<8 | uint16(h[3])
			length := int(h[4])<<8 | int(h[5])
			if proto != 0 || length < 2 || length > maxMBAPLength {
				t.c.drop(conn, errors.New("stream desynchronized"))
				t.r, t.w = 0, 0
				err := fmt.Errorf("%w: bad MBAP header (protocol %d, length %d): stream desynchronized", ErrMalformed, proto, length)
				t.st.outcome(err)
				return Response{}, err
			}
			total := 6 + length
			if len(h) < total {
				break
			}
			t.r += total
			if ftid != tid || h[6] != req.Unit {
				discarded += total
				continue
			}
			resp, err := ParseResponsePDU(req, h[mbapHeaderLen:total])
			t.st.outcome(err)
			return resp, err
		}
		if t.r == t.w {
			t.r, t.w = 0, 0
		} else if t.w == len(t.rbuf) {
			t.w = copy(t.rbuf[:], t.rbuf[t.r:t.w])
			t.r = 0
		}

		if err := ctx.Err(); err != nil {
			return Response{}, err
		}
		now := time.Now()
		remaining := deadline.Sub(now)
		if remaining <= 0 {
			return Response{}, t.timedOut(conn, tid)
		}
		if err := conn.SetReadDeadline(now.Add(min(remaining, readSlice))); err != nil {
			t.c.drop(conn, err)
			return Response{}, err
		}
		n, err := conn.Read(t.rbuf[t.w:])
		t.w += n
		t.st.bytesIn.Add(uint64(n))
		if err != nil && !isTimeout(err) {
			t.c.drop(conn, err)
			t.r, t.w = 0, 0
			return Response{}, fmt.Errorf("read: %w", err)
		}
	}
}

// timedOut classifies a timeout: a partial frame carrying tid is a short
// frame (and the stream can no longer be trusted, so the connection is
// closed); anything else is ErrTimeout and the connection stays up.
func (t *tcpTransport) timedOut(conn net.Conn, tid uint16) error {
	var err error
	if t.w-t.r >= 2 && uint16(t.rbuf[t.r])<<8|uint16(t.rbuf[t.r+1]) == tid {
		err = fmt.Errorf("%w (%d bytes received)", ErrShortFrame, t.w-t.r)
		t.c.drop(conn, err)
		t.r, t.w = 0, 0
	} else {
		err = ErrTimeout
	}
	t.st.outcome(err)
	return err
}
