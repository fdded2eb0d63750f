package coap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

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
}

var _ bridge.Adapter = (*Adapter)(nil)

// New validates cfg and returns an adapter. It does no I/O. Zero values
// take CONFIG.md's defaults (name "coap", listen "0.0.0.0:5683", max_payload
// 16KiB). DTLS, pre-shared keys and client devices are not implemented yet
// and are refused rather than silently ignored.
func New(cfg config.CoAP, deps Deps) (*Adapter, error) {
	if cfg.Name == "" {
		cfg.Name = "coap"
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	var errs []error
	if err := bridge.CheckAdapterName(cfg.Name); err != nil {
		errs = append(errs, err)
	}
	if host, port, err := net.SplitHostPort(cfg.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", cfg.Listen, err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: port %q is not a number from 0 to 65535", cfg.Listen, port))
	} else if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		errs = append(errs, fmt.Errorf("listen %q: %q is not an IP address or host name", cfg.Listen, host))
	}
	if cfg.MaxPayload < 0 || cfg.MaxPayload > MaxMaxPayload {
		errs = append(errs, fmt.Errorf("max_payload %d is out of range (1 B to %d MiB)", cfg.MaxPayload, MaxMaxPayload>>20))
	}
	if cfg.DTLSListen != "" {
		errs = append(errs, errors.New("dtls_listen: DTLS is not implemented yet"))
	}
	if len(cfg.PSK) > 0 {
		errs = append(errs, errors.New("psk: DTLS is not implemented yet"))
	}
	if len(cfg.Devices) > 0 {
		errs = append(errs, errors.New("device: the CoAP client (observe/poll) is not implemented yet"))
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
	}
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

// Run binds cfg.Listen, calls ready once listening, and serves until ctx
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

	l, err := coapNet.NewListenUDP("udp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("coap: listen on udp %s: %w", a.cfg.Listen, err)
	}
	laddr, _ := l.LocalAddr().(*net.UDPAddr)

	// The server outlives ctx by the drain: responses to requests in
	// flight are still written after ctx ends.
	srvCtx, srvCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer srvCancel()
	rs := newRunState(a, srvCtx, bus)
	srv := udp.NewServer(
		options.WithContext(srvCtx),
		options.WithHandlerFunc(rs.serve),
		options.WithProcessReceivedMessageFunc(rs.dispatch),
		options.WithErrors(a.libError),
		options.WithPeriodicRunner(rs.periodic),
		options.WithBlockwise(true, blockwise.SZX1024, blockwiseTimeout),
		options.WithBlockwiseReceivingMessagesCacheMaxEntries(blockwiseTransfersPerPeer),
		options.WithOnNewConn(func(cc *udpClient.Conn) { a.log.Debug("coap peer", "peer", cc.RemoteAddr().String()) }),
		// A peer idle this long is forgotten (caches, block-wise state);
		// never while one of its requests may still wait for its frames.
		options.WithInactivityMonitor(max(peerIdle, 2*a.ackTimeout), func(cc *udpClient.Conn) { _ = cc.Close() }),
	)
	serveErr := make(chan error, 1)
	if !rs.start(func() { serveErr <- srv.Serve(l) }) {
		_ = l.Close()
		return errors.New("coap: cannot start server")
	}

	a.addr.Store(laddr)
	defer a.addr.Store(nil)
	a.log.Info("coap server listening", "listen", laddr.String(), "max_payload", a.maxPayload)
	if ready != nil {
		ready()
	}

	var failed error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		failed = fmt.Errorf("coap: server on %s: %w", laddr, err)
		serveErr <- nil // for the wait below
	}
	rs.drain(a.ackTimeout + time.Second)
	srvCancel()
	srv.Stop()
	_ = l.Close() // Stop closes the listener only if Serve had set it up
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
