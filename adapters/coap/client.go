package coap

// The gateway as a CoAP client of devices: [[coap.device]].
//
// One goroutine per device (run) owns its connection: it dials (coap:// over
// UDP, coaps:// over DTLS with a pre-shared key), then either observes the
// resource (RFC 7641) or polls it with GET, and on any failure closes the
// connection, reports the device offline and dials again after a backoff
// (1 s doubling up to interval, at most 60 s). go-coap runs two goroutines
// per connection (its read loop and its message reader); retransmissions of
// every connection of an adapter are driven by one shared housekeeping
// goroutine (devHousekeeper) instead of go-coap's goroutine per connection.
//
// Observe. A GET with Observe 0 registers; go-coap delivers the response and
// each notification to observation.notify, on the connection's reader
// goroutine, one at a time. Each 2.05 becomes frames (DecodeAll, path
// "/"+device, the Content-Format of the notification, point for bare values)
// sent to the bus before the next notification is read. go-coap does not
// re-register by itself, so the device goroutine re-registers:
//   - every interval (a new registration, then the old one is cancelled);
//   - when no notification came within Max-Age (default 60 s) plus a margin
//     of max(2 s, Max-Age/4) after the last one (the device may have
//     restarted and forgotten us);
//   - when the observation ends: a notification without Observe, an error
//     code (that one is a failure), or the device resetting (RST) it;
//   - when the connection closes or fails (after a backoff, on a new one).
//
// Freshness (RFC 7641 §3.4). Notifications may be reordered on the way.
// conn.process sees every message before go-coap's handler chain; for a
// notification of a known observation it applies observeFresh against the
// last accepted Observe value and counts the stale ones, which go-coap drops
// by the same rule. A retransmitted confirmable notification (same message
// ID) is a duplicate, not stale: go-coap answers it from its cache and it
// never reaches notify. go-coap processes one connection's messages on one
// goroutine, except that a request made while that goroutine is busy starts
// another one; so notify emits under a lock and applies the rule again
// against the last notification emitted: frames enter the bus in Observe
// order, a notification overtaken that way is dropped (and counted) too.
//
// Availability is published on transitions only: online after a successful
// response or notification, offline when a request (registration, GET) fails
// or times out after go-coap's retransmissions, when the device answers an
// error code, or when the connection is lost; offline too when Run stops.
//
// Commands (Adapter.Command) are a PUT of a JSON object of point → value to
// command_path on the device, on a connection of their own for the length
// of the command.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/logging"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	coapConfig "github.com/plgd-dev/go-coap/v3/options/config"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// devTiming are the client's protocol timings. Tests shorten them.
type devTiming struct {
	// ackTimeout and maxRetransmit are CoAP's ACK_TIMEOUT and
	// MAX_RETRANSMIT for confirmable requests (RFC 7252: 2 s, 4).
	ackTimeout    time.Duration
	maxRetransmit uint32
	// request bounds one request (registration, GET, PUT, deregistration)
	// with its retransmissions: MAX_TRANSMIT_WAIT, 93 s by default.
	request time.Duration
	// handshake bounds a DTLS handshake.
	handshake time.Duration
	// backoffMin is the first wait after a failure; it doubles up to the
	// device's interval, at most backoffMax.
	backoffMin, backoffMax time.Duration
	// silenceMargin is the least time added to a notification's Max-Age
	// before a silent observation is registered again.
	silenceMargin time.Duration
	// cancel bounds the deregistration of an observation replaced by a new
	// one, or left when the adapter stops.
	cancel, cancelAtStop time.Duration
	// housekeeping is the period of go-coap's retransmission checks.
	housekeeping time.Duration
}

var defaultDevTiming = devTiming{
	ackTimeout:    2 * time.Second,
	maxRetransmit: 4,
	request:       93 * time.Second,
	handshake:     10 * time.Second,
	backoffMin:    time.Second,
	backoffMax:    60 * time.Second,
	silenceMargin: 2 * time.Second,
	cancel:        5 * time.Second,
	cancelAtStop:  500 * time.Millisecond,
	housekeeping:  200 * time.Millisecond,
}

const (
	// defaultMaxAge is Max-Age when a notification carries none (RFC 7252).
	defaultMaxAge = 60 * time.Second
	// observeWindow is RFC 7641 §3.4's 128 seconds.
	observeWindow = 128 * time.Second
	// devMaxDiagnostic bounds a device's diagnostic payload quoted in an error.
	devMaxDiagnostic = 200
	// devLogEvery rate-limits the repeated warnings of one device.
	devLogEvery = 10 * time.Second
)

// Errors a request can end with, besides go-coap's.
var (
	errDevReset      = errors.New("the device reset (RST) the request")
	errDevNoAnswer   = errors.New("no answer after retransmissions")
	errDevConnClosed = errors.New("connection closed")
)

// DeviceStats are the counters of one [[coap.device]], kept across restarts
// of Run.
type DeviceStats struct {
	// Online is the availability last published (false before the first).
	Online bool
	// Registrations counts successful Observe registrations, the first and
	// every re-registration.
	Registrations uint64
	// Notifications counts the notifications and poll responses taken.
	Notifications uint64
	// Stale counts notifications dropped because one with a newer Observe
	// sequence number had already been taken (RFC 7641 §3.4).
	Stale uint64
	// Polls counts successful GETs of a polled device.
	Polls uint64
	// Failures counts failed connections, registrations and GETs.
	Failures uint64
	// Frames counts frames accepted downstream.
	Frames uint64
	// BadPayloads counts payloads that could not be decoded (or frames the
	// bus refused).
	BadPayloads uint64
}

type devStats struct {
	registrations, notifications, stale, polls, failures, frames, badPayloads atomic.Uint64
}

// devices are an adapter's [[coap.device]] clients.
type devices struct {
	list   []*deviceClient
	byName map[string]*deviceClient
	avail  bridge.AvailabilityFunc
	timing devTiming
	run    atomic.Pointer[clientRun] // while Run runs
}

// deviceClient is one [[coap.device]].
type deviceClient struct {
	name     string
	point    string
	secure   bool
	hostport string
	path     string
	opts     message.Options // Uri-Query
	cmdPath  string
	cmdPost  bool // POST instead of PUT
	cmdCBOR  bool // a CBOR map instead of a JSON object
	observe  bool
	interval time.Duration
	identity string
	psk      []byte

	log      *slog.Logger // set by start
	logLimit bridge.Limiter
	stats    devStats

	amu    sync.Mutex
	arun   *clientRun // the run that may publish availability
	online int8       // 0 unknown, 1 online, -1 offline
}

// newDevices builds the clients of cfg's devices (validated by the config
// package; checked again here for callers that build a config by hand).
func newDevices(cfg []config.CoAPDevice, avail bridge.AvailabilityFunc) (*devices, error) {
	ds := &devices{byName: make(map[string]*deviceClient, len(cfg)), avail: avail, timing: defaultDevTiming}
	var errs []error
	for i, c := range cfg {
		d, err := newDeviceClient(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("device[%d] %q: %w", i, c.Device, err))
			continue
		}
		if _, dup := ds.byName[d.name]; dup {
			errs = append(errs, fmt.Errorf("device[%d]: device %q is defined twice", i, d.name))
			continue
		}
		ds.list = append(ds.list, d)
		ds.byName[d.name] = d
	}
	return ds, errors.Join(errs...)
}

func newDeviceClient(c config.CoAPDevice) (*deviceClient, error) {
	d := &deviceClient{
		name: c.Device, point: c.Point, cmdPath: c.CommandPath, observe: c.Observe,
		cmdPost: c.CommandMethod == "POST", cmdCBOR: c.CommandFormat == "cbor",
		interval: c.Interval.D(), identity: c.PSKIdentity,
		logLimit: bridge.Limiter{Every: devLogEvery},
	}
	if err := ValidDeviceName(d.name); err != nil {
		return nil, err
	}
	if d.point == "" {
		d.point = DefaultPoint
	}
	if err := ValidPointName(d.point); err != nil {
		return nil, fmt.Errorf("point: %w", err)
	}
	if d.interval <= 0 {
		d.interval = 10 * time.Second
	}
	if d.cmdPath != "" && !strings.HasPrefix(d.cmdPath, "/") {
		return nil, fmt.Errorf("command_path %q must start with \"/\"", d.cmdPath)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	port := u.Port()
	switch strings.ToLower(u.Scheme) {
	case "coap":
		if port == "" {
			port = "5683"
		}
		if c.PSKIdentity != "" || c.PSKKey != "" {
			return nil, errors.New("psk_identity and psk_key need a coaps:// url")
		}
	case "coaps":
		d.secure = true
		if port == "" {
			port = "5684"
		}
		if c.PSKIdentity == "" || c.PSKKey == "" {
			return nil, errors.New("a coaps:// url needs psk_identity and psk_key")
		}
		if d.psk, err = hex.DecodeString(string(c.PSKKey)); err != nil || len(d.psk) == 0 {
			return nil, errors.New("psk_key is not hex")
		}
	default:
		return nil, fmt.Errorf("url %q: use coap:// or coaps://", c.URL)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("url %q has no host", c.URL)
	}
	d.hostport = net.JoinHostPort(u.Hostname(), port)
	d.path = u.Path
	if d.path == "" {
		d.path = "/"
	}
	if u.RawQuery != "" {
		for _, q := range strings.Split(u.RawQuery, "&") {
			if q, err := url.QueryUnescape(q); err == nil && q != "" {
				d.opts = append(d.opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
			}
		}
	}
	return d, nil
}

// DeviceStats returns the counters of one [[coap.device]].
func (a *Adapter) DeviceStats(device string) (DeviceStats, bool) {
	if a.devs == nil {
		return DeviceStats{}, false
	}
	d, ok := a.devs.byName[device]
	if !ok {
		return DeviceStats{}, false
	}
	s := &d.stats
	d.amu.Lock()
	online := d.online == 1
	d.amu.Unlock()
	return DeviceStats{
		Online:        online,
		Registrations: s.registrations.Load(),
		Notifications: s.notifications.Load(),
		Stale:         s.stale.Load(),
		Polls:         s.polls.Load(),
		Failures:      s.failures.Load(),
		Frames:        s.frames.Load(),
		BadPayloads:   s.badPayloads.Load(),
	}, true
}

// HasCommandDevices reports whether a device of the block has a
// command_path: whether the adapter takes commands.
func (a *Adapter) HasCommandDevices() bool {
	if a.devs == nil {
		return false
	}
	for _, d := range a.devs.list {
		if d.cmdPath != "" {
			return true
		}
	}
	return false
}

// clientRun is the client side of one Run.
type clientRun struct {
	a      *Adapter
	bus    *bridge.Bus
	ctx    context.Context // ends when Run stops
	hk     devHousekeeper
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // device goroutines and commands
}

// startDevices starts one goroutine per device. The returned function stops
// them (ctx should have ended, else it cancels them), waits for them and for
// the commands in flight, and reports the devices offline.
func (a *Adapter) startDevices(ctx context.Context, bus *bridge.Bus) (stop func()) {
	ds := a.devs
	if ds == nil || len(ds.list) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	rs := &clientRun{a: a, bus: bus, ctx: ctx}
	hkCtx, hkCancel := context.WithCancel(context.Background())
	hkDone := make(chan struct{})
	go func() {
		defer close(hkDone)
		rs.hk.run(hkCtx, ds.timing.housekeeping)
	}()
	for _, d := range ds.list {
		if d.log == nil { // once: goroutines of a previous Run may still log
			d.log = a.log.With("device", d.name)
		}
		d.amu.Lock()
		d.arun = rs
		d.amu.Unlock()
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			d.run(rs)
		}()
	}
	ds.run.Store(rs)
	return func() {
		ds.run.CompareAndSwap(rs, nil)
		rs.mu.Lock()
		rs.closed = true
		rs.mu.Unlock()
		cancel()
		rs.wg.Wait()
		for _, d := range ds.list {
			d.amu.Lock()
			if d.online == 1 {
				d.online = -1
				if ds.avail != nil {
					ds.avail(d.name, false)
				}
			}
			d.arun = nil
			d.amu.Unlock()
		}
		hkCancel()
		<-hkDone
	}
}

// acquire registers a command with the run, unless it is stopping.
func (rs *clientRun) acquire() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return false
	}
	rs.wg.Add(1)
	return true
}

// devHousekeeper is go-coap's PeriodicRunner for every connection of a Run:
// one goroutine calls each registered function every period until it
// returns false (its connection closed).
type devHousekeeper struct {
	mu sync.Mutex
	fs []func(time.Time) bool
}

func (h *devHousekeeper) add(f func(time.Time) bool) {
	h.mu.Lock()
	h.fs = append(h.fs, f)
	h.mu.Unlock()
}

func (h *devHousekeeper) run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	var fs []func(time.Time) bool
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.mu.Lock()
			fs = append(fs[:0], h.fs...)
			h.mu.Unlock()
			var done map[int]bool
			for i, f := range fs {
				if !f(now) {
					if done == nil {
						done = map[int]bool{}
					}
					done[i] = true
				}
			}
			if done != nil {
				h.mu.Lock()
				// Functions added meanwhile are after len(fs).
				kept := h.fs[:0]
				for i, f := range h.fs {
					if !done[i] {
						kept = append(kept, f)
					}
				}
				clear(h.fs[len(kept):])
				h.fs = kept
				h.mu.Unlock()
			}
			clear(fs)
		}
	}
}

// run is the device goroutine: connect, observe or poll, and after a
// failure back off and start again, until rs.ctx ends.
func (d *deviceClient) run(rs *clientRun) {
	ctx := rs.ctx
	t := rs.a.devs.timing
	maxWait := min(max(d.interval, t.backoffMin), t.backoffMax)
	wait := t.backoffMin
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var ok bool
		c, err := d.connect(ctx, rs)
		if err == nil {
			if d.observe {
				ok, err = c.observeLoop(ctx)
			} else {
				ok, err = c.pollLoop(ctx)
			}
			c.close()
		}
		if ctx.Err() != nil {
			return
		}
		if ok {
			wait = t.backoffMin
		}
		d.failed(rs, err, wait)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// failed reports a failure: offline, and a warning (the first after being
// online, else at most every 10 s).
func (d *deviceClient) failed(rs *clientRun, err error, retry time.Duration) {
	d.stats.failures.Add(1)
	if d.setOnline(rs, false) {
		d.log.Warn("coap device offline", "url", d.url(), "err", err, "retry_in", retry)
		return
	}
	if ok, n := d.logLimit.Allow(time.Now()); ok {
		d.log.Warn("coap device unreachable", "url", d.url(), "err", err, "retry_in", retry, "suppressed", n)
		return
	}
	d.log.Debug("coap device unreachable", "err", err, "retry_in", retry)
}

func (d *deviceClient) url() string {
	s := "coap://"
	if d.secure {
		s = "coaps://"
	}
	return s + d.hostport + d.path
}

// setOnline publishes a transition; it reports whether there was one.
func (d *deviceClient) setOnline(rs *clientRun, online bool) bool {
	d.amu.Lock()
	defer d.amu.Unlock()
	if d.arun != rs || rs == nil {
		return false // Run stopped
	}
	want := int8(-1)
	if online {
		want = 1
	}
	if d.online == want {
		return false
	}
	d.online = want
	if avail := rs.a.devs.avail; avail != nil {
		avail(d.name, online)
	}
	if online {
		d.log.Info("coap device online", "url", d.url())
	}
	return true
}

// conn is one connection to a device and the observations on it.
type conn struct {
	d  *deviceClient
	rs *clientRun
	cc *udpClient.Conn

	mu        sync.Mutex
	obs       map[uint64]*observation // by token hash
	gen       uint64                  // of the newest observation
	delivered uint64                  // newest generation that delivered
	abort     context.CancelCauseFunc // the request in flight: cancelled by an RST
	lastErr   error                   // the last error go-coap reported
	errSeen   chan struct{}           // signalled when go-coap reports one
}

// connect dials the device: UDP, or DTLS with the pre-shared key (the
// handshake is done here, so a wrong key fails here).
func (d *deviceClient) connect(ctx context.Context, rs *clientRun) (*conn, error) {
	t := rs.a.devs.timing
	c := &conn{d: d, rs: rs, obs: map[uint64]*observation{}, errSeen: make(chan struct{}, 1)}
	opts := []udp.Option{
		// The connection is closed by close, not by ctx: an observation
		// is deregistered when Run stops.
		options.WithContext(context.WithoutCancel(ctx)),
		options.WithErrors(c.libError),
		options.WithPeriodicRunner(rs.hk.add),
		options.WithTransmission(1, t.ackTimeout, t.maxRetransmit),
		options.WithProcessReceivedMessageFunc(c.process),
	}
	if !d.secure {
		cc, err := udp.Dial(d.hostport, opts...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", d.hostport, err)
		}
		c.cc = cc
		return c, nil
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, "udp", d.hostport)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.hostport, err)
	}
	psk := d.psk
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(raw), raw.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
		piondtls.WithPSKIdentityHint([]byte(d.identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256),
		piondtls.WithLoggerFactory(devDTLSLogFactory{d.log}),
	)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("DTLS client for %s: %w", d.hostport, err)
	}
	hctx, cancel := context.WithTimeout(ctx, t.handshake)
	err = dc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = dc.Close()
		if ctx.Err() == nil && hctx.Err() != nil {
			// DTLS silently drops records it cannot authenticate: a
			// wrong key looks like a device that stopped answering.
			return nil, fmt.Errorf("DTLS handshake with %s (psk_identity %q): no answer within %v: wrong psk_identity or psk_key, or the device is down", d.hostport, d.identity, t.handshake)
		}
		return nil, fmt.Errorf("DTLS handshake with %s (psk_identity %q): %w", d.hostport, d.identity, err)
	}
	c.cc = coapdtls.Client(dc, append(opts, options.WithCloseSocket())...)
	return c, nil
}

func (c *conn) close() { _ = c.cc.Close() }

// libError receives go-coap's errors for this connection.
func (c *conn) libError(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	select {
	case c.errSeen <- struct{}{}:
	default:
	}
	c.d.log.Debug("coap client error", "err", err)
}

// process sees every message received on the connection before go-coap's
// handler chain (which acknowledges it and delivers it to its observation).
func (c *conn) process(req *pool.Message, cc *udpClient.Conn, h coapConfig.HandlerFunc[*udpClient.Conn]) {
	switch {
	case req.Type() == message.Reset:
		c.mu.Lock()
		abort := c.abort
		c.mu.Unlock()
		if abort != nil {
			abort(errDevReset)
		}
	case uint8(req.Code())>>5 >= 2: // a response
		c.mu.Lock()
		o := c.obs[req.Token().Hash()]
		c.mu.Unlock()
		if o != nil {
			o.inspect(req)
		}
	}
	cc.ProcessReceivedMessageWithHandler(req, h)
}

// request returns the context of one request: bounded by the request
// timeout, and cancelled when the device answers with an RST.
func (c *conn) request(ctx context.Context, timeout time.Duration) (context.Context, func()) {
	cctx, abort := context.WithCancelCause(ctx)
	tctx, cancel := context.WithTimeoutCause(cctx, timeout, errDevNoAnswer)
	c.mu.Lock()
	c.abort = abort
	c.mu.Unlock()
	return tctx, func() {
		c.mu.Lock()
		c.abort = nil
		c.mu.Unlock()
		cancel()
		abort(nil)
	}
}

// requestError explains why a request failed.
func (c *conn) requestError(what string, ctx, rctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case rctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, context.Cause(rctx))
	case c.cc.Context().Err() != nil:
		// go-coap reports why its read loop ended just after closing.
		select {
		case <-c.errSeen:
		case <-time.After(50 * time.Millisecond):
		}
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return fmt.Errorf("%s: %w: %v", what, errDevConnClosed, last)
		}
		return fmt.Errorf("%s: %w", what, errDevConnClosed)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// observation is one Observe registration.
type observation struct {
	c   *conn
	gen uint64
	obs interface {
		Cancel(context.Context, ...message.Option) error
	}
	ended chan struct{} // closed when the device ends it

	emitMu  sync.Mutex // held while a notification is emitted
	emitted observeSeq // of the last notification emitted; under emitMu

	mu            sync.Mutex
	seq           observeSeq // of the last notification go-coap takes
	mids          [16]int32  // message IDs seen lately, to tell retransmissions
	nmids         int
	staleMID      int32
	hasStale      bool
	delivered     int
	failure       error // an error code the device answered
	notObservable bool  // the first response had no Observe option
	endOnce       sync.Once
	lastAt        time.Time
	maxAge        time.Duration
}

func (c *conn) newObservation(token message.Token) *observation {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	o := &observation{c: c, gen: c.gen, ended: make(chan struct{}), staleMID: -1}
	c.obs[token.Hash()] = o
	return o
}

func (c *conn) forget(o *observation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.obs {
		if v == o {
			delete(c.obs, k)
		}
	}
}

// inspect runs on the reader goroutine before go-coap's handler for every
// response carrying this observation's token.
func (o *observation) inspect(req *pool.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	mid := req.MessageID()
	for i := range min(o.nmids, len(o.mids)) {
		if o.mids[i] == mid {
			return // a retransmission: go-coap answers it from its cache
		}
	}
	o.mids[o.nmids%len(o.mids)] = mid
	o.nmids++
	if uint8(req.Code())>>5 >= 4 {
		o.failure = responseError(req)
		return
	}
	v, err := req.Observe()
	if err != nil {
		return // the last response of the observation
	}
	if prev, accepted := o.seq.accept(v, time.Now()); !accepted {
		o.staleMID, o.hasStale = mid, true
		o.c.d.stats.stale.Add(1)
		o.c.d.log.Debug("stale notification dropped", "observe", v, "last", prev)
	}
}

// notify is go-coap's observe callback: the response to the registration
// and each notification go-coap found fresh, on the reader goroutine.
func (o *observation) notify(r *pool.Message) {
	c := o.c
	c.mu.Lock()
	if o.gen < c.delivered {
		c.mu.Unlock()
		return // superseded by a newer registration
	}
	c.delivered = o.gen
	c.mu.Unlock()

	// go-coap may process the next message on a new reader goroutine
	// while this one waits for the bus (when a request is made meanwhile):
	// frames enter the bus one at a time, in Observe order.
	o.emitMu.Lock()
	defer o.emitMu.Unlock()
	v, obsErr := r.Observe()
	now := time.Now()
	o.mu.Lock()
	stale := obsErr == nil && o.hasStale && r.MessageID() == o.staleMID // counted by inspect
	first := o.delivered == 0
	o.delivered++
	o.mu.Unlock()
	if stale {
		return
	}
	if obsErr == nil {
		if prev, fresh := o.emitted.accept(v, now); !fresh {
			c.d.stats.stale.Add(1)
			c.d.log.Debug("stale notification dropped", "observe", v, "last", prev)
			return
		}
	}
	if uint8(r.Code())>>5 != 2 {
		o.end(false)
		return
	}
	age := defaultMaxAge
	if v, err := r.GetOptionUint32(message.MaxAge); err == nil {
		age = time.Duration(v) * time.Second
	}
	o.mu.Lock()
	o.lastAt, o.maxAge = now, age
	o.mu.Unlock()
	c.d.setOnline(c.rs, true)
	if r.Code() != codes.Valid {
		c.d.stats.notifications.Add(1)
		c.d.emit(c.rs, r)
	}
	if obsErr != nil {
		o.end(first)
	}
}

func (o *observation) end(notObservable bool) {
	o.endOnce.Do(func() {
		o.mu.Lock()
		o.notObservable = notObservable
		o.mu.Unlock()
		close(o.ended)
	})
}

// silentUntil is when the observation counts as silent.
func (o *observation) silentUntil(margin time.Duration) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastAt.Add(o.maxAge + max(margin, o.maxAge/4))
}

// register sends a GET with Observe 0 and waits for the first response.
func (c *conn) register(ctx context.Context) (*observation, error) {
	d := c.d
	rctx, done := c.request(ctx, c.rs.a.devs.timing.request)
	defer done()
	req, err := c.cc.NewObserveRequest(rctx, d.path, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("observe %s: %w", d.path, err)
	}
	defer c.cc.ReleaseMessage(req)
	o := c.newObservation(req.Token())
	obs, err := c.cc.DoObserve(req, o.notify)
	if err != nil {
		c.forget(o)
		o.mu.Lock()
		failure := o.failure
		o.mu.Unlock()
		if failure != nil {
			return nil, fmt.Errorf("observe %s: %w", d.path, failure)
		}
		return nil, c.requestError("observe "+d.path, ctx, rctx, err)
	}
	o.obs = obs
	// go-coap delivers the first response before or after DoObserve
	// returns; until it does, silence is measured from now.
	o.mu.Lock()
	if o.lastAt.IsZero() {
		o.lastAt, o.maxAge = time.Now(), defaultMaxAge
	}
	o.mu.Unlock()
	d.stats.registrations.Add(1)
	return o, nil
}

// deregister cancels an observation (GET with Observe 1), best effort.
func (c *conn) deregister(ctx context.Context, o *observation, timeout time.Duration) {
	defer c.forget(o)
	if o.obs == nil || c.cc.Context().Err() != nil {
		return
	}
	rctx, done := c.request(ctx, timeout)
	defer done()
	if err := o.obs.Cancel(rctx); err != nil {
		c.d.log.Debug("observation not cancelled", "err", err)
	}
}

// observeLoop registers and keeps the observation alive until ctx ends
// (nil) or a request or the connection fails. ok reports whether any
// registration succeeded.
func (c *conn) observeLoop(ctx context.Context) (ok bool, err error) {
	d, t := c.d, c.rs.a.devs.timing
	every := time.NewTimer(d.interval)
	defer every.Stop()
	silence := time.NewTimer(time.Hour)
	defer silence.Stop()
	var cur *observation
	defer func() {
		if cur != nil && ctx.Err() != nil {
			c.deregister(context.WithoutCancel(ctx), cur, t.cancelAtStop)
		}
	}()
	reason := "start"
	for {
		o, err := c.register(ctx)
		if err != nil {
			return ok, err
		}
		ok = true
		d.log.Debug("observing", "path", d.path, "reason", reason)
		if cur != nil {
			c.deregister(ctx, cur, t.cancel)
		}
		cur = o
		every.Reset(d.interval)
		silence.Reset(time.Until(o.silentUntil(t.silenceMargin)))
		ended := o.ended
	wait:
		for {
			select {
			case <-ctx.Done():
				return ok, nil
			case <-c.cc.Done():
				return ok, c.requestError("observe "+d.path, ctx, ctx, errDevConnClosed)
			case <-every.C:
				reason = "interval"
				break wait
			case <-silence.C:
				if until := o.silentUntil(t.silenceMargin); time.Now().Before(until) {
					silence.Reset(time.Until(until))
					continue
				}
				reason = "silence"
				d.log.Debug("no notification within Max-Age; registering again")
				break wait
			case <-ended:
				ended = nil
				o.mu.Lock()
				failure, notObservable := o.failure, o.notObservable
				o.mu.Unlock()
				if failure != nil {
					return ok, fmt.Errorf("observe %s: %w", d.path, failure)
				}
				if notObservable {
					// Not observable: the response was the value;
					// fetch it again at the next interval.
					if ok, _ := d.logLimit.Allow(time.Now()); ok {
						d.log.Info("coap device resource is not observable; registering again every interval", "path", d.path)
					}
					silence.Stop()
					continue
				}
				reason = "cancelled by the device"
				d.log.Debug("observation ended by the device; registering again")
				break wait
			}
		}
	}
}

// pollLoop GETs the resource at start and then every interval, until ctx
// ends (nil) or a GET fails.
func (c *conn) pollLoop(ctx context.Context) (ok bool, err error) {
	d := c.d
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := time.Now()
	for {
		if err := c.get(ctx); err != nil {
			return ok, err
		}
		ok = true
		now := time.Now()
		for next = next.Add(d.interval); !next.After(now); next = next.Add(d.interval) {
		}
		timer.Reset(next.Sub(now))
		select {
		case <-ctx.Done():
			return ok, nil
		case <-c.cc.Done():
			return ok, c.requestError("GET "+d.path, ctx, ctx, errDevConnClosed)
		case <-timer.C:
		}
	}
}

func (c *conn) get(ctx context.Context) error {
	d := c.d
	rctx, done := c.request(ctx, c.rs.a.devs.timing.request)
	defer done()
	resp, err := c.cc.Get(rctx, d.path, d.opts...)
	if err != nil {
		return c.requestError("GET "+d.path, ctx, rctx, err)
	}
	defer c.cc.ReleaseMessage(resp)
	if uint8(resp.Code())>>5 != 2 {
		return fmt.Errorf("GET %s: %w", d.path, responseError(resp))
	}
	d.stats.polls.Add(1)
	d.setOnline(c.rs, true)
	if resp.Code() != codes.Valid {
		d.stats.notifications.Add(1)
		d.emit(c.rs, resp)
	}
	return nil
}

// emit decodes a response into frames and sends them to the bus, waiting
// for each to be accepted downstream (bounded by AckTimeout).
func (d *deviceClient) emit(rs *clientRun, r *pool.Message) {
	a := rs.a
	cf := FormatNone
	if mt, err := r.ContentFormat(); err == nil {
		cf = int(mt)
	}
	var payload []byte
	if r.Body() != nil {
		var err error
		if payload, err = r.ReadBody(); err != nil {
			d.bad(fmt.Errorf("cannot read payload: %w", err))
			return
		}
	}
	if int64(len(payload)) > a.maxPayload {
		d.bad(fmt.Errorf("payload of %d bytes is larger than max_payload (%d)", len(payload), a.maxPayload))
		return
	}
	_, readings, err := DecodeAll("/"+d.name, cf, payload, d.point, time.Now())
	if err != nil {
		d.bad(err)
		return
	}
	for _, rd := range readings {
		f := bridge.Frame{Adapter: a.cfg.Name, Device: d.name, Time: rd.Time, Points: rd.Points}
		ctx, cancel := context.WithTimeout(rs.ctx, a.ackTimeout)
		err := rs.bus.SendAndWait(ctx, f)
		cancel()
		if err != nil {
			if rs.ctx.Err() != nil {
				return
			}
			d.stats.badPayloads.Add(1)
			if ok, n := d.logLimit.Allow(time.Now()); ok {
				d.log.Warn("coap device reading not accepted", "err", err, "suppressed", n)
			}
			continue
		}
		d.stats.frames.Add(1)
	}
}

func (d *deviceClient) bad(err error) {
	d.stats.badPayloads.Add(1)
	if ok, n := d.logLimit.Allow(time.Now()); ok {
		d.log.Warn("coap device payload not decoded", "err", err, "suppressed", n)
		return
	}
	d.log.Debug("coap device payload not decoded", "err", err)
}

// Command implements bridge.Commander: a PUT of a JSON object of the
// command's values (Content-Format 50) to the device's command_path. A 2.xx
// answer is success, with the values written; a 4.xx/5.xx answer is the
// error "device answered 4.04 Not Found: <diagnostic payload>".
func (a *Adapter) Command(ctx context.Context, cmd bridge.Command) ([]bridge.PointValue, error) {
	var d *deviceClient
	if a.devs != nil {
		d = a.devs.byName[cmd.Device]
	}
	if d == nil {
		return nil, fmt.Errorf("no device %s on adapter %s", cmd.Device, a.cfg.Name)
	}
	if d.cmdPath == "" {
		return nil, fmt.Errorf("device %s takes no commands (no command_path)", cmd.Device)
	}
	if len(cmd.Values) == 0 {
		return nil, errors.New("no values to write")
	}
	body, format, err := commandBody(cmd.Values, d.cmdCBOR)
	if err != nil {
		return nil, err
	}

	rs := a.devs.run.Load()
	if rs == nil || !rs.acquire() {
		return nil, fmt.Errorf("coap adapter %s is not running", a.cfg.Name)
	}
	defer rs.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(rs.ctx, cancel)()

	c, err := d.connect(ctx, rs)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.name, err)
	}
	defer c.close()
	rctx, done := c.request(ctx, a.devs.timing.request)
	defer done()
	method, send := "PUT", c.cc.Put
	if d.cmdPost {
		method, send = "POST", c.cc.Post
	}
	resp, err := send(rctx, d.cmdPath, format, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.name, c.requestError(method+" "+d.cmdPath, ctx, rctx, err))
	}
	defer c.cc.ReleaseMessage(resp)
	if uint8(resp.Code())>>5 != 2 {
		return nil, responseError(resp)
	}
	return cmd.Values, nil
}

// commandBody encodes a command's values as one JSON object, or one CBOR
// map (keys in the command's order), and returns its Content-Format.
func commandBody(vals []bridge.PointValue, asCBOR bool) ([]byte, message.MediaType, error) {
	if !asCBOR {
		body := []byte{'{'}
		for i, pv := range vals {
			if i > 0 {
				body = append(body, ',')
			}
			body = bridge.AppendJSONString(body, pv.Name)
			body = append(body, ':')
			body = pv.Value.AppendJSON(body)
		}
		return append(body, '}'), message.AppJSON, nil
	}
	body := cborHead(nil, 5, uint64(len(vals)))
	for _, pv := range vals {
		body = cborHead(body, 3, uint64(len(pv.Name)))
		body = append(body, pv.Name...)
		v := pv.Value
		switch v.Kind {
		case bridge.KindInt:
			if v.Int >= 0 {
				body = cborHead(body, 0, uint64(v.Int))
			} else {
				body = cborHead(body, 1, uint64(-(v.Int + 1)))
			}
		case bridge.KindNumber:
			body = append(body, 0xfb)
			body = binary.BigEndian.AppendUint64(body, math.Float64bits(v.Num))
		case bridge.KindBool:
			if v.Bool {
				body = append(body, 0xf5)
			} else {
				body = append(body, 0xf4)
			}
		case bridge.KindString:
			body = cborHead(body, 3, uint64(len(v.Str)))
			body = append(body, v.Str...)
		case bridge.KindBytes:
			body = cborHead(body, 2, uint64(len(v.Bytes)))
			body = append(body, v.Bytes...)
		default:
			return nil, 0, fmt.Errorf("point %s: no value to write", pv.Name)
		}
	}
	return body, message.AppCBOR, nil
}

// cborHead appends a CBOR item head (RFC 8949 §3): major type and argument.
func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// responseError is "device answered 4.04 Not Found: <diagnostic payload>".
func responseError(r *pool.Message) error {
	c := r.Code()
	msg := "device answered " + codeString(c)
	if name := codeNames[c]; name != "" {
		msg += " " + name
	}
	if r.Body() != nil {
		if b, err := r.ReadBody(); err == nil {
			if diag := diagnostic(b); diag != "" {
				msg += ": " + diag
			}
		}
	}
	return errors.New(msg)
}

// diagnostic makes a device's diagnostic payload fit for a log line or a
// command result: valid UTF-8, no control characters, bounded.
func diagnostic(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 && sb.Len() < devMaxDiagnostic {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size == 1:
			sb.WriteRune(utf8.RuneError)
		case r < 0x20 || r == 0x7f:
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	s := strings.TrimSpace(sb.String())
	if len(b) > 0 {
		s += "…"
	}
	return s
}

// codeNames are RFC 7252's (and RFC 8132's, RFC 8516's) names of the
// response codes.
var codeNames = map[codes.Code]string{
	codes.Created: "Created", codes.Deleted: "Deleted", codes.Valid: "Valid", codes.Changed: "Changed",
	codes.Content: "Content", codes.Continue: "Continue",
	codes.BadRequest: "Bad Request", codes.Unauthorized: "Unauthorized", codes.BadOption: "Bad Option",
	codes.Forbidden: "Forbidden", codes.NotFound: "Not Found", codes.MethodNotAllowed: "Method Not Allowed",
	codes.NotAcceptable: "Not Acceptable", codes.RequestEntityIncomplete: "Request Entity Incomplete",
	codes.Conflict: "Conflict", codes.PreconditionFailed: "Precondition Failed",
	codes.RequestEntityTooLarge: "Request Entity Too Large", codes.UnsupportedMediaType: "Unsupported Content-Format",
	codes.UnprocessableEntity: "Unprocessable Entity", codes.TooManyRequests: "Too Many Requests",
	codes.InternalServerError: "Internal Server Error", codes.NotImplemented: "Not Implemented",
	codes.BadGateway: "Bad Gateway", codes.ServiceUnavailable: "Service Unavailable",
	codes.GatewayTimeout: "Gateway Timeout", codes.ProxyingNotSupported: "Proxying Not Supported",
}

// observeSeq is the freshness state of one observation.
type observeSeq struct {
	have bool
	v    uint32
	at   time.Time
}

// accept takes Observe value v received at t if it is fresher than the last
// one taken (the first always is); it returns the last value taken before.
func (s *observeSeq) accept(v uint32, t time.Time) (prev uint32, fresh bool) {
	prev = s.v
	if s.have && !observeFresh(s.v, s.at, v, t) {
		return prev, false
	}
	s.have, s.v, s.at = true, v, t
	return prev, true
}

// observeFresh is RFC 7641 §3.4: a notification with the 24-bit Observe
// value v2 received at t2 is newer than one with v1 received at t1 if
//
//	(v1 < v2 and v2 - v1 < 2^23) or
//	(v1 > v2 and v1 - v2 > 2^23) or
//	t2 > t1 + 128 seconds.
func observeFresh(v1 uint32, t1 time.Time, v2 uint32, t2 time.Time) bool {
	const mask = 1<<24 - 1
	v1, v2 = v1&mask, v2&mask
	switch {
	case v1 < v2 && v2-v1 < 1<<23:
		return true
	case v1 > v2 && v1-v2 > 1<<23:
		return true
	}
	return t2.Sub(t1) > observeWindow
}

// devDTLSLogFactory sends pion/dtls's log lines to the device's log, at
// debug level (pion's default would print to stdout).
type devDTLSLogFactory struct{ log *slog.Logger }

func (f devDTLSLogFactory) NewLogger(scope string) logging.LeveledLogger {
	l := f.log
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return devDTLSLogger{l.With("dtls", scope)}
}

type devDTLSLogger struct{ log *slog.Logger }

func (l devDTLSLogger) Trace(string)              {}
func (l devDTLSLogger) Tracef(string, ...any)     {}
func (l devDTLSLogger) Debug(msg string)          { l.log.Debug(msg) }
func (l devDTLSLogger) Debugf(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l devDTLSLogger) Info(msg string)           { l.log.Debug(msg) }
func (l devDTLSLogger) Infof(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l devDTLSLogger) Warn(msg string)           { l.log.Debug(msg) }
func (l devDTLSLogger) Warnf(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l devDTLSLogger) Error(msg string)          { l.log.Debug(msg) }
func (l devDTLSLogger) Errorf(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
