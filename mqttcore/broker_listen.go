package mqttcore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The broker's listeners beyond plain TCP. Each hands mochi a net.Conn
// wrapped in boundedConn (conn.go) through mqttListener, so that TLS and
// WebSocket clients get the same bounded, never-blocking writes and the
// same shutdown as TCP clients.

// connectDeadlineListener sets a read deadline (BrokerOptions.ConnectTimeout)
// on every accepted connection, for its CONNECT. mochi itself sets no
// deadline before the CONNECT, so a peer that opens connections and sends
// nothing would otherwise hold each one forever. After the CONNECT, mochi's
// keepalive deadline (1.5 x keepalive) replaces it.
type connectDeadlineListener struct {
	net.Listener
	timeout time.Duration
}

func (l connectDeadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	return c, nil
}

// tlsListener is tls.NewListener, except that closing a connection closes
// the TCP socket at once. tls.Conn.Close first sends a close_notify alert,
// which waits (up to 5 s) for the connection's write lock and for room in a
// socket buffer that a stalled client never drains; boundedConn closes a
// slow client's connection from the publishing path, which must not wait.
// MQTT ends a session with DISCONNECT, not with close_notify.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsServerConn{Conn: tls.Server(c, l.cfg), raw: c}, nil
}

type tlsServerConn struct {
	*tls.Conn
	raw net.Conn
}

func (c *tlsServerConn) Close() error { return c.raw.Close() }

// certReloader serves the broker's certificate and reads the files again
// when either changes (a renewed certificate is picked up without a
// restart). A renewed pair that cannot be loaded is logged and the
// previous one kept.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	mu                sync.Mutex
	cert              *tls.Certificate
	stamp             string
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("broker TLS certificate: %w", err)
	}
	r.cert, r.stamp = &cert, r.fileStamp()
	return r, nil
}

func (r *certReloader) fileStamp() string {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return s
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp := r.fileStamp()
	r.mu.Lock()
	defer r.mu.Unlock()
	if stamp != r.stamp {
		r.stamp = stamp
		cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
		if err != nil {
			r.log.Warn("broker TLS certificate changed but cannot be loaded: keeping the previous one", "err", err)
		} else {
			r.cert = &cert
			r.log.Info("broker TLS certificate reloaded", "cert_file", r.certFile)
		}
	}
	return r.cert, nil
}

// WebSocketPath is the only path of the WebSocket listener that upgrades to
// MQTT; every other path gets 404.
const WebSocketPath = "/mqtt"

// wsListener is a net.Listener of MQTT-over-WebSocket connections: an HTTP
// server upgrades requests to WebSocketPath (subprotocol "mqtt", or the
// older "mqttv3.1") and hands the connections to Accept. It replaces
// mochi's listeners.Websocket, which upgrades on every path, cannot report
// the port it bound for ":0", and writes to the socket directly (so a
// stalled WebSocket subscriber would stall publishers: see boundedConn).
type wsListener struct {
	ln      net.Listener
	srv     *http.Server
	log     *slog.Logger
	timeout time.Duration // for the upgrade, then for the CONNECT
	conns   chan net.Conn

	mu       sync.Mutex
	closed   bool
	done     chan struct{}
	handlers sync.WaitGroup // ServeHTTP calls, and the Serve goroutine
}

func newWSListener(ln net.Listener, timeout time.Duration, log *slog.Logger) *wsListener {
	l := &wsListener{ln: ln, log: log, timeout: timeout, conns: make(chan net.Conn), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, l.upgrade)
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: timeout,
		IdleTimeout:       timeout, // keep-alive HTTP connections that never upgrade
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	l.handlers.Add(1)
	go func() {
		defer l.handlers.Done()
		_ = l.srv.Serve(ln)
	}()
	return l
}

var wsUpgrader = websocket.Upgrader{
	Subprotocols: []string{"mqtt", "mqttv3.1"},
	// MQTT clients authenticate in the CONNECT packet, not with cookies, so
	// a page from another origin gains nothing a direct client would not
	// have: browser clients are welcome from anywhere. (With anonymous
	// clients allowed, that includes any page open in a browser that can
	// reach the port: see docs/operations.md.)
	CheckOrigin: func(*http.Request) bool { return true },
}

func (l *wsListener) upgrade(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	l.handlers.Add(1)
	l.mu.Unlock()
	defer l.handlers.Done()
	if r.URL.Path != WebSocketPath {
		http.NotFound(w, r)
		return
	}
	ws, err := wsUpgrader.Upgrade(w, r, nil) // answers the client itself on error
	if err != nil {
		l.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newWSConn(ws)
	_ = c.SetDeadline(time.Time{})
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops the HTTP server and waits for its goroutines; the upgraded
// connections are closed by their owner (boundedListener.closeAll).
func (l *wsListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	err := l.srv.Close()
	l.handlers.Wait()
	return err
}

func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// wsConn is a WebSocket connection as a net.Conn: MQTT packets travel in
// binary messages, which may hold several packets or part of one
// ([MQTT-6.0.0-2]); a text message ends the connection ([MQTT-6.0.0-1]).
// It serves the client side too (in tests and tools).
type wsConn struct {
	net.Conn // the underlying connection: addresses and Close
	ws       *websocket.Conn
	r        io.Reader  // the current message
	wmu      sync.Mutex // one writer at a time; also guards gorilla's write deadline
	dmu      sync.Mutex
	deadline time.Time // for the next write
}

// errWSText is the read error of a WebSocket text message.
var errWSText = errors.New("websocket: MQTT needs binary messages, got a text message")

func newWSConn(ws *websocket.Conn) *wsConn {
	return &wsConn{Conn: ws.NetConn(), ws: ws}
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errWSText
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dmu.Lock()
	deadline := c.deadline
	c.dmu.Unlock()
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetWriteDeadline applies to the next write and, on the underlying
// connection, to the one in progress. (gorilla keeps its write deadline in
// a plain field that it applies to the socket at every frame: it is only
// handed over in Write, under the write lock.)
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.deadline = t
	c.dmu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}
