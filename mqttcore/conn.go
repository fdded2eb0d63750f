package mqttcore

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// errSlowConsumer is the write error of a connection whose peer does not
// read fast enough: its outbound buffer is full, so it is disconnected.
var errSlowConsumer = errors.New("mqtt client too slow: outbound buffer full, disconnecting")

// closeFlushTimeout bounds how long Close keeps flushing pending bytes (for
// example a DISCONNECT packet) before the socket is closed.
const closeFlushTimeout = time.Second

// connLimits configures boundedConn.
type connLimits struct {
	maxPending   int           // bytes buffered before the client counts as too slow
	writeTimeout time.Duration // one socket write may block at most this long
	onSlow       func(remote string)
	wg           *sync.WaitGroup // tracks writer goroutines
	writes       *atomic.Uint64  // counts Write calls on every connection, for Close's quiescence wait
}

// boundedListener wraps accepted connections in boundedConn and keeps track
// of them until they are closed.
type boundedListener struct {
	net.Listener
	lim connLimits

	mu     sync.Mutex
	conns  map[*boundedConn]struct{}
	closed bool // closeAll ran: connections accepted later are closed at once
}

func newBoundedListener(ln net.Listener, lim connLimits) *boundedListener {
	return &boundedListener{Listener: ln, lim: lim, conns: make(map[*boundedConn]struct{})}
}

func (l *boundedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	bc := newBoundedConn(c, l.lim, l.forget)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = bc.Close()
		return nil, net.ErrClosed
	}
	l.conns[bc] = struct{}{}
	l.mu.Unlock()
	return bc, nil
}

func (l *boundedListener) forget(c *boundedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// closeAll closes every connection still open.
func (l *boundedListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*boundedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// mqttListener is the mochi listener for the broker's TCP port. It replaces
// mochi's listeners.Net to avoid a deadlock in mochi v2.7.9: Server.Close
// calls closeListenerClients, whose Clients.GetByListener holds the clients
// read lock and takes it again through Clients.Len (clients.go:92-96); a
// client ending at that moment waits for the write lock in Clients.Delete
// (server.go:491), after which the second read lock can never be granted,
// and Close hangs. Here Close disconnects the clients found with
// Clients.GetAll (one read lock), then closes any connection left (one
// accepted but not yet registered as a client).
type mqttListener struct {
	id        string
	bl        *boundedListener
	srv       *mqtt.Server
	log       *slog.Logger
	closeOnce sync.Once
}

func (l *mqttListener) Init(log *slog.Logger) error { l.log = log; return nil }
func (l *mqttListener) ID() string                  { return l.id }
func (l *mqttListener) Address() string             { return l.bl.Addr().String() }
func (l *mqttListener) Protocol() string            { return "tcp" }

func (l *mqttListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.bl.Accept()
		if err != nil {
			return // closed
		}
		go func() {
			if err := establish(l.id, c); err != nil {
				l.log.Debug("mqtt client connection ended", "error", err)
			}
		}()
	}
}

func (l *mqttListener) Close(listeners.CloseFn) {
	l.closeOnce.Do(func() {
		_ = l.bl.Close()
		for _, cl := range l.srv.Clients.GetAll() {
			if cl.Net.Listener == l.id && !cl.Closed() {
				_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
		l.bl.closeAll()
	})
}

// boundedConn decouples the broker from the socket: Write copies into a
// bounded buffer and returns at once, a writer goroutine drains the buffer.
//
// This matters because mochi-mqtt holds the client's lock while it writes to
// the socket (Client.WritePacket, clients.go:603-607), and the publishing
// path takes the same lock to allocate a packet ID for a QoS>0 delivery
// (Client.NextPacketID, clients.go:276-277, from Server.publishToClient).
// With a plain net.Conn, a subscriber that stops reading would block every
// QoS>0 publish to it, and so the publisher, until the socket deadline
// (1.5 x keepalive; measured: one inline Publish blocked 89 s). Here Write never blocks: a client whose pending bytes
// would exceed maxPending is disconnected instead (counted, logged).
type boundedConn struct {
	net.Conn
	lim     connLimits
	release func(*boundedConn)

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	spare   []byte
	writing int   // bytes handed to the socket and not yet written
	err     error // sticky: set when the connection is broken or closed
	closing bool
}

func newBoundedConn(c net.Conn, lim connLimits, release func(*boundedConn)) *boundedConn {
	bc := &boundedConn{Conn: c, lim: lim, release: release}
	bc.cond = sync.NewCond(&bc.mu)
	lim.wg.Add(1)
	go bc.writeLoop()
	return bc
}

// Write buffers p. It fails (and closes the connection) when the peer is
// too slow; a single packet larger than the bound is accepted when nothing
// else is pending, so large messages still go through.
func (c *boundedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil || c.closing {
		err := c.err
		if err == nil {
			err = net.ErrClosed
		}
		c.mu.Unlock()
		return 0, err
	}
	busy := len(c.pending) + c.writing
	if busy > 0 && busy+len(p) > c.lim.maxPending {
		c.err = errSlowConsumer
		c.cond.Broadcast()
		c.mu.Unlock()
		_ = c.Conn.Close() // unblocks the writer and the broker's reader
		if c.lim.onSlow != nil {
			c.lim.onSlow(c.RemoteAddr().String())
		}
		return 0, errSlowConsumer
	}
	c.pending = append(c.pending, p...)
	if c.lim.writes != nil {
		c.lim.writes.Add(1)
	}
	c.cond.Signal()
	c.mu.Unlock()
	return len(p), nil
}

// SetDeadline sets only the read deadline: write deadlines are managed by
// the writer goroutine (mochi refreshes both on every packet read, which
// would otherwise let a client that pings but never reads hold a write).
func (c *boundedConn) SetDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline is a no-op for the same reason.
func (c *boundedConn) SetWriteDeadline(time.Time) error { return nil }

// Close stops reading at once and lets the writer flush what is pending
// (for example a DISCONNECT packet) for at most closeFlushTimeout.
func (c *boundedConn) Close() error {
	c.mu.Lock()
	if c.closing || c.err != nil {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	idle := len(c.pending) == 0 && c.writing == 0
	if idle {
		c.err = net.ErrClosed
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	if idle {
		return c.Conn.Close()
	}
	// Unblock the broker's read loop now and bound the flush; the writer
	// closes the socket when it is done.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	return c.Conn.SetReadDeadline(time.Unix(1, 0))
}

func (c *boundedConn) writeLoop() {
	defer c.lim.wg.Done()
	defer c.release(c)
	defer c.Conn.Close()
	c.mu.Lock()
	for {
		for len(c.pending) == 0 && c.err == nil && !c.closing {
			c.cond.Wait()
		}
		if c.err != nil || len(c.pending) == 0 { // broken, or closing with nothing left
			if c.err == nil {
				c.err = net.ErrClosed
			}
			c.mu.Unlock()
			return
		}
		chunk := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.writing = len(chunk)
		timeout := c.lim.writeTimeout
		if c.closing {
			timeout = closeFlushTimeout
		}
		c.mu.Unlock()

		_ = c.Conn.SetWriteDeadline(time.Now().Add(timeout))
		_, err := c.Conn.Write(chunk)

		c.mu.Lock()
		c.writing = 0
		if cap(chunk) <= c.lim.maxPending {
			c.spare = chunk[:0]
		}
		if err != nil && c.err == nil {
			c.err = err
		}
	}
}
