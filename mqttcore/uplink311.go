package mqttcore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/causeway/causeway/bridge"
)

// V311Uplink is the Uplink implemented with github.com/eclipse/paho.mqtt.golang
// (MQTT 3.1.1), for brokers that do not speak MQTT 5. It keeps the
// guarantees of PahoUplink: the queue's order, at least once, the inflight
// window, the birth and will on the status topic, the topic prefix, the
// subscriptions on every connection, reconnects with backoff, and Close's
// flush. What MQTT 3.1.1 cannot carry is missing: no seq user property, no
// reason codes, no broker limits (Receive Maximum, Maximum QoS, Retain
// Available, Maximum Packet Size) in the CONNACK.
//
// Connections. The uplink runs its own connection loop: one paho client per
// connection, with CleanSession true, AutoReconnect and ConnectRetry false,
// and paho's MemoryStore, which it never resumes from (the offline queue
// holds what is not acknowledged; paho's own resume after a reconnect does
// not keep the order, paho issues #520 and #731, and has no inflight
// window but MaxResumePubInFlight). A new connection is a new epoch for the
// sender, which rewinds the queue and sends again from the first
// unacknowledged record, as with MQTT 5. The loop owns the net.Conn (it
// dials through CustomOpenConnectionFn), so that it can end a connection
// without a DISCONNECT packet (Run cancelled without Close: the broker must
// publish the will) by setting a deadline that paho reads as a connection
// error.
//
// Delivery. One sender goroutine reads the queue in order and makes each
// record a flight, at most Inflight of them outstanding. A connection has
// two goroutines: a publisher, which calls client.Publish for its flights
// one after the other (Publish returns once paho's own writer goroutine has
// taken the packet, so our PUBLISH packets reach the socket in queue
// order), and a watcher, which waits on the flights' tokens in the same
// order and reports each outcome (acknowledged; or abandoned when the
// connection was lost first) back to the sender. The sender never calls
// paho itself: a Publish that races with a connection loss can block for
// the write timeout (see below), and only that connection's publisher
// waits.
//
// What this relies on in paho.mqtt.golang v1.5.1:
//   - Publish (client.go:772-835) returns ErrNotConnected at once unless the
//     status is connected (with AutoReconnect false, IsConnected is true
//     only when connected), and otherwise blocks until the client's
//     redirector goroutine took the packet from the unbuffered obound
//     channel (client.go:828) or WriteTimeout passed ("publish was broken
//     by timeout", :830). One goroutine forwards obound to one writer
//     (net.go startOutgoingComms), which writes each packet with a single
//     Write (packets/publish.go:50), so the order of our calls is the order
//     on the wire, and a ping written concurrently cannot split a packet.
//   - A publish token completes without error only on the PUBACK (QoS 1,
//     net.go:226) or PUBCOMP (QoS 2, :241), or once written for QoS 0
//     (:311). With CleanSession true and no auto-reconnect every pending
//     token is completed with an error when the connection is lost
//     (internalConnLost, client.go:574-575, messageIds.cleanUp) before
//     OnConnectionLost runs (:583); tokens are never completed "successfully"
//     by a resume (paho issues #563 and #565: claimID completes the old token
//     without error when a session is resumed; we never resume). A token
//     that races with a connection loss may still never complete (a Publish
//     that passed the connected check just before the loss), so the watcher
//     does not rely on tokens alone: once the connection is reported lost,
//     every flight not completed is abandoned.
//   - paho does not report a read error that says "use of closed network
//     connection" (net.go:128), so closing the net.Conn ourselves would
//     leave the client believing it is connected; a deadline produces
//     "i/o timeout", which paho handles as a lost connection (and closes the
//     socket without DISCONNECT). After the CONNACK paho clears the
//     handshake deadline (client.go:418), so an abort during the handshake
//     is repeated once the Connect token completes.
//   - SetOrderMatters(true) only concerns incoming messages: handlers run
//     one at a time on the router goroutine, in arrival order (router.go
//     :165-203), so OnMessage sees commands in order and must not block.
//
// MQTT 3.1.1 brokers cannot refuse a PUBLISH: they acknowledge it and drop
// it (mosquitto with an ACL that denies the topic), or close the
// connection (a packet over the broker's size limit; some clouds for a
// topic the client may not use). A message that is in flight, first, every
// time the connection is closed shortly after it was sent would be resent
// forever: after the first such loss it is sent alone, and after
// poisonLosses consecutive losses within poisonWindow of sending it, it is
// dropped and counted as rejected (see sender311.abandoned).
type V311Uplink struct {
	opts        UplinkOptions
	log         *slog.Logger
	url         *url.URL
	tlsCfg      *tls.Config
	statusTopic string
	queue       Queue
	ownQueue    bool
	backoff     bridge.Backoff
	limiter     *rateLimiter

	wake   chan struct{} // cap 1: outcomes arrived or the connection changed
	compMu sync.Mutex
	comps  []completion311

	connMu sync.Mutex
	conn   *conn311 // the connection up now; nil while there is none
	epochs uint64   // connections established (the last epoch)

	runMu      sync.Mutex
	running    bool
	runDone    chan struct{}
	sendDone   chan struct{}
	cancelRun  context.CancelFunc
	cancelSend context.CancelFunc
	bg         sync.WaitGroup // the watchers of connections

	orderly atomic.Bool // "offline" was published: disconnect with DISCONNECT (the will is discarded)

	uplinkCounters
}

var _ Uplink = (*V311Uplink)(nil)

const (
	// poisonLosses is how many consecutive connection losses, each within
	// poisonWindow of sending the message first in flight, make the
	// MQTT 3.1.1 uplink drop that message as rejected.
	poisonLosses = 5
	poisonWindow = 5 * time.Second
	// disconnectQuiesce is how long Disconnect may wait for the DISCONNECT
	// packet to be written, in milliseconds.
	disconnectQuiesce = 1000
	// abortWait bounds the wait for paho to report a connection we ended.
	abortWait = 5 * time.Second
	// subscribeTimeout bounds the wait for a SUBACK.
	subscribeTimeout = 10 * time.Second
)

// errStopped ends the connections of an uplink that stops.
var errStopped = errors.New("uplink stopped")

// conn311 is one connection of the MQTT 3.1.1 uplink: one paho client.
type conn311 struct {
	epoch  uint64
	client mqtt.Client

	mu       sync.Mutex
	netConn  net.Conn        // what the client runs on (set by the dial)
	aborted  bool            // abort was called
	finished bool            // flights and pubs are closed
	flights  chan *flight311 // to the watcher
	pubs     chan *flight311 // to the publisher, in the same order

	lostOnce sync.Once
	lost     chan struct{} // closed once the connection is gone
	lostAt   time.Time     // set before lost is closed
	lostErr  error         // set before lost is closed
}

// markLost records that the connection is gone; only the first call counts.
func (c *conn311) markLost(err error) {
	c.lostOnce.Do(func() {
		c.lostAt, c.lostErr = time.Now(), err
		close(c.lost)
	})
}

func (c *conn311) isLost() bool {
	select {
	case <-c.lost:
		return true
	default:
		return false
	}
}

// abort makes paho see a connection error: a deadline in the past on the
// network connection (closing it would not be reported, see V311Uplink).
// paho then closes the socket without a DISCONNECT packet.
func (c *conn311) abort() {
	c.mu.Lock()
	c.aborted = true
	nc := c.netConn
	c.mu.Unlock()
	if nc != nil {
		_ = nc.SetDeadline(time.Now())
	}
}

// track hands a flight to the connection's publisher and watcher. It
// reports false when the connection no longer takes flights.
func (c *conn311) track(f *flight311) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The buffers hold Inflight+1 flights, more than the sender keeps
	// outstanding: the sends never block.
	if c.finished || len(c.flights) == cap(c.flights) || len(c.pubs) == cap(c.pubs) {
		return false
	}
	c.flights <- f
	c.pubs <- f
	return true
}

// finish closes flights and pubs: the publisher and the watcher handle
// what is left and end.
func (c *conn311) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.finished {
		c.finished = true
		close(c.flights)
		close(c.pubs)
	}
}

func newConn311(window int) *conn311 {
	return &conn311{
		lost:    make(chan struct{}),
		flights: make(chan *flight311, window+1),
		pubs:    make(chan *flight311, window+1),
	}
}

// newV311Uplink returns the MQTT 3.1.1 uplink.
func newV311Uplink(opts UplinkOptions) (*V311Uplink, error) {
	c, err := checkUplinkOptions(opts)
	if err != nil {
		return nil, err
	}
	opts, log := c.opts, c.log
	if opts.Password != "" && opts.Username == "" {
		return nil, errors.New("uplink: MQTT 3.1.1 needs a username with a password")
	}
	u := &V311Uplink{
		opts:        opts,
		log:         log,
		url:         c.url,
		tlsCfg:      c.tlsCfg,
		statusTopic: c.statusTopic,
		queue:       opts.Queue,
		backoff:     bridge.Backoff{Min: opts.BackoffMin, Max: opts.BackoffMax},
		limiter:     newRateLimiter(logInterval),
		wake:        make(chan struct{}, 1),
	}
	if u.queue == nil {
		u.queue = NewMemoryQueue(MemoryQueueOptions{Log: log})
		u.ownQueue = true
	}
	return u, nil
}

// Enqueue implements Uplink.
func (u *V311Uplink) Enqueue(m bridge.Message, done func(error)) error {
	return u.enqueue(u.queue, u.opts.TopicPrefix, m, done)
}

// current returns the connection up now, or nil.
func (u *V311Uplink) current() *conn311 {
	u.connMu.Lock()
	defer u.connMu.Unlock()
	return u.conn
}

// Connected implements Uplink.
func (u *V311Uplink) Connected() bool {
	c := u.current()
	return c != nil && !c.isLost()
}

// Stats implements Uplink.
func (u *V311Uplink) Stats() UplinkStats { return u.stats(u.queue, u.Connected()) }

// Run implements Uplink.
func (u *V311Uplink) Run(ctx context.Context) error {
	u.runMu.Lock()
	if u.closing.Load() {
		u.runMu.Unlock()
		return fmt.Errorf("uplink run: %w", ErrClosed)
	}
	if u.running {
		u.runMu.Unlock()
		return errors.New("uplink run: already running")
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	sendCtx, cancelSend := context.WithCancel(runCtx)
	runDone, sendDone := make(chan struct{}), make(chan struct{})
	u.running, u.runDone, u.sendDone = true, runDone, sendDone
	u.cancelRun, u.cancelSend = cancelRun, cancelSend
	u.runMu.Unlock()
	defer close(runDone)
	defer cancelRun()

	u.log.Info("uplink starting", slog.String("url", u.url.Redacted()), slog.String("client_id", u.opts.ClientID),
		slog.String("protocol", "3.1.1"))
	connDone := make(chan struct{})
	go func() {
		defer close(connDone)
		u.connLoop(runCtx)
	}()
	func() {
		defer close(sendDone)
		newSender311(u).run(sendCtx)
	}()
	<-runCtx.Done() // Close keeps the connection for the "offline" message
	<-connDone
	u.bg.Wait()
	u.log.Info("uplink stopped")
	return nil
}

// Close implements Uplink.
func (u *V311Uplink) Close(ctx context.Context) error {
	if !u.closing.CompareAndSwap(false, true) {
		return nil
	}
	u.runMu.Lock()
	running, runDone, sendDone := u.running, u.runDone, u.sendDone
	cancelRun, cancelSend := u.cancelRun, u.cancelSend
	u.runMu.Unlock()

	var err error
	if running {
		flushCtx, cancel := flushContext(ctx)
		u.waitFlushed(flushCtx, runDone)
		cancel()
		cancelSend()
		select {
		case <-sendDone:
		case <-ctx.Done():
		}
		if c := u.current(); c != nil && u.statusTopic != "" && !c.isLost() && ctx.Err() == nil {
			if perr := u.publishOffline(ctx, c); perr == nil {
				u.orderly.Store(true)
			} else {
				u.log.Warn("uplink: could not publish the offline status; the broker sends the will instead",
					slog.Any("error", perr))
			}
		}
		cancelRun()
		select {
		case <-runDone:
		case <-ctx.Done():
			err = fmt.Errorf("uplink close: %w", ctx.Err())
		}
	}
	if st := u.queue.Stats(); st.Len > 0 {
		u.log.Warn("uplink closed with messages not yet delivered", slog.Int("messages", st.Len), slog.Int64("bytes", st.Bytes))
	}
	if u.ownQueue {
		if cerr := u.queue.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("uplink close queue: %w", cerr)
		}
	}
	return err
}

// publishOffline publishes "offline" retained on the status topic and
// waits for its PUBACK.
func (u *V311Uplink) publishOffline(ctx context.Context, c *conn311) error {
	tok := c.client.Publish(u.statusTopic, 1, true, []byte(statusOffline))
	select {
	case <-tok.Done():
		return tok.Error()
	case <-c.lost:
		select {
		case <-tok.Done(): // the PUBACK may have come first
			return tok.Error()
		default:
			return fmt.Errorf("connection lost: %w", c.lostErr)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitFlushed returns when every queued message is acknowledged, or ctx
// ends, or Run returned.
func (u *V311Uplink) waitFlushed(ctx context.Context, runDone <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if u.queue.Stats().Len == 0 && u.inflight.Load() == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-runDone:
			return
		case <-t.C:
		}
	}
}

// signal wakes the sender; it never blocks.
func (u *V311Uplink) signal() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// flightDone records a flight's outcome for the sender.
func (u *V311Uplink) flightDone(c completion311) {
	u.compMu.Lock()
	u.comps = append(u.comps, c)
	u.compMu.Unlock()
	u.signal()
}

func (u *V311Uplink) takeCompletions(buf []completion311) []completion311 {
	u.compMu.Lock()
	buf = append(buf[:0], u.comps...)
	clear(u.comps)
	u.comps = u.comps[:0]
	u.compMu.Unlock()
	return buf
}

// connLoop connects, waits for the connection to end and connects again,
// with exponential backoff, until ctx ends; then it ends the connection.
func (u *V311Uplink) connLoop(ctx context.Context) {
	failures := 0
	for {
		c, err := u.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			u.connectErrors.Add(1)
			u.limiter.log(u.log, slog.LevelWarn, "uplink connect failed",
				slog.String("url", u.url.Redacted()), slog.Any("error", err))
			if !sleepCtx(ctx, u.reconnectDelay(failures)) {
				return
			}
			continue
		}
		failures = 0
		u.connectionUp(c)
		select {
		case <-c.lost:
			u.connectionDown(c)
			if !sleepCtx(ctx, u.reconnectDelay(0)) {
				return
			}
		case <-ctx.Done():
			u.endConnection(c)
			return
		}
	}
}

// reconnectDelay is the wait before a connection attempt after attempt
// failed ones (attempt 0 follows a loss, or the start, and is immediate
// unless the previous connections did not last), as PahoUplink's.
func (u *V311Uplink) reconnectDelay(attempt int) time.Duration {
	n := attempt + int(u.flaps.Load())
	if n <= 0 {
		return 0
	}
	return u.backoff.Delay(n)
}

// sleepCtx waits d; it reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connect makes one connection attempt: dial, CONNECT, CONNACK.
func (u *V311Uplink) connect(ctx context.Context) (*conn311, error) {
	c := newConn311(u.opts.Inflight)
	c.client = mqtt.NewClient(u.clientOptions(ctx, c))
	tok := c.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// The dial sees ctx, the handshake the deadline; paho sets its own
		// handshake deadline after the dial, so abort until it gives up.
		t := time.NewTicker(50 * time.Millisecond)
		for done := false; !done; {
			c.abort()
			select {
			case <-tok.Done():
				done = true
			case <-t.C:
			}
		}
		t.Stop()
		if tok.Error() == nil { // connected meanwhile: paho cleared the deadline
			u.abortConnection(c)
		}
		c.finish()
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		c.finish()
		return nil, err
	}
	return c, nil
}

// clientOptions are the paho options of connection c.
func (u *V311Uplink) clientOptions(ctx context.Context, c *conn311) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	o.Servers = []*url.URL{u.url}
	o.SetClientID(u.opts.ClientID)
	o.SetUsername(u.opts.Username)
	o.SetPassword(u.opts.Password)
	o.SetProtocolVersion(4) // explicit: no fallback to MQTT 3.1
	// Every connection starts clean; the queue, not the broker or paho's
	// store, holds what is unacknowledged, and this loop reconnects.
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetStore(mqtt.NewMemoryStore())
	o.SetOrderMatters(true)
	o.SetKeepAlive(u.opts.Keepalive)
	o.SetPingTimeout(min(10*time.Second, u.opts.Keepalive))
	o.SetConnectTimeout(u.opts.ConnectTimeout)
	// Bounds a packet write (a stalled link) and a Publish racing with a
	// connection loss (30 s by default).
	o.SetWriteTimeout(u.opts.Keepalive)
	o.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		nc, err := u.dial(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.aborted {
			_ = nc.Close()
			return nil, errStopped
		}
		c.netConn = nc
		return nc, nil
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { c.markLost(err) })
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { u.received(m.Topic(), m.Payload()) })
	if u.statusTopic != "" {
		o.SetWill(u.statusTopic, statusOffline, 1, true)
	}
	return o
}

// dial opens the network connection to the broker (mqtt, mqtts, ws, wss).
func (u *V311Uplink) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: u.opts.ConnectTimeout}
	switch u.url.Scheme {
	case "mqtts":
		return (&tls.Dialer{NetDialer: d, Config: u.tlsCfg}).DialContext(ctx, "tcp", u.url.Host)
	case "ws", "wss":
		var tlsCfg *tls.Config
		if u.url.Scheme == "wss" {
			tlsCfg = u.tlsCfg
		}
		// paho's WebSocket connection (gorilla/websocket, subprotocol
		// "mqtt"); the dial takes no context but ends within the timeout.
		nc, err := mqtt.NewWebsocket(u.url.String(), tlsCfg, u.opts.ConnectTimeout, nil, nil)
		if err == nil && ctx.Err() != nil {
			_ = nc.Close()
			return nil, ctx.Err()
		}
		return nc, err
	}
	return d.DialContext(ctx, "tcp", u.url.Host)
}

// connectionUp makes c the current connection.
func (u *V311Uplink) connectionUp(c *conn311) {
	u.connMu.Lock()
	u.epochs++
	c.epoch = u.epochs
	u.conn = c
	u.connMu.Unlock()
	n := u.connects.Add(1)
	u.upSince.Store(time.Now().UnixNano())
	u.log.Info("uplink connected", slog.String("url", u.url.Redacted()), slog.Uint64("connects", n),
		slog.String("protocol", "3.1.1"))
	// Run waits for the watcher, which ends once c is finished. The
	// publisher and the subscriber call paho, which may block them for up
	// to the write timeout after a connection loss (see publisher); Run
	// does not wait for them: they end by themselves.
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		u.watch(c)
	}()
	go u.publisher(c)
	if len(u.opts.Subscriptions) > 0 {
		// The session starts clean on every connection: subscribe again.
		go u.subscribe(c)
	}
	u.signal()
}

// connectionDown handles the loss of c.
func (u *V311Uplink) connectionDown(c *conn311) {
	up := time.Since(time.Unix(0, u.upSince.Load()))
	if up < flapWindow {
		if u.flaps.Load() < maxFlaps {
			u.flaps.Add(1)
		}
	} else {
		u.flaps.Store(0)
	}
	u.connMu.Lock()
	if u.conn == c {
		u.conn = nil
	}
	u.connMu.Unlock()
	c.finish()
	u.log.Warn("uplink connection lost", slog.Duration("was_up", up.Round(time.Millisecond)),
		slog.Int64("queued", int64(u.queue.Stats().Len)), slog.Any("error", c.lostErr))
	u.signal()
}

// endConnection ends c when Run stops: with a DISCONNECT after Close
// published "offline" (the broker discards the will), without one
// otherwise (the broker publishes the will).
func (u *V311Uplink) endConnection(c *conn311) {
	if u.orderly.Load() && !c.isLost() {
		c.client.Disconnect(disconnectQuiesce) // returns once paho has stopped
		c.markLost(errStopped)
	} else {
		u.abortConnection(c)
	}
	u.connMu.Lock()
	if u.conn == c {
		u.conn = nil
	}
	u.connMu.Unlock()
	c.finish()
	u.signal()
}

// abortConnection ends c without a DISCONNECT packet and waits until paho
// reported it lost.
func (u *V311Uplink) abortConnection(c *conn311) {
	c.abort()
	t := time.NewTimer(abortWait)
	defer t.Stop()
	select {
	case <-c.lost:
	case <-t.C:
		// Not expected; Disconnect stops paho's goroutines whatever state
		// it is in (it may send a DISCONNECT, and the will is lost).
		u.log.Warn("uplink: the connection did not end; disconnecting")
		c.client.Disconnect(0)
		c.markLost(errStopped)
	}
}

// publisher publishes the flights of c, in order, until c is finished.
//
// paho's Publish blocks until paho's writer goroutine takes the packet. If
// the connection is lost between Publish's connected check and that hand-
// off, paho's writer is gone and Publish waits for the write timeout
// (client.go:828-831) before it fails: only this goroutine waits, the
// watcher abandons the flight as soon as the loss is reported. A Publish
// that fails (not connected, or not taken in time) ends the publishing on
// c: a later flight must not reach the broker before an earlier one, so
// the connection is ended and the next one starts again from the first
// unacknowledged record.
func (u *V311Uplink) publisher(c *conn311) {
	failed := false
	for f := range c.pubs {
		if !failed && !c.isLost() {
			f.tok = c.client.Publish(f.topic, f.qos, f.retain, f.payload)
			f.sentAt = time.Now()
			select {
			case <-f.tok.Done():
				f.handed = f.tok.Error() == nil
			default:
				f.handed = true
			}
			if f.handed {
				u.sent.Add(1)
			} else {
				failed = true
				u.log.Debug("uplink publish not sent; ending the connection", slog.Any("error", f.tok.Error()))
				c.abort()
			}
		}
		f.payload = nil
		close(f.published)
	}
}

// watch reports the outcome of every flight of c, in send order, until c
// is finished: acknowledged when its token completed without error,
// abandoned when it completed with one or c was lost first.
func (u *V311Uplink) watch(c *conn311) {
	for f := range c.flights {
		select {
		case <-f.published:
			if f.tok != nil {
				select {
				case <-f.tok.Done():
				case <-c.lost:
				}
			}
		case <-c.lost:
		}
		comp := completion311{f: f, o: outcomeAbandoned, lostAfter: -1}
		select {
		case <-f.published:
			if f.tok != nil {
				select {
				case <-f.tok.Done():
					if f.tok.Error() == nil {
						comp.o = outcomeAcked
					}
				default:
				}
			}
			if comp.o == outcomeAbandoned && f.handed && c.isLost() {
				comp.lostAfter = max(0, c.lostAt.Sub(f.sentAt))
			}
		default: // lost before it was published: never sent
		}
		u.flightDone(comp)
	}
}

// subscribe subscribes connection c to Subscriptions, at QoS 1.
func (u *V311Uplink) subscribe(c *conn311) {
	filters := make(map[string]byte, len(u.opts.Subscriptions))
	for _, f := range u.opts.Subscriptions {
		filters[u.opts.TopicPrefix+f] = 1
	}
	// No callback: what arrives goes to the default handler (received).
	tok := c.client.SubscribeMultiple(filters, nil)
	t := time.NewTimer(subscribeTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-c.lost:
		return
	case <-t.C:
		u.limiter.log(u.log, slog.LevelWarn, "uplink subscribe failed", slog.String("error", "no SUBACK within 10s"))
		return
	}
	if err := tok.Error(); err != nil {
		u.limiter.log(u.log, slog.LevelWarn, "uplink subscribe failed", slog.Any("error", err))
		return
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for filter, rc := range st.Result() {
			if rc >= 0x80 {
				u.log.Warn("uplink broker refused a subscription", slog.String("filter", filter),
					slog.String("return_code", fmt.Sprintf("0x%02x", rc)))
			}
		}
	}
	u.log.Info("uplink subscribed", slog.Any("filters", u.opts.Subscriptions))
}

// received hands a message that arrived on a subscription to OnMessage
// (or, without one, to OnRequest, with no response topic: MQTT 3.1.1 has
// none). It runs on paho's router goroutine, one message at a time.
func (u *V311Uplink) received(topic string, payload []byte) {
	topic, ok := strings.CutPrefix(topic, u.opts.TopicPrefix)
	if !ok {
		return
	}
	switch {
	case u.opts.OnMessage != nil:
		u.opts.OnMessage(topic, payload)
	case u.opts.OnRequest != nil:
		u.opts.OnRequest(Request{Topic: topic, Payload: payload})
	}
}
