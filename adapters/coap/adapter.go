package coap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/udp"

	coapNet "github.com/plgd-dev/go-coap/v3/net"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// Deps are what an Adapter needs from the gateway.
type Deps struct {
	// Log already carries adapter=<name>. Nil discards.
	Log *slog.Logger
	// AckTimeout bounds how long a request waits for the bus to take and
	// acknowledge its frames before it is answered 5.03. Default 5s.
	AckTimeout time.Duration
	// MaxInFlight bounds the requests handled at once; beyond it requests
	// are answered 5.03 at once. Default 1024.
	MaxInFlight int
	// Availability receives the online/offline transitions of the
	// [[coap.device]] clients. Nil: none.
	Availability bridge.AvailabilityFunc
	// RateLimit is the per-source rate limit of requests, UDP and DTLS
	// (ratelimit.go). Zero value: 100 requests/s, burst 2000.
	RateLimit RateLimit
	// HandshakeTimeout bounds a DTLS handshake. Default 10s.
	HandshakeTimeout time.Duration
}

// Defaults and bounds.
const (
	DefaultAckTimeout  = 5 * time.Second
	DefaultMaxInFlight = 1024
	DefaultMaxPayload  = 16 << 10 // CONFIG.md: max_payload = "16KiB"
	DefaultListen      = "0.0.0.0:5683"
	// MaxMaxPayload is the largest max_payload accepted: a block-wise
	// upload is held in memory until complete.
	MaxMaxPayload = 64 << 20

	// blockwiseTimeout is how long a Block1 upload may take from its first
	// block to its last (go-coap's expiry is not rolling): generous, so a
	// lossy link with retransmissions can still complete max_payload.
	blockwiseTimeout = 2 * time.Minute
	// blockwiseTransfersPerPeer bounds the concurrent uploads of one peer;
	// beyond, go-coap answers 5.03.
	blockwiseTransfersPerPeer = 8
	// peerIdle is how long an idle peer's state is kept (go-coap's default).
	peerIdle = 16 * time.Second
	// housekeeping is the period of go-coap's expiry checks (caches,
	// block-wise transfers, idle peers).
	housekeeping = time.Second
)

// Adapter is one [[coap]] block: a CoAP server on UDP.
type Adapter struct {
	cfg         config.CoAP
	log         *slog.Logger
	ackTimeout  time.Duration
	maxInFlight int
	maxPayload  int64

	stats     stats
	libErrors bridge.Limiter // rate-limits warnings about library errors
	rejects   bridge.Limiter // rate-limits warnings about refused requests

	addr    atomic.Pointer[net.UDPAddr]
	running atomic.Bool

	devs *devices // [[coap.device]] clients: client.go

	dtls     dtlsState      // dtls_listen, [[coap.psk]]: dtls.go
	limit    *rateLimiter   // per-source rate limit, nil: none: ratelimit.go
	rateLogs bridge.Limiter // rate-limits warnings about 4.29s
}

var _ bridge.Adapter = (*Adapter)(nil)

// New validates cfg and returns an adapter. It does no I/O. Zero values
// take CONFIG.md's defaults (name "coap", listen "0.0.0.0:5683", max_payload
// 16KiB; with [[coap.device]] blocks, an empty listen means no server;
// with dtls_listen, no UDP server).
func New(cfg config.CoAP, deps Deps) (*Adapter, error) {
	if cfg.Name == "" {
		cfg.Name = "coap"
	}
	if cfg.Listen == "" && len(cfg.Devices) == 0 && cfg.DTLSListen == "" {
		cfg.Listen = DefaultListen // with devices or DTLS, "" is no UDP server
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	var errs []error
	if err := bridge.CheckAdapterName(cfg.Name); err != nil {
		errs = append(errs, err)
	}
	if cfg.Listen == "" {
		// no UDP server: devices or DTLS only
	} else if host, port, err := net.SplitHostPort(cfg.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", cfg.Listen, err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: port %q is not a number from 0 to 65535", cfg.Listen, port))
	} else if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		errs = append(errs, fmt.Errorf("listen %q: %q is not an IP address or host name", cfg.Listen, host))
	}
	if cfg.MaxPayload < 0 || cfg.MaxPayload > MaxMaxPayload {
		errs = append(errs, fmt.Errorf("max_payload %d is out of range (1 B to %d MiB)", cfg.MaxPayload, MaxMaxPayload>>20))
	}
	psk, err := parsePSK(cfg) // dtls.go
	if err != nil {
		errs = append(errs, err)
	}
	if err := deps.RateLimit.check(); err != nil {
		errs = append(errs, err)
	}
	if deps.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("handshake timeout %v is negative", deps.HandshakeTimeout))
	}
	devs, err := newDevices(cfg.Devices, deps.Availability)
	if err != nil {
		errs = append(errs, err)
	}
	if deps.AckTimeout < 0 {
		errs = append(errs, fmt.Errorf("ack timeout %v is negative", deps.AckTimeout))
	}
	if deps.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in-flight %d is negative", deps.MaxInFlight))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &Adapter{
		cfg:         cfg,
		log:         deps.Log,
		ackTimeout:  deps.AckTimeout,
		maxInFlight: deps.MaxInFlight,
		maxPayload:  int64(cfg.MaxPayload),
		libErrors:   bridge.Limiter{Every: 10 * time.Second},
		rejects:     bridge.Limiter{Every: 5 * time.Second},
		devs:        devs,
		limit:       newRateLimiter(deps.RateLimit, time.Now()),
		rateLogs:    bridge.Limiter{Every: 10 * time.Second},
	}
	a.dtls.psk, a.dtls.handshakeTimeout = psk, cmp.Or(deps.HandshakeTimeout, DefaultHandshakeTimeout)
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.ackTimeout == 0 {
		a.ackTimeout = DefaultAckTimeout
	}
	if a.maxInFlight == 0 {
		a.maxInFlight = DefaultMaxInFlight
	}
	return a, nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// Name is the adapter block's name, the {adapter} in topics.
func (a *Adapter) Name() string { return a.cfg.Name }

// Kind is "coap".
func (a *Adapter) Kind() string { return "coap" }

// Addr is the bound UDP address while Run is serving, else nil.
func (a *Adapter) Addr() net.Addr {
	if p := a.addr.Load(); p != nil {
		return p
	}
	return nil
}

// Run binds cfg.Listen (and dtls_listen), calls ready once listening, and serves until ctx
// ends. Then it stops taking requests (5.03), lets the requests in flight
// finish (each is bounded by AckTimeout), stops the server and returns nil
// once every goroutine it started has exited. It returns an error if it
// cannot bind or the server fails; the supervisor retries.
func (a *Adapter) Run(ctx context.Context, bus *bridge.Bus, ready func()) error {
	if bus == nil {
		return errors.New("coap: nil bus")
	}
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("coap: Run is already running")
	}
	defer a.running.Store(false)

	// [[coap.device]] clients (client.go): stopped when Run returns.
	stopDevices := a.startDevices(ctx, bus)
	defer stopDevices()
	if a.cfg.Listen == "" && a.cfg.DTLSListen == "" { // devices only: no server
		if ready != nil {
			ready()
		}
		<-ctx.Done()
		return nil
	}

	var l *coapNet.UDPConn // nil: DTLS only
	var laddr *net.UDPAddr
	if a.cfg.Listen != "" {
		var err error
		if l, err = coapNet.NewListenUDP("udp", a.cfg.Listen); err != nil {
			return fmt.Errorf("coap: listen on udp %s: %w", a.cfg.Listen, err)
		}
		laddr, _ = l.LocalAddr().(*net.UDPAddr)
	}
	dtlsEnd, err := a.listenDTLS() // dtls.go; nil without dtls_listen
	if err != nil {
		if l != nil {
			_ = l.Close()
		}
		return err
	}

	// The server outlives ctx by the drain: responses to requests in
	// flight are still written after ctx ends.
	srvCtx, srvCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer srvCancel()
	rs := newRunState(a, srvCtx, bus)
	// The same handlers, limits and housekeeping for UDP and DTLS
	// (server.go serverOptions).
	srv := udp.NewServer(udpOptions(rs.serverOptions(peerIdle))...)
	serveErr := make(chan error, 1)
	udpErr := serveErr // nil: no UDP server
	if l == nil {
		udpErr = nil
		serveErr <- nil // for the wait below
	} else if !rs.start(func() { serveErr <- srv.Serve(l) }) {
		_ = l.Close()
		dtlsEnd.stop()
		return errors.New("coap: cannot start server")
	}
	dtlsEnd.serve(rs)

	a.addr.Store(laddr)
	defer a.addr.Store(nil)
	if l != nil {
		a.log.Info("coap server listening", "listen", laddr.String(), "max_payload", a.maxPayload)
	}
	if ready != nil {
		ready()
	}

	var failed error
	select {
	case <-ctx.Done():
	case err := <-udpErr:
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		failed = fmt.Errorf("coap: server on %s: %w", laddr, err)
		serveErr <- nil // for the wait below
	case err := <-dtlsEnd.errs():
		failed = fmt.Errorf("coap: dtls server on %s: %w", a.cfg.DTLSListen, err)
	}
	rs.drain(a.ackTimeout + time.Second)
	srvCancel()
	srv.Stop()
	dtlsEnd.stop()
	if l != nil {
		_ = l.Close() // Stop closes the listener only if Serve had set it up
	}
	if err := <-serveErr; err != nil && failed == nil {
		a.log.Warn("coap server stopped with error", "err", err)
	}
	rs.close()
	if failed != nil {
		return failed
	}
	a.log.Info("coap server stopped")
	return nil
}

// libError receives go-coap's errors (instead of its default, which prints
// to stdout): a warning at most every 10s (counting
// the others), the rest at debug.
func (a *Adapter) libError(err error) {
	a.stats.libErrors.Add(1)
	if ok, suppressed := a.libErrors.Allow(time.Now()); ok {
		a.log.Warn("coap protocol error", "err", err, "suppressed", suppressed)
		return
	}
	a.log.Debug("coap protocol error", "err", err)
}
