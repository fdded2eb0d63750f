package coap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpServer "github.com/plgd-dev/go-coap/v3/udp/server"

	"github.com/causeway/causeway/bridge"
)

// How requests flow through go-coap v3 (udp/server/server.go, udp/client/conn.go):
//
//   - Server.Serve is the one UDP read loop. For each datagram it finds the
//     peer's Conn and calls Conn.Process, which decodes it, drops in-flight
//     duplicates (addPendingMessage) and pushes it onto the peer's received
//     queue (16 deep). When that queue is full, the read loop BLOCKS, for
//     every peer.
//   - One goroutine per peer (net/client.ReceivedMessageReader) pops the
//     queue and calls Conn.ProcessReceivedMessage, which calls the configured
//     ProcessReceivedMessage function with the handler chain (handleReq:
//     per-message-ID lock and response cache for deduplication, block-wise
//     reassembly, then our handler). ProcessReceivedMessageWithHandler runs
//     the chain and writes the response when the handler returns.
//
// So a handler that blocks (waiting for the bus acknowledgement) would stall
// its peer's goroutine and, once 16 requests queue up, the read loop. dispatch
// (our ProcessReceivedMessage function) therefore runs each request's chain in
// its own goroutine, at most MaxInFlight at once, and answers 5.03 at once
// beyond. The handler blocks safely there, and go-coap writes its response
// when it returns, as it would have in line.
//
// Duplicates: go-coap forgets its in-flight entry when dispatch returns, so
// a retransmitted CON can reach dispatch while the original still waits for
// its acknowledgement. It then blocks in handleReq on the original's message
// ID lock and, once the original has answered, is answered from the response
// cache (EXCHANGE_LIFETIME, 247s): it never reaches our handler and never
// makes a second frame. TestDuplicateConfirmable checks this.
//
// Order: goroutines may overtake each other, so each request takes a ticket
// in arrival order (dispatch runs on the peer's goroutine, in arrival order)
// and its frames enter the bus only after the previous request of the same
// peer has put its frames on the bus (or finished). Acknowledgements are
// then awaited concurrently.
//
// Non-confirmable requests: go-coap answers them with a confirmable response
// (and retransmits it until acknowledged); nonResponse makes it NON, as RFC
// 7252 §5.2.3 recommends, between the handler chain and the write.
//
// Rejections decided before the chain (4.13 by size, 5.03 when MaxInFlight
// is reached or Run is stopping) are answered in line by reject, which
// builds the response as handleReq would; they bypass the response cache,
// which is harmless: they made no frame.

// runState is the state of one Run: it is discarded when Run returns.
type runState struct {
	a   *Adapter
	bus *bridge.Bus
	ctx context.Context // ends when the server stops, after the drain

	slots chan struct{} // one token per request in flight

	mu       sync.Mutex
	draining bool           // stopping: refuse new requests (5.03)
	closed   bool           // stopped: start no goroutine
	wg       sync.WaitGroup // every goroutine started
	handlers sync.WaitGroup // request goroutines

	order   orderChain
	tickets sync.Map // *responsewriter.ResponseWriter[*udpClient.Conn] → *ticket
}

type writer = responsewriter.ResponseWriter[*udpClient.Conn]

func newRunState(a *Adapter, ctx context.Context, bus *bridge.Bus) *runState {
	return &runState{
		a:     a,
		bus:   bus,
		ctx:   ctx,
		slots: make(chan struct{}, a.maxInFlight),
		order: orderChain{tails: make(map[*udpClient.Conn]*ticket), pending: make(map[exchange]int)},
	}
}

// start runs f in a goroutine tracked by close, unless closed.
func (rs *runState) start(f func()) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return false
	}
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		f()
	}()
	return true
}

// startHandler runs f as a request goroutine, unless draining.
func (rs *runState) startHandler(f func()) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.draining || rs.closed {
		return false
	}
	rs.wg.Add(1)
	rs.handlers.Add(1)
	go func() {
		defer rs.wg.Done()
		defer rs.handlers.Done()
		f()
	}()
	return true
}

// drain refuses new requests and waits up to max for those in flight.
func (rs *runState) drain(max time.Duration) {
	rs.mu.Lock()
	rs.draining = true
	rs.mu.Unlock()
	done := make(chan struct{})
	go func() {
		rs.handlers.Wait()
		close(done)
	}()
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		rs.a.log.Warn("coap: requests still in flight at shutdown", "in_flight", rs.a.stats.inFlight.Load())
	}
	// The waiter ends with the handlers, which end once rs.ctx is
	// canceled; close waits for them.
	rs.start(func() { <-done })
}

// close waits for every goroutine started, and starts no more.
func (rs *runState) close() {
	rs.mu.Lock()
	rs.closed = true
	rs.mu.Unlock()
	rs.wg.Wait()
}

// periodic is go-coap's PeriodicRunner: its default sleeps 4s between runs
// in a goroutine nobody waits for.
func (rs *runState) periodic(f func(now time.Time) bool) {
	rs.start(func() {
		t := time.NewTicker(housekeeping)
		defer t.Stop()
		for {
			select {
			case <-rs.ctx.Done():
				return
			case now := <-t.C:
				if !f(now) {
					return
				}
			}
		}
	})
}

// serverOption is an option of both go-coap servers, UDP and DTLS.
type serverOption interface {
	udpServer.Option
	dtlsServer.Option
}

// serverOptions are the options of the UDP and the DTLS server: the same
// handlers, limits and housekeeping. A peer (or DTLS session) idle for
// idle is forgotten (caches, block-wise state; the session is closed).
func (rs *runState) serverOptions(idle time.Duration) []serverOption {
	a := rs.a
	return []serverOption{
		options.WithContext(rs.ctx),
		options.WithHandlerFunc(rs.serve),
		options.WithProcessReceivedMessageFunc(rs.dispatch),
		options.WithErrors(a.libError),
		options.WithPeriodicRunner(rs.periodic),
		options.WithBlockwise(true, blockwise.SZX1024, blockwiseTimeout),
		options.WithBlockwiseReceivingMessagesCacheMaxEntries(blockwiseTransfersPerPeer),
		options.WithOnNewConn(func(cc *udpClient.Conn) { a.log.Debug("coap peer", "peer", cc.RemoteAddr().String()) }),
		// Never while one of its requests may still wait for its frames:
		// idle is at least twice AckTimeout.
		options.WithInactivityMonitor(max(idle, 2*a.ackTimeout), func(cc *udpClient.Conn) { _ = cc.Close() }),
	}
}

// udpOptions converts serverOptions for udp.NewServer.
func udpOptions(opts []serverOption) []udpServer.Option {
	out := make([]udpServer.Option, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

func isRequest(r *pool.Message) bool {
	return r.Code() >= codes.GET && r.Code() < 32 &&
		(r.Type() == message.Confirmable || r.Type() == message.NonConfirmable)
}

// dispatch is go-coap's ProcessReceivedMessage hook. It runs on the peer's
// goroutine and never blocks: every message is handled in a goroutine of
// its own (even an acknowledgement or reset: go-coap's handleReq takes the
// message ID lock, which a request in flight may hold).
func (rs *runState) dispatch(req *pool.Message, cc *udpClient.Conn, next config.HandlerFunc[*udpClient.Conn]) {
	request := isRequest(req)
	st := &rs.a.stats
	if request {
		if ok, wait := rs.a.limit.allowAddr(cc.RemoteAddr(), time.Now()); !ok {
			rs.tooMany(req, cc, wait) // ratelimit.go
			return
		}
		if size, over := rs.oversized(req); over {
			st.requests.Add(1)
			diag := fmt.Sprintf("payload of %d bytes is larger than max_payload (%d bytes)", size, rs.a.maxPayload)
			rs.logReject(cc.RemoteAddr(), "", codes.RequestEntityTooLarge, diag)
			cc.ProcessReceivedMessageWithHandler(req, rs.reject(codes.RequestEntityTooLarge, diag))
			return
		}
	}
	select {
	case rs.slots <- struct{}{}:
	default:
		rs.refuse(req, cc, request, fmt.Sprintf("too many requests in flight (%d), retry later", rs.a.maxInFlight))
		return
	}
	var t *ticket
	if request {
		t = rs.order.next(cc, req.MessageID())
	}
	st.inFlight.Add(1)
	done := func() {
		t.pass()
		st.inFlight.Add(-1)
		<-rs.slots
	}
	started := rs.startHandler(func() {
		defer done()
		cc.ProcessReceivedMessageWithHandler(req, func(w *writer, r *pool.Message) {
			if t != nil {
				rs.tickets.Store(w, t)
				defer rs.tickets.Delete(w)
			}
			next(w, r)
			nonResponse(w, r)
		})
	})
	if !started {
		done()
		rs.refuse(req, cc, request, "gateway is shutting down, retry later")
	}
}

// refuse answers a request 5.03 at once, or drops another message.
func (rs *runState) refuse(req *pool.Message, cc *udpClient.Conn, request bool, diag string) {
	if !request {
		cc.ReleaseMessage(req)
		return
	}
	rs.a.stats.requests.Add(1)
	rs.a.stats.overloaded.Add(1)
	rs.logReject(cc.RemoteAddr(), "", codes.ServiceUnavailable, diag)
	cc.ProcessReceivedMessageWithHandler(req, rs.reject(codes.ServiceUnavailable, diag))
}

// nonResponse makes the response to a non-confirmable request
// non-confirmable (RFC 7252 §5.2.3 SHOULD). go-coap's handleReq sends it
// confirmable (and would retransmit it until the device acknowledges):
// this runs after handleReq and before go-coap writes the response. Its
// response cache already answers duplicates of a NON request with a NON.
func nonResponse(w *writer, r *pool.Message) {
	if m := w.Message(); r.Type() == message.NonConfirmable && m.IsModified() && m.Type() == message.Confirmable {
		m.SetType(message.NonConfirmable)
	}
}

// oversized reports a request (or Block1 block) whose payload would exceed
// max_payload: the block's end offset, or the announced Size1.
func (rs *runState) oversized(req *pool.Message) (int64, bool) {
	max := rs.a.maxPayload
	if size1, err := req.GetOptionUint32(message.Size1); err == nil && int64(size1) > max {
		return int64(size1), true
	}
	n, err := req.BodySize()
	if err != nil {
		return 0, false
	}
	if b, err := req.GetOptionUint32(message.Block1); err == nil {
		if szx, num, _, err := blockwise.DecodeBlockOption(b); err == nil {
			n += num * szx.Size()
		}
	}
	return n, n > max
}

// reject answers a request without running go-coap's handler chain, so it
// also pairs the response with the request (type and message ID) as
// handleReq would have.
func (rs *runState) reject(code codes.Code, diag string) config.HandlerFunc[*udpClient.Conn] {
	return func(w *writer, r *pool.Message) {
		rs.respond(w, code, diag)
		m := w.Message()
		switch {
		case !m.IsModified() && r.Type() == message.Confirmable:
			// No-Response suppressed the answer: still acknowledge.
			m.SetCode(codes.Empty)
			m.SetToken(nil)
			m.SetType(message.Acknowledgement)
			m.SetMessageID(r.MessageID())
		case !m.IsModified():
		case r.Type() == message.Confirmable:
			m.SetType(message.Acknowledgement)
			m.SetMessageID(r.MessageID())
		default:
			m.SetType(message.NonConfirmable)
			m.SetMessageID(w.Conn().GetMessageID())
		}
	}
}

// maxDiagnostic bounds diagnostic payloads so a response fits one datagram.
const maxDiagnostic = 512

// respond sets the response code and diagnostic payload, and counts it.
func (rs *runState) respond(w *writer, code codes.Code, diag string) {
	if len(diag) > maxDiagnostic {
		cut := maxDiagnostic - 3
		for cut > 0 && !utf8.RuneStart(diag[cut]) {
			cut--
		}
		diag = diag[:cut] + "..."
	}
	var body *bytes.Reader
	if diag != "" {
		body = bytes.NewReader([]byte(diag))
	}
	var err error
	if body != nil {
		err = w.SetResponse(code, message.TextPlain, body)
	} else {
		err = w.SetResponse(code, message.TextPlain, nil)
	}
	if err != nil {
		// The request's No-Response option suppresses this code.
		rs.a.log.Debug("coap response suppressed", "code", codeString(code), "err", err)
	}
	if err == nil && code == codes.RequestEntityTooLarge {
		w.Message().SetOptionUint32(message.Size1, uint32(min(rs.a.maxPayload, 1<<32-1)))
	}
	rs.a.stats.response(code)
	if code == codes.BadRequest {
		rs.a.stats.badPayloads.Add(1)
	}
}

// logReject logs a refused request: at warn at most every 5s (counting the
// others), else at debug.
func (rs *runState) logReject(peer net.Addr, device string, code codes.Code, diag string) {
	args := []any{"peer", peer.String(), "code", codeString(code), "reason", diag}
	if device != "" {
		args = append(args, "device", device)
	}
	if ok, suppressed := rs.a.rejects.Allow(time.Now()); ok {
		rs.a.log.Warn("coap request refused", append(args, "suppressed", suppressed)...)
		return
	}
	rs.a.log.Debug("coap request refused", args...)
}

func uriPath(r *pool.Message) []string {
	var segments []string
	for _, o := range r.Options() {
		if o.ID == message.URIPath {
			segments = append(segments, string(o.Value))
		}
	}
	return segments
}

// serve is the handler at the end of go-coap's chain, in the request's own
// goroutine: block-wise uploads arrive here reassembled.
func (rs *runState) serve(w *writer, r *pool.Message) {
	if !isRequest(r) {
		return // an unexpected response or reset: nothing to answer
	}
	rs.a.stats.requests.Add(1)
	segments := uriPath(r)
	switch {
	case len(segments) == 2 && segments[0] == ".well-known" && segments[1] == "core":
		rs.serveWellKnown(w, r)
	case r.Code() == codes.POST || r.Code() == codes.PUT:
		rs.serveReading(w, r, segments)
	default:
		code, diag := codes.MethodNotAllowed, fmt.Sprintf("method %v is not allowed; POST or PUT readings to /{device} or /{device}/{point}", r.Code())
		if _, _, err := checkSegments(segments); errors.Is(err, ErrNotFound) {
			code, diag = codes.NotFound, err.Error()
		}
		rs.logReject(w.Conn().RemoteAddr(), "", code, diag)
		rs.respond(w, code, diag)
	}
}

// wellKnownLinks are the gateway's resources in CoRE Link Format (RFC
// 6690): where devices POST or PUT readings. The paths are URI templates
// (RFC 6570): any device name, any point name.
var wellKnownLinks = []link{
	{href: "/{device}", attrs: [][2]string{{"rt", "causeway.reading"}, {"ct", contentFormats},
		{"title", "POST or PUT readings of a device"}}},
	{href: "/{device}/{point}", attrs: [][2]string{{"rt", "causeway.reading.point"}, {"ct", contentFormats},
		{"title", "POST or PUT one point of a device"}}},
}

// contentFormats are the Content-Formats a reading may have.
var contentFormats = fmt.Sprintf("%d %d %d %d %d", FormatText, FormatJSON, FormatCBOR, FormatSenMLJSON, FormatSenMLCBOR)

type link struct {
	href  string
	attrs [][2]string // name, value
}

// matches applies an RFC 6690 §4.1 query filter (name=value, value may end
// in '*'): href, or an attribute, of which one space-separated word of rt,
// if or ct must match.
func (l link) matches(name, value string) bool {
	match := func(v string) bool {
		if prefix, ok := strings.CutSuffix(value, "*"); ok {
			return strings.HasPrefix(v, prefix)
		}
		return v == value
	}
	if name == "href" {
		return match(l.href)
	}
	for _, a := range l.attrs {
		if a[0] != name {
			continue
		}
		if name == "rt" || name == "if" || name == "ct" {
			for _, w := range strings.Fields(a[1]) {
				if match(w) {
					return true
				}
			}
			continue
		}
		if match(a[1]) {
			return true
		}
	}
	return false
}

// serveWellKnown answers resource discovery (RFC 6690): GET
// /.well-known/core lists wellKnownLinks, filtered by a query such as
// ?rt=causeway.reading.
func (rs *runState) serveWellKnown(w *writer, r *pool.Message) {
	if r.Code() != codes.GET {
		rs.respond(w, codes.MethodNotAllowed, "only GET is allowed on /.well-known/core")
		return
	}
	var name, value string
	if q, err := r.Queries(); err == nil && len(q) > 0 {
		name, value, _ = strings.Cut(q[0], "=")
	}
	var b strings.Builder
	for _, l := range wellKnownLinks {
		if name != "" && !l.matches(name, value) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("<" + l.href + ">")
		for _, a := range l.attrs {
			b.WriteString(";" + a[0] + "=" + strconv.Quote(a[1]))
		}
	}
	if err := w.SetResponse(codes.Content, message.AppLinkFormat, strings.NewReader(b.String())); err == nil {
		rs.a.stats.response(codes.Content)
	}
}

// serveReading decodes a POST or PUT, delivers its frames and answers.
func (rs *runState) serveReading(w *writer, r *pool.Message, segments []string) {
	peer := w.Conn().RemoteAddr()
	if size, err := r.BodySize(); err == nil && size > rs.a.maxPayload {
		diag := fmt.Sprintf("payload of %d bytes is larger than max_payload (%d bytes)", size, rs.a.maxPayload)
		rs.logReject(peer, "", codes.RequestEntityTooLarge, diag)
		rs.respond(w, codes.RequestEntityTooLarge, diag)
		return
	}
	payload, err := r.ReadBody()
	if err != nil {
		rs.a.log.Warn("coap: cannot read payload", "peer", peer.String(), "err", err)
		rs.respond(w, codes.InternalServerError, "cannot read payload")
		return
	}
	cf := FormatNone
	if v, err := r.ContentFormat(); err == nil {
		cf = int(v)
	}
	device, readings, err := decodeSegments(segments, cf, payload, DefaultPoint, time.Now())
	if err != nil {
		code := codes.BadRequest
		switch {
		case errors.Is(err, ErrNotFound):
			code = codes.NotFound
		case errors.Is(err, ErrUnsupportedFormat):
			code = codes.UnsupportedMediaType
		}
		if len(segments) > 0 {
			device = segments[0] // for the log line, valid or not
		}
		rs.logReject(peer, device, code, err.Error())
		rs.respond(w, code, err.Error())
		return
	}

	frames := make([]bridge.Frame, len(readings))
	for i, rd := range readings {
		frames[i] = bridge.Frame{Adapter: rs.a.cfg.Name, Device: device, Time: rd.Time, Points: rd.Points}
	}
	var t *ticket
	if v, ok := rs.tickets.Load(w); ok {
		t, _ = v.(*ticket)
	}
	err = rs.deliver(t, frames)
	switch {
	case err == nil:
		rs.a.stats.frames.Add(uint64(len(frames)))
		rs.a.log.Debug("coap reading accepted", "peer", peer.String(), "device", device, "frames", len(frames))
		rs.respond(w, codes.Changed, "")
	case errors.Is(err, bridge.ErrBackpressure) || errors.Is(err, bridge.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		rs.a.stats.backpressure.Add(1)
		diag := "gateway busy, retry later"
		if errors.Is(err, bridge.ErrClosed) || rs.ctx.Err() != nil {
			diag = "gateway is shutting down, retry later"
		}
		rs.logReject(peer, device, codes.ServiceUnavailable, fmt.Sprintf("%s (%v)", diag, err))
		rs.respond(w, codes.ServiceUnavailable, diag)
	default:
		rs.a.log.Warn("coap: reading not accepted downstream", "peer", peer.String(), "device", device, "err", err)
		rs.respond(w, codes.InternalServerError, "reading not accepted by the gateway")
	}
}

// deliver puts frames on the bus after the peer's earlier requests (t may be
// nil: no ordering) and waits until every frame is acknowledged, within
// AckTimeout. It is bridge.Bus.SendAndWait for several frames, with the
// enqueue and the wait split so the next request of the peer can enqueue
// while this one waits.
func (rs *runState) deliver(t *ticket, frames []bridge.Frame) error {
	ctx, cancel := context.WithTimeout(rs.ctx, rs.a.ackTimeout)
	defer cancel()
	defer t.pass()
	if err := t.wait(ctx); err != nil {
		return fmt.Errorf("%w: waiting for this peer's earlier requests: %w", bridge.ErrBackpressure, err)
	}
	acks := make(chan error, len(frames))
	for i := range frames {
		frames[i].Ack = func(err error) {
			select {
			case acks <- err:
			default: // acknowledged twice: not ours to block on
			}
		}
		if err := rs.bus.Send(ctx, frames[i]); err != nil {
			// Frames before i are on the bus and will be delivered; the
			// device retries the whole request: at least once.
			return err
		}
	}
	t.pass()
	for range frames {
		select {
		case err := <-acks:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			// The frames stay on the bus; we only stop waiting.
			return ctx.Err()
		}
	}
	return nil
}

// orderChain orders the requests of each peer: see the top of this file.
// It remembers only tickets not yet passed: at most MaxInFlight.
type orderChain struct {
	mu      sync.Mutex
	tails   map[*udpClient.Conn]*ticket // the latest ticket of each peer
	pending map[exchange]int            // tickets not yet passed, by message
}

// exchange identifies a message of a peer: retransmissions share it.
type exchange struct {
	cc  *udpClient.Conn
	mid int32
}

type ticket struct {
	chain *orderChain
	ex    exchange
	prev  chan struct{} // closed when the previous request passed; nil: none
	done  chan struct{}
	once  sync.Once
}

// next issues the ticket of message mid of peer cc. A retransmission of a
// message still in flight is a duplicate go-coap will answer from its cache
// once the original is done (it waits on the message ID lock): it takes no
// place in the order, so that the original, which may be behind it on that
// lock, never waits for it.
func (c *orderChain) next(cc *udpClient.Conn, mid int32) *ticket {
	ex := exchange{cc: cc, mid: mid}
	t := &ticket{chain: c, ex: ex, done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[ex]++
	if c.pending[ex] > 1 {
		return t
	}
	if prev := c.tails[cc]; prev != nil {
		t.prev = prev.done
	}
	c.tails[cc] = t
	return t
}

// wait returns once the previous request of the peer has passed.
func (t *ticket) wait(ctx context.Context) error {
	if t == nil || t.prev == nil {
		return nil
	}
	select {
	case <-t.prev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pass lets the next request of the peer go. Idempotent; nil is a no-op.
func (t *ticket) pass() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		c := t.chain
		c.mu.Lock()
		if c.tails[t.ex.cc] == t {
			delete(c.tails, t.ex.cc)
		}
		if c.pending[t.ex]--; c.pending[t.ex] <= 0 {
			delete(c.pending, t.ex)
		}
		c.mu.Unlock()
		close(t.done)
	})
}
