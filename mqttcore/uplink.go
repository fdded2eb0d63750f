package mqttcore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/causeway/causeway/bridge"
)

// Uplink is the session to the remote broker, fed through the offline
// queue. Implementations: PahoUplink (MQTT 5) and V311Uplink (MQTT 3.1.1);
// NewUplink picks one by UplinkOptions.Protocol.
type Uplink interface {
	// Enqueue puts m into the offline queue. It returns an error when m is
	// refused: queue full with drop_newest, invalid topic or QoS, too
	// large, closed; refusals are counted in Stats. When it returns nil, m
	// is accepted once done (if not nil) is called with nil: the queue has
	// made it as durable as its policy promises (see Queue.Append). done
	// must not block. The queue owns m.Payload afterwards.
	Enqueue(m bridge.Message, done func(error)) error
	// Run connects, reconnects with exponential backoff and publishes from
	// the queue until ctx ends or Close stops it. It returns nil then.
	Run(ctx context.Context) error
	// Close shuts down in order: stop accepting, try to flush the queue
	// until shortly before ctx's deadline, publish "offline" retained on
	// the status topic, disconnect cleanly. Run returns afterwards.
	Close(ctx context.Context) error
	// Connected reports whether a connection is up now.
	Connected() bool
	// Stats returns a snapshot of the uplink's counters.
	Stats() UplinkStats
}

// SeqPropertyKey is the MQTT 5 user property that carries, on every message
// published from the offline queue, the message's queue sequence number: it
// increases by one per accepted message of this gateway (gaps mean drops) and
// is never reused, also across restarts, so a consumer can drop the
// duplicates an at-least-once replay may cause.
const SeqPropertyKey = "seq"

// UplinkStats is a snapshot of an uplink.
type UplinkStats struct {
	Connected     bool
	Connects      uint64        // connections established
	Reconnects    uint64        // connections established after the first
	ConnectErrors uint64        // failed connection attempts
	Queued        int           // messages not yet acknowledged
	QueuedBytes   int64         // accounted bytes in the queue
	OldestAge     time.Duration // age of the oldest message not yet acknowledged
	Inflight      int           // QoS>0 publishes awaiting acknowledgement
	Sent          uint64        // PUBLISH packets written (resends included)
	Acked         uint64        // messages acknowledged (QoS 0: written)
	Dropped       Drops         // messages dropped or refused, by reason
}

// Defaults of UplinkOptions.
const (
	DefaultKeepalive      = 30 * time.Second
	DefaultInflight       = 32
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 60 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	// DefaultCloseTimeout bounds Close's flush when its ctx has no deadline.
	DefaultCloseTimeout = 10 * time.Second

	maxInflight       = 65000 // packet IDs are 16 bits; leave some for SUBSCRIBE
	inboundReceiveMax = 64    // QoS>0 messages the broker may send us unacknowledged
	flapWindow        = 10 * time.Second
	maxFlaps          = 16
	maxRejects        = 5 // attempts for a message refused with an unspecified reason
	statusOnline      = "online"
	statusOffline     = "offline"
)

// Protocol versions of UplinkOptions.Protocol, as in the CONNECT packet.
const (
	ProtocolMQTT5   = 5 // MQTT 5 (PahoUplink); also what 0 means
	ProtocolMQTT311 = 4 // MQTT 3.1.1 (V311Uplink)
)

// UplinkOptions configures an uplink.
type UplinkOptions struct {
	// Protocol is the MQTT version: 5 (or 0) for MQTT 5, 4 for MQTT 3.1.1.
	// MQTT 3.1.1 has no user properties (no seq property), no reason codes
	// and no broker limits in the CONNACK: see V311Uplink.
	Protocol int
	// URL of the remote broker: mqtt:// mqtts:// ws:// wss://. Ports
	// default to 1883/8883/80/443, the WebSocket path to /mqtt.
	URL string
	// ClientID, Username, Password for the CONNECT packet. The password is
	// never logged.
	ClientID, Username, Password string
	// CAFile is an extra CA (PEM) for mqtts/wss; the system roots are
	// always trusted too. CertFile/KeyFile: client certificate (mTLS),
	// read again at every connection.
	CAFile, CertFile, KeyFile string
	// Keepalive is always sent (autopaho's default 0 disables pings).
	// Default 30s.
	Keepalive time.Duration
	// TopicPrefix is prepended to every topic on the uplink (status too).
	TopicPrefix string
	// StatusTopic ("{gateway}/status", before the prefix): birth "online"
	// retained QoS 1 on every connection, will "offline" retained QoS 1,
	// and "offline" published by Close. Empty: none of these.
	StatusTopic string
	// Queue is the offline queue; nil: a MemoryQueue with defaults, owned
	// (and closed) by the uplink. A Queue passed in is not closed.
	Queue Queue
	// Inflight bounds QoS>0 publishes awaiting acknowledgement (further
	// capped by the broker's Receive Maximum). Default 32.
	Inflight int
	// BackoffMin, BackoffMax bound the exponential reconnect backoff
	// (with jitter). Defaults 500ms, 60s.
	BackoffMin, BackoffMax time.Duration
	// ConnectTimeout bounds one connection attempt. Default 10s.
	ConnectTimeout time.Duration
	// Log receives the uplink's log lines; paho's own error output is
	// routed here at Debug. Default slog.Default().
	Log *slog.Logger
	// Subscriptions are topic filters (without TopicPrefix) subscribed at
	// QoS 1 on every connection, e.g. the command topics; OnMessage
	// receives what arrives on them, with the prefix removed. OnMessage
	// runs on paho's goroutine and must not block.
	Subscriptions []string
	OnMessage     func(topic string, payload []byte)
	// OnRequest, if set, receives those messages instead of OnMessage,
	// with their MQTT 5 response topic and correlation data (a request
	// whose answer goes back with Respond). An MQTT 3.1.1 uplink has no
	// such properties and calls OnMessage.
	OnRequest func(Request)
}

// PahoUplink is the Uplink implemented with github.com/eclipse/paho.golang
// (autopaho, MQTT 5).
//
// Delivery design. One sender goroutine reads the queue in order and
// publishes each record through autopaho; for QoS>0 the publish returns as
// soon as the packet is written (see trackingSession), so up to Inflight
// publishes are outstanding while the order on the wire stays the queue's
// order (there is only one writer of our PUBLISH packets). The
// acknowledgement of each packet (PUBACK, PUBCOMP, refusal, or abandonment
// when the connection drops) comes back through the session wrapper and is
// applied to the queue by the sender. Every connection starts clean with
// session expiry 0; after a reconnect the sender rewinds the queue to the
// first unacknowledged record and sends again from there.
type PahoUplink struct {
	opts        UplinkOptions
	log         *slog.Logger
	url         *url.URL
	tlsCfg      *tls.Config
	statusTopic string
	queue       Queue
	ownQueue    bool
	sess        *trackingSession
	backoff     bridge.Backoff
	limiter     *rateLimiter

	wake   chan struct{} // cap 1: outcomes arrived or the connection changed
	compMu sync.Mutex
	comps  []completion

	runMu      sync.Mutex
	running    bool
	runDone    chan struct{}
	sendDone   chan struct{}
	cancelRun  context.CancelFunc
	cancelSend context.CancelFunc
	cm         *autopaho.ConnectionManager

	orderly atomic.Bool // "offline" was published: disconnect without the will

	uplinkCounters
}

type completion struct {
	f      *flight
	o      outcome
	reason byte
}

var _ Uplink = (*PahoUplink)(nil)

// NewUplink checks opts and returns an uplink for opts.Protocol: a
// PahoUplink (MQTT 5) or a V311Uplink (MQTT 3.1.1). Run starts it.
func NewUplink(opts UplinkOptions) (Uplink, error) {
	switch opts.Protocol {
	case 0, ProtocolMQTT5:
		return newPahoUplink(opts)
	case ProtocolMQTT311:
		return newV311Uplink(opts)
	}
	return nil, fmt.Errorf("uplink protocol %d: want 5 (MQTT 5) or 4 (MQTT 3.1.1)", opts.Protocol)
}

// checkedUplink is what both implementations take from UplinkOptions once
// checked.
type checkedUplink struct {
	opts        UplinkOptions // defaults filled in
	url         *url.URL
	tlsCfg      *tls.Config
	statusTopic string // with the prefix; empty: no status messages
	log         *slog.Logger
}

// checkUplinkOptions checks opts and fills in the defaults.
func checkUplinkOptions(opts UplinkOptions) (checkedUplink, error) {
	u, secure, err := parseUplinkURL(opts.URL)
	if err != nil {
		return checkedUplink{}, err
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Keepalive == 0 {
		opts.Keepalive = DefaultKeepalive
	}
	if opts.Keepalive < time.Second || opts.Keepalive > 65535*time.Second {
		return checkedUplink{}, fmt.Errorf("uplink keepalive %s: want 1s to 65535s", opts.Keepalive)
	}
	if opts.Inflight == 0 {
		opts.Inflight = DefaultInflight
	}
	if opts.Inflight < 1 || opts.Inflight > maxInflight {
		return checkedUplink{}, fmt.Errorf("uplink inflight %d: want 1 to %d", opts.Inflight, maxInflight)
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.BackoffMax < opts.BackoffMin {
		return checkedUplink{}, fmt.Errorf("uplink backoff: max %s below min %s", opts.BackoffMax, opts.BackoffMin)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if err := validatePrefix(opts.TopicPrefix); err != nil {
		return checkedUplink{}, fmt.Errorf("uplink: %w", err)
	}
	var status string
	if opts.StatusTopic != "" {
		status = opts.TopicPrefix + opts.StatusTopic
		if err := validateTopicName(status); err != nil {
			return checkedUplink{}, fmt.Errorf("uplink status topic: %w", err)
		}
	}
	var tlsCfg *tls.Config
	if secure {
		if tlsCfg, err = uplinkTLSConfig(opts.CAFile, opts.CertFile, opts.KeyFile); err != nil {
			return checkedUplink{}, err
		}
	} else if opts.CAFile != "" || opts.CertFile != "" || opts.KeyFile != "" {
		return checkedUplink{}, fmt.Errorf("uplink url %q: ca_file/cert_file/key_file need mqtts:// or wss://", u.Redacted())
	}
	return checkedUplink{
		opts: opts, url: u, tlsCfg: tlsCfg, statusTopic: status,
		log: opts.Log.With(slog.String("component", "uplink")),
	}, nil
}

// newPahoUplink returns the MQTT 5 uplink.
func newPahoUplink(opts UplinkOptions) (*PahoUplink, error) {
	c, err := checkUplinkOptions(opts)
	if err != nil {
		return nil, err
	}
	opts, log := c.opts, c.log
	p := &PahoUplink{
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
	if p.queue == nil {
		p.queue = NewMemoryQueue(MemoryQueueOptions{Log: log})
		p.ownQueue = true
	}
	p.sess = newTrackingSession(opts.Inflight, p.flightDone, p.signal)
	p.sess.SetErrorLogger(pahoLogger{l: log, level: slog.LevelDebug})
	return p, nil
}

// Enqueue implements Uplink.
func (u *PahoUplink) Enqueue(m bridge.Message, done func(error)) error {
	return u.enqueue(u.queue, u.opts.TopicPrefix, m, done)
}

// validatePrefixedTopic is validateTopicName(prefix+topic) without building
// the string (prefix is already valid).
func validatePrefixedTopic(prefix, topic string) error {
	if prefix == "" {
		return validateTopicName(topic)
	}
	switch {
	case len(prefix)+len(topic) > maxTopicLen:
		return fmt.Errorf("%w: %d bytes with the prefix, at most %d", ErrInvalidTopic, len(prefix)+len(topic), maxTopicLen)
	case strings.ContainsAny(topic, "+#"):
		return fmt.Errorf("%w: %q contains a wildcard", ErrInvalidTopic, topic)
	case strings.IndexByte(topic, 0) >= 0:
		return fmt.Errorf("%w: %q contains U+0000", ErrInvalidTopic, topic)
	case !utf8.ValidString(topic):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidTopic, topic)
	}
	return nil
}

// Connected implements Uplink.
func (u *PahoUplink) Connected() bool { return u.sess.current().up }

// Stats implements Uplink.
func (u *PahoUplink) Stats() UplinkStats { return u.stats(u.queue, u.Connected()) }

// Run implements Uplink.
func (u *PahoUplink) Run(ctx context.Context) error {
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

	cm, err := autopaho.NewConnection(runCtx, u.clientConfig())
	if err != nil {
		close(sendDone)
		return fmt.Errorf("uplink run: %w", err)
	}
	u.runMu.Lock()
	u.cm = cm
	u.runMu.Unlock()
	u.log.Info("uplink starting", slog.String("url", u.url.Redacted()), slog.String("client_id", u.opts.ClientID))

	func() {
		defer close(sendDone)
		newSender(u, cm).run(sendCtx)
	}()
	<-runCtx.Done() // Close keeps the connection for the "offline" message
	<-cm.Done()
	u.log.Info("uplink stopped")
	return nil
}

// Close implements Uplink.
func (u *PahoUplink) Close(ctx context.Context) error {
	if !u.closing.CompareAndSwap(false, true) {
		return nil
	}
	u.runMu.Lock()
	running, runDone, sendDone := u.running, u.runDone, u.sendDone
	cancelRun, cancelSend, cm := u.cancelRun, u.cancelSend, u.cm
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
		if cm != nil && u.statusTopic != "" && u.Connected() && ctx.Err() == nil {
			ci := u.sess.current()
			_, perr := cm.Publish(ctx, &paho.Publish{
				QoS: min(1, ci.maxQoS), Retain: ci.retain, Topic: u.statusTopic, Payload: []byte(statusOffline),
			})
			if perr == nil {
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

// flushContext ends shortly before ctx's deadline, leaving time for the
// offline message and the disconnect.
func flushContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithTimeout(ctx, DefaultCloseTimeout)
	}
	reserve := min(2*time.Second, time.Until(dl)/4)
	return context.WithDeadline(ctx, dl.Add(-reserve))
}

// waitFlushed returns when every queued message is acknowledged, or ctx
// ends, or Run returned.
func (u *PahoUplink) waitFlushed(ctx context.Context, runDone <-chan struct{}) {
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
func (u *PahoUplink) signal() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// flightDone is the session's report of a flight's outcome. It runs on
// paho's goroutines and only records the outcome for the sender.
func (u *PahoUplink) flightDone(f *flight, o outcome, reason byte) {
	u.compMu.Lock()
	u.comps = append(u.comps, completion{f: f, o: o, reason: reason})
	u.compMu.Unlock()
	u.signal()
}

func (u *PahoUplink) takeCompletions(buf []completion) []completion {
	u.compMu.Lock()
	buf = append(buf[:0], u.comps...)
	clear(u.comps)
	u.comps = u.comps[:0]
	u.compMu.Unlock()
	return buf
}

func (u *PahoUplink) clientConfig() autopaho.ClientConfig {
	debug := pahoLogger{l: u.log, level: slog.LevelDebug}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u.url},
		TlsCfg:                        u.tlsCfg,
		KeepAlive:                     uint16(u.opts.Keepalive / time.Second),
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         0,
		ReconnectBackoff:              u.reconnectDelay,
		ConnectTimeout:                u.opts.ConnectTimeout,
		OnConnectionUp:                u.onConnectionUp,
		OnConnectionDown:              u.onConnectionDown,
		OnConnectError:                u.onConnectError,
		Errors:                        debug,
		PahoErrors:                    debug,
		ConnectUsername:               u.opts.Username,
		ConnectPassword:               []byte(u.opts.Password),
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			// Every connection starts clean and ends its session when it
			// closes: the queue, not the broker, holds what is unacknowledged.
			cp.CleanStart = true
			rm := uint16(inboundReceiveMax)
			cp.Properties = &paho.ConnectProperties{ReceiveMaximum: &rm, RequestProblemInfo: true}
			return cp, nil
		},
		DisconnectPacketBuilder: func() *paho.Disconnect {
			if u.orderly.Load() {
				return &paho.Disconnect{ReasonCode: 0x00} // normal: the broker discards the will
			}
			return &paho.Disconnect{ReasonCode: 0x04} // disconnect with will message
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          u.opts.ClientID,
			Session:           u.sess,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){u.received},
			OnServerDisconnect: func(d *paho.Disconnect) {
				reason := ""
				if d.Properties != nil {
					reason = d.Properties.ReasonString
				}
				u.limiter.log(u.log, slog.LevelWarn, "uplink broker closed the connection",
					slog.String("reason_code", fmt.Sprintf("0x%02x", d.ReasonCode)), slog.String("reason", reason))
			},
			OnClientError: func(err error) {
				u.log.Debug("uplink connection error", slog.Any("error", err))
			},
		},
	}
	if u.statusTopic != "" {
		cfg.WillMessage = &paho.WillMessage{Retain: true, QoS: 1, Topic: u.statusTopic, Payload: []byte(statusOffline)}
		cfg.WillProperties = &paho.WillProperties{}
	}
	return cfg
}

// reconnectDelay replaces autopaho's constant 10 s: exponential backoff
// with jitter. Attempt 0 follows a lost connection and is immediate, unless
// the previous connections did not last (a broker that accepts and drops).
func (u *PahoUplink) reconnectDelay(attempt int) time.Duration {
	n := attempt + int(u.flaps.Load())
	if n <= 0 {
		return 0
	}
	return u.backoff.Delay(n)
}

func (u *PahoUplink) onConnectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	n := u.connects.Add(1)
	u.upSince.Store(time.Now().UnixNano())
	attrs := []any{slog.String("url", u.url.Redacted()), slog.Uint64("connects", n)}
	if ca != nil && ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		attrs = append(attrs, slog.Int("receive_maximum", int(*ca.Properties.ReceiveMaximum)))
	}
	u.log.Info("uplink connected", attrs...)
	u.signal()
	if len(u.opts.Subscriptions) > 0 && cm != nil {
		// The session starts clean on every connection: subscribe again.
		// Not on paho's goroutine, which must keep reading.
		go u.subscribe(cm)
	}
}

// subscribe subscribes the connection to Subscriptions.
func (u *PahoUplink) subscribe(cm *autopaho.ConnectionManager) {
	s := &paho.Subscribe{}
	for _, f := range u.opts.Subscriptions {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: u.opts.TopicPrefix + f, QoS: 1, NoLocal: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := cm.Subscribe(ctx, s)
	if err != nil {
		u.limiter.log(u.log, slog.LevelWarn, "uplink subscribe failed", slog.Any("error", err))
		return
	}
	for i, rc := range sa.Reasons {
		if rc >= 0x80 && i < len(s.Subscriptions) {
			u.log.Warn("uplink broker refused a subscription", slog.String("filter", s.Subscriptions[i].Topic), slog.String("reason_code", fmt.Sprintf("0x%02x", rc)))
		}
	}
	u.log.Info("uplink subscribed", slog.Any("filters", u.opts.Subscriptions))
}

// received hands a message that arrived on a subscription to OnMessage.
func (u *PahoUplink) received(pr paho.PublishReceived) (bool, error) {
	if (u.opts.OnMessage == nil && u.opts.OnRequest == nil) || pr.Packet == nil {
		return false, nil
	}
	topic, ok := strings.CutPrefix(pr.Packet.Topic, u.opts.TopicPrefix)
	if !ok {
		return false, nil
	}
	if u.opts.OnRequest != nil {
		r := Request{Topic: topic, Payload: pr.Packet.Payload}
		if p := pr.Packet.Properties; p != nil {
			r.ResponseTopic, r.CorrelationData = p.ResponseTopic, p.CorrelationData
		}
		u.opts.OnRequest(r)
		return true, nil
	}
	u.opts.OnMessage(topic, pr.Packet.Payload)
	return true, nil
}

func (u *PahoUplink) onConnectionDown() bool {
	up := time.Since(time.Unix(0, u.upSince.Load()))
	if up < flapWindow {
		if u.flaps.Load() < maxFlaps {
			u.flaps.Add(1)
		}
	} else {
		u.flaps.Store(0)
	}
	u.log.Warn("uplink connection lost", slog.Duration("was_up", up.Round(time.Millisecond)),
		slog.Int64("queued", int64(u.queue.Stats().Len)))
	u.signal()
	return true
}

func (u *PahoUplink) onConnectError(err error) {
	u.connectErrors.Add(1)
	u.limiter.log(u.log, slog.LevelWarn, "uplink connect failed",
		slog.String("url", u.url.Redacted()), slog.Any("error", err))
}
