package coap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	"github.com/pion/transport/v5/deadline"
	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	coapNet "github.com/plgd-dev/go-coap/v3/net"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// CoAP over DTLS 1.2 with pre-shared keys (RFC 7252 §9.1.3.1).
//
// The go-coap DTLS server runs the same handlers as the UDP server
// (runState: dispatch, rate limit, size limits, ordering, acknowledgement
// after the frame is durable) on sessions that dtlsListener accepts. The
// listener is ours rather than pion's (dtls.Listen) for three reasons:
//
//   - The reboot trap: pion's listener routes every datagram by source
//     address and port to the existing session, so a device that restarts
//     with the same source port (a fixed port is common on constrained
//     devices) has its new ClientHello swallowed by its old session until
//     that one times out. dtlsListener starts a new session when a
//     ClientHello carries a client random other than the one that began the
//     peer's current session: a retransmitted ClientHello (RFC 6347 §4.2.1
//     keeps the random) still reaches the handshake in progress.
//   - It runs the handshakes itself, before go-coap sees the session, so a
//     failure is logged with the peer and the identity it claimed (never the
//     key) and counted.
//   - A wrong key does not fail a PSK handshake at once: the client's
//     Finished message cannot be decrypted and pion drops it silently,
//     waiting for a retransmission until the handshake times out.
//     dtlsListener sees the Finished arrive (after the key was looked up and
//     the ChangeCipherSpec seen); when the handshake is still incomplete
//     mismatchAfter later (the right key completes it in milliseconds), it
//     ends the handshake and sends the client a decrypt_error alert. An
//     identity that is not configured gets a random key and so the same
//     treatment (RFC 4279 §2: a client cannot probe which identities exist);
//     the log tells the two apart.
//
// Idle sessions are closed after dtlsIdle (go-coap's inactivity monitor;
// the device gets a close_notify and handshakes again next time).

// DTLS defaults and bounds.
const (
	// DefaultHandshakeTimeout bounds a DTLS handshake from the first
	// ClientHello.
	DefaultHandshakeTimeout = 10 * time.Second
	// dtlsIdle is how long a DTLS session without CoAP traffic is kept
	// (never less than twice the acknowledgement timeout).
	dtlsIdle = 30 * time.Second
	// maxDTLSPeers bounds the DTLS peers (sessions and handshakes).
	maxDTLSPeers = 4096
	// maxHandshakes bounds the handshakes in progress: beyond, new
	// ClientHellos are dropped (the client retransmits).
	maxHandshakes = 128
	// peerQueue is the datagrams queued for one session; beyond, dropped.
	peerQueue = 64
	// maxDatagram is the largest datagram read.
	maxDatagram = 64 << 10
	// mismatchAfter is how long a Finished from the client may leave the
	// handshake incomplete before its key is taken to be wrong (pion answers
	// the right one within milliseconds).
	mismatchAfter = 500 * time.Millisecond
	// maxLoggedIdentity bounds an identity in log lines.
	maxLoggedIdentity = 64
)

// dtlsCipherSuites are the PSK suites offered: TLS_PSK_WITH_AES_128_CCM_8
// is CoAP's mandatory suite (RFC 7252 §9.1.3.1, all tinydtls devices);
// TLS_PSK_WITH_AES_128_GCM_SHA256 is what OpenSSL and GnuTLS clients (libcoap)
// prefer. Both are in libcoap's OpenSSL client offer.
var dtlsCipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	dtls.TLS_PSK_WITH_AES_128_CCM_8,
}

var (
	errUnknownIdentity = errors.New("unknown PSK identity")
	errKeyMismatch     = errors.New("wrong key for this identity (the client's Finished message cannot be decrypted)")
	errReplaced        = errors.New("the peer started a new handshake")
)

// parsePSK checks dtls_listen and decodes [[coap.psk]] (identity → key).
// Errors never contain a key.
func parsePSK(cfg config.CoAP) (map[string][]byte, error) {
	var errs []error
	if cfg.DTLSListen != "" {
		if err := checkListen(cfg.DTLSListen); err != nil {
			errs = append(errs, fmt.Errorf("dtls_listen %w", err))
		}
		if len(cfg.PSK) == 0 {
			errs = append(errs, errors.New("dtls_listen needs at least one [[coap.psk]]"))
		}
	}
	psk := make(map[string][]byte, len(cfg.PSK))
	for i, p := range cfg.PSK {
		switch {
		case p.Identity == "":
			errs = append(errs, fmt.Errorf("psk[%d]: identity is empty", i))
			continue
		case len(p.Identity) > 65535:
			errs = append(errs, fmt.Errorf("psk[%d]: identity is longer than 65535 bytes", i))
			continue
		}
		if _, dup := psk[p.Identity]; dup {
			errs = append(errs, fmt.Errorf("psk[%d]: identity %q is defined twice", i, p.Identity))
			continue
		}
		key, err := hex.DecodeString(string(p.Key))
		if err != nil || len(key) == 0 {
			errs = append(errs, fmt.Errorf("psk[%d] (identity %q): key is not hex (an even number of the digits 0-9, a-f)", i, p.Identity))
			continue
		}
		psk[p.Identity] = key
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return psk, nil
}

// checkListen checks a host:port to bind.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("%q: %q is not an IP address or host name", addr, host)
	}
	return nil
}

// dtlsState is the adapter's DTLS configuration and bound address.
type dtlsState struct {
	psk              map[string][]byte
	handshakeTimeout time.Duration
	addr             atomic.Pointer[net.UDPAddr]
	logs             keyedLimiter // handshake failures, per identity
}

// DTLSAddr is the bound DTLS address while Run is serving, else nil (and
// nil without dtls_listen).
func (a *Adapter) DTLSAddr() net.Addr {
	if p := a.dtls.addr.Load(); p != nil {
		return p
	}
	return nil
}

// dtlsEndpoint is the DTLS side of one Run: the listener and the go-coap
// server on it. A nil *dtlsEndpoint (no dtls_listen) does nothing.
type dtlsEndpoint struct {
	l      *dtlsListener
	srv    *dtlsServer.Server
	failed chan error    // Serve's unexpected end
	served chan struct{} // closed when Serve returned
}

// listenDTLS binds dtls_listen; nil without it. Nothing is served until
// serve.
func (a *Adapter) listenDTLS() (*dtlsEndpoint, error) {
	if a.cfg.DTLSListen == "" {
		return nil, nil
	}
	l, err := newDTLSListener(a)
	if err != nil {
		return nil, fmt.Errorf("coap: listen on dtls %s: %w", a.cfg.DTLSListen, err)
	}
	return &dtlsEndpoint{l: l, failed: make(chan error, 1), served: make(chan struct{})}, nil
}

// serve starts the go-coap DTLS server with the handlers of rs.
func (e *dtlsEndpoint) serve(rs *runState) {
	if e == nil {
		return
	}
	a := rs.a
	opts := rs.serverOptions(max(dtlsIdle, 2*a.ackTimeout))
	dopts := make([]dtlsServer.Option, 0, len(opts))
	for _, o := range opts {
		dopts = append(dopts, o)
	}
	e.srv = dtlsServer.New(dopts...)
	started := rs.start(func() {
		defer close(e.served)
		if err := e.srv.Serve(e.l); err != nil {
			e.failed <- err
			return
		}
		if rs.ctx.Err() == nil {
			e.failed <- errors.New("stopped unexpectedly")
		}
	})
	if !started {
		close(e.served)
		e.failed <- errors.New("cannot start server")
		return
	}
	addr := e.l.addr()
	a.dtls.addr.Store(addr)
	a.log.Info("coap dtls server listening", "dtls_listen", addr.String(), "identities", len(a.dtls.psk),
		"session_idle", max(dtlsIdle, 2*a.ackTimeout).String())
}

// errs reports an unexpected end of the server (nil channel when none).
func (e *dtlsEndpoint) errs() <-chan error {
	if e == nil {
		return nil
	}
	return e.failed
}

// stop stops the server, waits for it and its sessions, and closes the
// socket. Idempotent; nil-safe.
func (e *dtlsEndpoint) stop() {
	if e == nil {
		return
	}
	if e.srv != nil {
		e.srv.Stop()
		<-e.served
	}
	e.l.shutdown()
	e.l.a.dtls.addr.Store(nil)
}

// ---- the listener ----

// dtlsListener demultiplexes one UDP socket into DTLS peers, runs their
// handshakes and hands established sessions to go-coap (its
// dtlsServer.Listener).
type dtlsListener struct {
	a    *Adapter
	conn *net.UDPConn

	ctx    context.Context // ends at Close: handshakes stop
	cancel context.CancelFunc

	accepted chan *dtls.Conn

	mu          sync.Mutex
	peers       map[netip.AddrPort]*dtlsPeer
	handshaking int
	closing     bool

	wg        sync.WaitGroup // the read loop and the handshakes
	closeOnce sync.Once
	closed    chan struct{}
	drops     bridge.Limiter // rate-limits warnings about dropped ClientHellos
}

var _ dtlsServer.Listener = (*dtlsListener)(nil)

func newDTLSListener(a *Adapter) (*dtlsListener, error) {
	laddr, err := net.ResolveUDPAddr("udp", a.cfg.DTLSListen)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &dtlsListener{
		a:        a,
		conn:     conn,
		ctx:      ctx,
		cancel:   cancel,
		accepted: make(chan *dtls.Conn, 16),
		peers:    make(map[netip.AddrPort]*dtlsPeer),
		closed:   make(chan struct{}),
		drops:    bridge.Limiter{Every: 10 * time.Second},
	}
	l.wg.Add(1)
	go l.readLoop()
	return l, nil
}

func (l *dtlsListener) addr() *net.UDPAddr {
	a, _ := l.conn.LocalAddr().(*net.UDPAddr)
	return a
}

// AcceptWithContext returns the next established session.
func (l *dtlsListener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closed:
		return nil, coapNet.ErrListenerIsClosed
	}
}

// Close stops accepting: new ClientHellos are dropped and handshakes in
// progress end. Sessions already accepted belong to go-coap; the socket
// stays open for them until shutdown.
func (l *dtlsListener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		l.cancel()
		close(l.closed)
	})
	return nil
}

// shutdown closes the listener, every peer left and the socket, and waits
// for the goroutines it started.
func (l *dtlsListener) shutdown() {
	_ = l.Close()
	l.mu.Lock()
	peers := make([]*dtlsPeer, 0, len(l.peers))
	for _, p := range l.peers {
		peers = append(peers, p)
	}
	l.mu.Unlock()
	for _, p := range peers {
		_ = p.Close()
	}
	_ = l.conn.Close()
	l.wg.Wait()
	for { // sessions established after go-coap stopped accepting
		select {
		case c := <-l.accepted:
			_ = c.Close()
		default:
			return
		}
	}
}

func (l *dtlsListener) readLoop() {
	defer l.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.a.libError(fmt.Errorf("dtls: read: %w", err))
			select {
			case <-l.closed:
				return
			case <-time.After(10 * time.Millisecond): // do not spin on a persistent error
			}
			continue
		}
		l.route(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), buf[:n])
	}
}

// route hands a datagram to its peer, starting a handshake for a new
// ClientHello. It runs on the read loop only.
func (l *dtlsListener) route(from netip.AddrPort, b []byte) {
	random, hello := clientHelloRandom(b)
	now := time.Now()
	l.mu.Lock()
	p := l.peers[from]
	var old *dtlsPeer
	if p != nil && hello && random != p.random {
		// A new ClientHello, not a retransmission: the device restarted.
		old, p = p, nil
		delete(l.peers, from)
	}
	var drop string
	if p == nil {
		switch {
		case !hello:
			// A record for a session we do not have (closed when idle,
			// or before a restart of the gateway): dropped.
		case l.closing:
		case len(l.peers) >= maxDTLSPeers:
			drop = fmt.Sprintf("too many DTLS peers (%d)", maxDTLSPeers)
		case l.handshaking >= maxHandshakes:
			drop = fmt.Sprintf("too many DTLS handshakes in progress (%d)", maxHandshakes)
		default:
			if ok, _ := l.a.limit.allow(from, now); !ok {
				drop = "source over its rate limit"
				break
			}
			p = l.newPeer(from, random, now)
			l.peers[from] = p
			l.handshaking++
			l.wg.Add(1)
			go l.handshake(p)
		}
	}
	l.mu.Unlock()
	if old != nil {
		l.a.log.Debug("coap dtls peer started a new handshake: its previous session is closed", "peer", from.String())
		old.end(errReplaced)
	}
	if drop != "" {
		if ok, suppressed := l.drops.Allow(now); ok {
			l.a.log.Warn("coap dtls ClientHello dropped", "peer", from.String(), "reason", drop, "suppressed", suppressed)
		}
		return
	}
	if p == nil {
		return
	}
	p.observe(b)
	p.deliver(append([]byte(nil), b...))
}

func (l *dtlsListener) newPeer(from netip.AddrPort, random [32]byte, now time.Time) *dtlsPeer {
	ctx, cancel := context.WithCancelCause(l.ctx)
	ctx, cancelTimeout := context.WithTimeout(ctx, l.a.dtls.handshakeTimeout)
	return &dtlsPeer{
		l:             l,
		key:           from,
		addr:          net.UDPAddrFromAddrPort(from),
		random:        random,
		start:         now,
		in:            make(chan []byte, peerQueue),
		done:          make(chan struct{}),
		readDeadline:  deadline.New(),
		ctx:           ctx,
		abort:         cancel,
		cancelTimeout: cancelTimeout,
	}
}

// remove forgets p if it is still the peer of its address.
func (l *dtlsListener) remove(p *dtlsPeer) {
	l.mu.Lock()
	if l.peers[p.key] == p {
		delete(l.peers, p.key)
	}
	l.mu.Unlock()
}

// handshake runs p's handshake and hands the session to go-coap.
func (l *dtlsListener) handshake(p *dtlsPeer) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		l.handshaking--
		l.mu.Unlock()
	}()
	defer func() {
		p.stopMismatchCheck()
		p.cancelTimeout()
		p.abort(context.Canceled) // releases the context; no effect on an established session
	}()
	a := l.a
	conn, err := dtls.ServerWithOptions(p, p.addr,
		dtls.WithPSK(p.pskFor),
		dtls.WithCipherSuites(dtlsCipherSuites...),
		dtls.WithLoggerFactory(pionLogs{a.log}),
	)
	if err != nil {
		p.end(err)
		l.failed(p, err)
		return
	}
	err = conn.HandshakeContext(p.ctx)
	if err != nil {
		cause := context.Cause(p.ctx)
		_ = conn.Close()
		p.end(err)
		switch {
		case errors.Is(cause, errReplaced), l.ctx.Err() != nil:
			return // not the peer's failure
		case errors.Is(cause, errKeyMismatch):
			l.alert(p.key, alertDecryptError)
			err = errKeyMismatch
			if p.unknown.Load() {
				err = errUnknownIdentity
			}
		case errors.Is(cause, context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("no answer within %v", a.dtls.handshakeTimeout)
			if p.keyed.Load() && p.finished.Load() > 0 {
				err = fmt.Errorf("%w, %w", errKeyMismatch, err)
			}
		}
		l.failed(p, err)
		return
	}
	p.established.Store(true)
	a.stats.dtlsSessions.Add(1)
	p.onClose(func() { a.stats.dtlsSessions.Add(-1) })
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		state, _ := conn.ConnectionState()
		a.log.Debug("coap dtls session established", "peer", p.key.String(), "identity", loggable(p.identity()),
			"cipher_suite", state.CipherSuiteID.String(), "handshake", time.Since(p.start).String())
	}
	select {
	case l.accepted <- conn:
	case <-l.closed:
		_ = conn.Close()
	}
}

// failed logs (per identity at most every 30 s, and at most once a second
// in all; the rest at debug) and counts a failed handshake.
func (l *dtlsListener) failed(p *dtlsPeer, err error) {
	a := l.a
	a.stats.handshakeFailures.Add(1)
	args := []any{"peer", p.key.String(), "reason", err.Error()}
	key := "peer " + p.key.Addr().String() // no identity yet: per host
	if p.claimed.Load() {
		key = p.identity()
		args = append(args, "identity", loggable(key))
	}
	if ok, suppressed := a.dtls.logs.allow(key, time.Now()); ok {
		a.log.Warn("coap dtls handshake failed", append(args, "suppressed", suppressed)...)
		return
	}
	a.log.Debug("coap dtls handshake failed", args...)
}

// DTLS alert descriptions (RFC 5246 §7.2).
const alertDecryptError = 51

// alert sends a fatal alert in the clear (epoch 0): the client is still
// in its handshake, before the server's ChangeCipherSpec.
func (l *dtlsListener) alert(to netip.AddrPort, description byte) {
	rec := []byte{
		21,         // content type: alert
		0xfe, 0xfd, // DTLS 1.2
		0, 0, // epoch 0
		0, 0, 0, 1, 0, 0, // sequence number: past pion's few epoch-0 records
		0, 2, // length
		2, description, // fatal
	}
	_, _ = l.conn.WriteToUDPAddrPort(rec, to)
}

// clientHelloRandom reports whether b starts with an epoch-0 ClientHello
// record (its first fragment) and returns its client random.
func clientHelloRandom(b []byte) (random [32]byte, ok bool) {
	// Record header (13 bytes): type, version(2), epoch(2), seq(6), length(2).
	// Handshake header (12): msg_type, length(3), message_seq(2),
	// fragment_offset(3), fragment_length(3). ClientHello: version(2),
	// random(32).
	const hdr = 13 + 12
	if len(b) < hdr+2+32 || b[0] != 22 || b[3] != 0 || b[4] != 0 || b[13] != 1 {
		return random, false
	}
	if b[19] != 0 || b[20] != 0 || b[21] != 0 { // fragment_offset
		return random, false
	}
	copy(random[:], b[hdr+2:hdr+2+32])
	return random, true
}

// ---- one peer: a net.PacketConn for pion ----

// dtlsPeer is one remote address and port: the packet connection its pion
// session reads and writes.
type dtlsPeer struct {
	l      *dtlsListener
	key    netip.AddrPort
	addr   *net.UDPAddr
	random [32]byte // of the ClientHello that began this session
	start  time.Time

	in           chan []byte
	done         chan struct{}
	doneOnce     sync.Once
	readDeadline *deadline.Deadline

	ctx           context.Context // the handshake's
	abort         context.CancelCauseFunc
	cancelTimeout context.CancelFunc

	mu      sync.Mutex
	id      string
	closers []func()

	claimed     atomic.Bool // the client sent an identity
	keyed       atomic.Bool // ... and its key was looked up
	unknown     atomic.Bool // ... that is not configured: a random key
	established atomic.Bool

	// Read loop only: the client's ChangeCipherSpec, and its Finished
	// records (epoch 1) seen so far.
	sawCCS      bool
	finishedSeq uint64
	finished    atomic.Int32

	check        *time.Timer // the pending mismatch check (mu)
	checkPending bool
	checkStopped bool
}

var _ net.PacketConn = (*dtlsPeer)(nil)

// pskFor is pion's PSK callback: the key of the identity the client sent.
func (p *dtlsPeer) pskFor(identity []byte) ([]byte, error) {
	p.mu.Lock()
	p.id = string(identity)
	p.mu.Unlock()
	p.claimed.Store(true)
	p.keyed.Store(true)
	if key, ok := p.l.a.dtls.psk[string(identity)]; ok {
		return key, nil
	}
	// RFC 4279 §2: go on as if the identity existed with another key, so
	// that a client cannot tell an unknown identity from a wrong key (both
	// end with decrypt_error, after the same time).
	p.unknown.Store(true)
	return []byte(rand.Text()), nil
}

func (p *dtlsPeer) identity() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

// observe watches the end of the handshake. pion drops a Finished it
// cannot decrypt without a word, so: once the client's key was looked up
// and its ChangeCipherSpec seen, a Finished (an epoch-1 handshake record)
// that leaves the handshake incomplete for mismatchAfter means the key is
// wrong; with the right one pion answers within milliseconds. Read loop
// only.
func (p *dtlsPeer) observe(b []byte) {
	if p.established.Load() {
		return
	}
	for len(b) >= 13 { // each record of the datagram
		typ, epoch := b[0], binary.BigEndian.Uint16(b[3:5])
		seq := uint64(binary.BigEndian.Uint16(b[5:7]))<<32 | uint64(binary.BigEndian.Uint32(b[7:11]))
		n := 13 + int(binary.BigEndian.Uint16(b[11:13]))
		b = b[min(n, len(b)):]
		switch {
		case typ == 20 && epoch == 0: // ChangeCipherSpec: pion takes epoch 1 from here
			p.sawCCS = true
		case typ == 22 && epoch == 1 && p.sawCCS:
			if p.finished.Load() > 0 && seq <= p.finishedSeq {
				continue // a duplicate
			}
			p.finishedSeq = seq
			p.finished.Add(1)
			p.armMismatchCheck()
		}
	}
}

// armMismatchCheck checks the handshake mismatchAfter from now, unless a
// check is pending.
func (p *dtlsPeer) armMismatchCheck() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.checkPending || p.checkStopped {
		return
	}
	p.checkPending = true
	p.check = time.AfterFunc(mismatchAfter, func() {
		p.mu.Lock()
		p.checkPending = false
		p.mu.Unlock()
		if !p.established.Load() && p.keyed.Load() {
			p.abort(errKeyMismatch)
		}
	})
}

// stopMismatchCheck ends the checks: the handshake is over.
func (p *dtlsPeer) stopMismatchCheck() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkStopped = true
	if p.check != nil {
		p.check.Stop()
	}
}

// deliver queues a datagram for pion; dropped when the queue is full.
func (p *dtlsPeer) deliver(b []byte) {
	select {
	case <-p.done:
	case p.in <- b:
	default:
	}
}

// end closes the peer and stops its handshake with cause.
func (p *dtlsPeer) end(cause error) {
	p.abort(cause)
	_ = p.Close()
}

func (p *dtlsPeer) onClose(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		f()
	default:
		p.closers = append(p.closers, f)
	}
}

// ReadFrom returns the next datagram of the peer.
func (p *dtlsPeer) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-p.readDeadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	default:
	}
	select {
	case d := <-p.in:
		return copy(b, d), p.addr, nil
	case <-p.done:
		return 0, nil, net.ErrClosed
	case <-p.readDeadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo sends to the peer (whatever addr says).
func (p *dtlsPeer) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-p.done:
		return 0, net.ErrClosed
	default:
	}
	return p.l.conn.WriteToUDPAddrPort(b, p.key)
}

// Close forgets the peer: its reads end, its writes fail. Idempotent.
func (p *dtlsPeer) Close() error {
	p.doneOnce.Do(func() {
		p.mu.Lock()
		close(p.done)
		fs := p.closers
		p.closers = nil
		p.mu.Unlock()
		p.l.remove(p)
		for _, f := range fs {
			f()
		}
	})
	return nil
}

func (p *dtlsPeer) LocalAddr() net.Addr { return p.l.conn.LocalAddr() }

func (p *dtlsPeer) SetDeadline(t time.Time) error {
	p.readDeadline.Set(t)
	return nil
}

func (p *dtlsPeer) SetReadDeadline(t time.Time) error {
	p.readDeadline.Set(t)
	return nil
}

// SetWriteDeadline does nothing: writes to the socket do not block.
func (p *dtlsPeer) SetWriteDeadline(time.Time) error { return nil }

// ---- logs ----

// loggable bounds an identity (the client chose it) for a log line.
func loggable(id string) string {
	if len(id) <= maxLoggedIdentity {
		return id
	}
	cut := maxLoggedIdentity
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "..."
}

// keyedLimiter lets a warning through per key at most every 30 s, and at
// most 5 in any 5 s in all (a device retrying with a wrong key logs one
// line per 30 s; a scan of identities a few lines).
type keyedLimiter struct {
	mu         sync.Mutex
	last       map[string]time.Time
	window     time.Time // start of the current 5 s
	inWindow   int
	suppressed uint64
}

const (
	keyedEvery  = 30 * time.Second
	keyedWindow = 5 * time.Second
	keyedBurst  = 5
	keyedMax    = 1024 // keys remembered; then forgotten all at once
)

func (k *keyedLimiter) allow(key string, now time.Time) (bool, uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil || len(k.last) >= keyedMax {
		k.last = make(map[string]time.Time)
	}
	if now.Sub(k.window) >= keyedWindow {
		k.window, k.inWindow = now, 0
	}
	if last, seen := k.last[key]; (seen && now.Sub(last) < keyedEvery) || k.inWindow >= keyedBurst {
		k.suppressed++
		return false, 0
	}
	k.last[key] = now
	k.inWindow++
	n := k.suppressed
	k.suppressed = 0
	return true, n
}

// pionLogs sends pion's log lines to the adapter's log at debug.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("lib", "pion/"+scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) on() bool { return l.log.Enabled(context.Background(), slog.LevelDebug) }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(msg string)      { l.Info(msg) }
func (l pionLogger) Debugf(f string, args ...any) {
	l.Infof(f, args...)
}
func (l pionLogger) Info(msg string) {
	if l.on() {
		l.log.Debug(msg)
	}
}
func (l pionLogger) Infof(f string, args ...any) {
	if l.on() {
		l.log.Debug(fmt.Sprintf(f, args...))
	}
}
func (l pionLogger) Warn(msg string)              { l.Info(msg) }
func (l pionLogger) Warnf(f string, args ...any)  { l.Infof(f, args...) }
func (l pionLogger) Error(msg string)             { l.Info(msg) }
func (l pionLogger) Errorf(f string, args ...any) { l.Infof(f, args...) }
