package mqttcore

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is the gateway's built-in MQTT broker. Local applications connect
// to it over TCP, TLS or WebSocket, as users with topic filters or
// anonymously; the gateway itself publishes and subscribes in-process,
// unrestricted.
type Broker interface {
	// Publish delivers a message to the broker's subscribers in-process (no
	// socket). A retained message is kept for later subscribers. It never
	// waits for a subscriber, and is safe for concurrent use.
	Publish(topic string, payload []byte, qos byte, retain bool) error
	// Subscribe calls fn, in-process, for every message published on a
	// topic matching filter (by local TCP clients or by Publish), and at
	// once for the retained messages matching it. fn runs on the
	// publisher's goroutine: it must be fast and must not modify payload
	// (copy it to keep it). The returned function removes the subscription.
	Subscribe(filter string, fn func(topic string, payload []byte)) (unsubscribe func(), err error)
	// Addr is the TCP listen address, nil without a TCP listener.
	Addr() net.Addr
	// Stats returns a snapshot of the broker's counters.
	Stats() BrokerStats
	// Close disconnects every client and stops the listeners.
	Close() error
}

// BrokerStats is a snapshot of the broker's counters.
type BrokerStats struct {
	ClientsConnected int64 // TCP clients connected now
	MessagesReceived int64 // PUBLISH packets received (TCP clients and in-process Publish)
	MessagesSent     int64 // PUBLISH packets written to TCP clients
	MessagesDropped  int64 // deliveries dropped: a client's pending-write or in-flight limit was reached
	SlowDisconnects  int64 // clients disconnected because they did not read their messages
	Retained         int64 // retained messages held
	AuthRefused      int64 // CONNECTs refused: no or bad credentials, or a will topic outside the user's filters
	ACLDenied        int64 // publishes, subscriptions and deliveries refused by a user's topic filters
}

// Defaults of BrokerOptions.
const (
	DefaultMaxClients           = 256
	DefaultClientBufferBytes    = 1 << 20
	DefaultClientWritePending   = 256
	DefaultClientMaxInflight    = 1024
	DefaultMaxPacketSize        = 1 << 20
	DefaultMaxSessionExpiry     = 24 * time.Hour
	DefaultClientWriteTimeout   = 30 * time.Second
	DefaultBrokerConnectTimeout = 10 * time.Second
)

// BrokerOptions configures the built-in broker. Zero values take defaults,
// except AllowAnonymous: with no Users and AllowAnonymous false, no client
// can connect (the gateway's in-process Publish and Subscribe still work).
type BrokerOptions struct {
	// Listen is the TCP listen address, "" for no TCP listener.
	Listen string
	// TLSListen is the MQTT-over-TLS listen address, "" for none; it needs
	// TLSCertFile and TLSKeyFile (PEM). The files are read again when they
	// change, so a renewed certificate needs no restart.
	TLSListen, TLSCertFile, TLSKeyFile string
	// WebSocket is the MQTT-over-WebSocket listen address, "" for none.
	// Only the path WebSocketPath ("/mqtt") upgrades.
	WebSocket string
	// Users may connect with their name and password; their topic filters
	// restrict what they publish and subscribe to.
	Users []BrokerUser
	// AllowAnonymous admits clients that give no user name, with full
	// access. The configuration's default is true only while every
	// listener is on loopback; StartBroker logs a warning when it is true
	// with a listener beyond loopback.
	AllowAnonymous bool
	// Log receives the broker's log lines (mochi's own output is routed
	// here: its Info lines at Debug, its warnings rate-limited).
	Log *slog.Logger

	// MaxClients bounds concurrent TCP clients.
	MaxClients int
	// ClientBufferBytes bounds the bytes waiting to be written to one
	// client; a client that falls further behind is disconnected.
	ClientBufferBytes int
	// ClientWritesPending bounds the messages queued for one client inside
	// the broker engine; deliveries beyond it are dropped (counted).
	ClientWritesPending int
	// ClientMaxInflight bounds QoS>0 messages awaiting one client's
	// acknowledgement; deliveries beyond it are dropped (counted).
	ClientMaxInflight int
	// MaxPacketSize bounds one packet from a client (bytes).
	MaxPacketSize uint32
	// MaxSessionExpiry caps the session expiry a client may ask for, so
	// the state of departed clients does not accumulate.
	MaxSessionExpiry time.Duration
	// WriteTimeout bounds one blocked socket write to a client.
	WriteTimeout time.Duration
	// ConnectTimeout bounds the time from accepting a connection to
	// reading its CONNECT (TLS handshake and WebSocket upgrade included).
	ConnectTimeout time.Duration
}

func (o *BrokerOptions) setDefaults() {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.ClientBufferBytes <= 0 {
		o.ClientBufferBytes = DefaultClientBufferBytes
	}
	if o.ClientWritesPending <= 0 {
		o.ClientWritesPending = DefaultClientWritePending
	}
	if o.ClientMaxInflight <= 0 {
		o.ClientMaxInflight = DefaultClientMaxInflight
	}
	if o.ClientMaxInflight > 65535 {
		o.ClientMaxInflight = 65535
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.MaxSessionExpiry <= 0 {
		o.MaxSessionExpiry = DefaultMaxSessionExpiry
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultClientWriteTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultBrokerConnectTimeout
	}
}

// MochiBroker is the Broker implemented with github.com/mochi-mqtt/server.
type MochiBroker struct {
	srv     *mqtt.Server
	log     *slog.Logger
	addr    net.Addr // TCP
	tlsAddr net.Addr
	wsAddr  net.Addr

	subID     atomic.Int64
	slow      atomic.Int64
	closed    atomic.Bool
	closeOnce sync.Once
	writers   sync.WaitGroup // boundedConn writer goroutines
	writes    atomic.Uint64  // Write calls on client connections
	slowLog   *rateLimiter

	auth        *authHook
	authRefused atomic.Int64
	aclDenied   atomic.Int64
	authLog     *rateLimiter
}

var _ Broker = (*MochiBroker)(nil)

// StartBroker starts the built-in broker and its listeners: TCP (Listen),
// TLS (TLSListen) and WebSocket (WebSocket), each when set.
func StartBroker(opts BrokerOptions) (*MochiBroker, error) {
	opts.setDefaults()
	log := opts.Log.With(slog.String("component", "broker"))

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(opts.MaxClients)
	caps.MaximumClientWritesPending = int32(opts.ClientWritesPending)
	caps.MaximumInflight = uint16(opts.ClientMaxInflight)
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumSessionExpiryInterval = uint32(opts.MaxSessionExpiry / time.Second)

	b := &MochiBroker{log: log, slowLog: newRateLimiter(logInterval), authLog: newRateLimiter(logInterval)}
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient:           true,
		Capabilities:           caps,
		Logger:                 slog.New(newMochiHandler(log.Handler())),
		SysTopicResendInterval: 10,
	})
	auth, err := newAuthHook(b, b.srv, opts.Users, opts.AllowAnonymous)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.auth = auth
	if err := b.srv.AddHook(auth, nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	if err := b.srv.AddHook(&dropHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: add drop hook: %w", err)
	}
	lns, err := b.openListeners(&opts)
	if err != nil {
		return nil, err
	}
	for _, l := range lns {
		if err := b.srv.AddListener(l); err != nil {
			for _, l := range lns {
				l.Close(nil)
			}
			return nil, fmt.Errorf("broker: add listener %s: %w", l.id, err)
		}
	}
	if err := b.srv.Serve(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	attrs := []any{slog.Int("users", len(opts.Users)), slog.Bool("allow_anonymous", opts.AllowAnonymous)}
	for _, a := range []struct {
		key  string
		addr net.Addr
	}{{"listen", b.addr}, {"tls_listen", b.tlsAddr}, {"websocket", b.wsAddr}} {
		if a.addr != nil {
			attrs = append(attrs, slog.String(a.key, a.addr.String()))
		}
	}
	log.Info("built-in broker started", attrs...)
	b.warnAccess(&opts)
	return b, nil
}

// openListeners opens the configured listeners; on an error it closes
// those already open.
func (b *MochiBroker) openListeners(opts *BrokerOptions) (lns []*mqttListener, err error) {
	defer func() {
		if err != nil {
			for _, l := range lns {
				_ = l.bl.Close()
			}
		}
	}()
	limits := connLimits{
		maxPending:   opts.ClientBufferBytes,
		writeTimeout: opts.WriteTimeout,
		onSlow:       b.onSlowClient,
		wg:           &b.writers,
		writes:       &b.writes,
	}
	add := func(id string, ln net.Listener) {
		lns = append(lns, &mqttListener{id: id, bl: newBoundedListener(ln, limits), srv: b.srv})
	}
	if opts.Listen != "" {
		ln, err := net.Listen("tcp", opts.Listen)
		if err != nil {
			return lns, fmt.Errorf("broker: listen %s: %w", opts.Listen, err)
		}
		b.addr = ln.Addr()
		add("tcp", connectDeadlineListener{ln, opts.ConnectTimeout})
	}
	if opts.TLSListen != "" {
		certs, err := newCertReloader(opts.TLSCertFile, opts.TLSKeyFile, b.log)
		if err != nil {
			return lns, fmt.Errorf("broker: tls_listen %s: %w", opts.TLSListen, err)
		}
		ln, err := net.Listen("tcp", opts.TLSListen)
		if err != nil {
			return lns, fmt.Errorf("broker: listen %s: %w", opts.TLSListen, err)
		}
		b.tlsAddr = ln.Addr()
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
		add("tls", tlsListener{connectDeadlineListener{ln, opts.ConnectTimeout}, cfg})
	}
	if opts.WebSocket != "" {
		ln, err := net.Listen("tcp", opts.WebSocket)
		if err != nil {
			return lns, fmt.Errorf("broker: listen %s: %w", opts.WebSocket, err)
		}
		b.wsAddr = ln.Addr()
		add("ws", newWSListener(ln, opts.ConnectTimeout, b.log))
	}
	return lns, nil
}

// warnAccess logs the access settings that are probably a mistake.
func (b *MochiBroker) warnAccess(opts *BrokerOptions) {
	var open []any
	for _, a := range []struct {
		key  string
		addr net.Addr
	}{{"listen", b.addr}, {"tls_listen", b.tlsAddr}, {"websocket", b.wsAddr}} {
		if a.addr != nil && !isLoopbackAddr(a.addr) {
			open = append(open, slog.String(a.key, a.addr.String()))
		}
	}
	listening := b.addr != nil || b.tlsAddr != nil || b.wsAddr != nil
	switch {
	case opts.AllowAnonymous && len(open) > 0:
		b.log.Warn("anonymous clients allowed on a non-loopback listener: any client that reaches it may publish and subscribe to every topic, commands included", open...)
	case !opts.AllowAnonymous && len(opts.Users) == 0 && listening:
		b.log.Warn("the broker has no users and refuses anonymous clients: no client can connect")
	}
}

// isLoopbackAddr reports whether a bound listener accepts only local clients.
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func (b *MochiBroker) onSlowClient(remote string) {
	b.slow.Add(1)
	b.slowLog.log(b.log, slog.LevelWarn, "disconnected a slow mqtt client: it did not read its messages",
		slog.String("remote", remote))
}

// Publish implements Broker. It costs one mochi inline publish: a topic
// lookup and a copy of the packet per matching subscriber, no socket I/O
// (deliveries are handed to each client's bounded queue without waiting).
func (b *MochiBroker) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if b.closed.Load() {
		return fmt.Errorf("broker publish: %w", ErrClosed)
	}
	if err := validateTopicName(topic); err != nil {
		return fmt.Errorf("broker publish: %w", err)
	}
	if qos > 2 {
		return fmt.Errorf("broker publish %q: %w: %d", topic, ErrInvalidQoS, qos)
	}
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("broker publish %q: %w", topic, err)
	}
	return nil
}

// Subscribe implements Broker.
func (b *MochiBroker) Subscribe(filter string, fn func(topic string, payload []byte)) (func(), error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("broker subscribe: %w", ErrClosed)
	}
	if fn == nil {
		return nil, fmt.Errorf("broker subscribe %q: nil handler", filter)
	}
	id := int(b.subID.Add(1))
	handler := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	}
	if err := b.srv.Subscribe(filter, id, handler); err != nil {
		return nil, fmt.Errorf("broker subscribe %q: %w", filter, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() { _ = b.srv.Unsubscribe(filter, id) })
	}, nil
}

// Addr implements Broker.
func (b *MochiBroker) Addr() net.Addr { return b.addr }

// TLSAddr is the TLS listen address, nil without a TLS listener.
func (b *MochiBroker) TLSAddr() net.Addr { return b.tlsAddr }

// WSAddr is the WebSocket listen address, nil without a WebSocket listener;
// clients connect to ws://{WSAddr}/mqtt.
func (b *MochiBroker) WSAddr() net.Addr { return b.wsAddr }

// Stats implements Broker.
func (b *MochiBroker) Stats() BrokerStats {
	info := b.srv.Info.Clone()
	return BrokerStats{
		ClientsConnected: info.ClientsConnected,
		MessagesReceived: info.MessagesReceived,
		MessagesSent:     info.MessagesSent,
		MessagesDropped:  info.MessagesDropped + info.InflightDropped,
		SlowDisconnects:  b.slow.Load(),
		Retained:         info.Retained,
		AuthRefused:      b.authRefused.Load(),
		ACLDenied:        b.aclDenied.Load(),
	}
}

// Close implements Broker. It waits for the client connections to end
// (pending bytes are flushed for at most a second).
func (b *MochiBroker) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.quiesce()
		_ = b.srv.Close()
		b.writers.Wait()
		b.log.Info("built-in broker stopped")
	})
	return nil
}

// quiesce lets mochi's per-client write loops hand what they still hold
// (such as the retained "offline" status published just before Close) to
// the connections: it waits until no client write happened for
// quiesceIdle, for at most quiesceMax.
func (b *MochiBroker) quiesce() {
	if b.addr == nil && b.tlsAddr == nil && b.wsAddr == nil {
		return
	}
	deadline := time.Now().Add(quiesceMax)
	last := b.writes.Load()
	for time.Now().Before(deadline) {
		time.Sleep(quiesceIdle)
		n := b.writes.Load()
		if n == last {
			return
		}
		last = n
	}
}

// Bounds of quiesce.
const (
	quiesceIdle = 20 * time.Millisecond
	quiesceMax  = 500 * time.Millisecond
)

// dropHook logs (rate-limited) a delivery the engine dropped because the
// client's pending-write queue was full: counted in Stats, never silent.
type dropHook struct {
	mqtt.HookBase
	b *MochiBroker
}

func (h *dropHook) ID() string { return "drop-log" }

func (h *dropHook) Provides(b byte) bool { return b == mqtt.OnPublishDropped }

func (h *dropHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.b.slowLog.log(h.b.log, slog.LevelWarn, "dropped a message for a slow mqtt client: its pending-write queue is full",
		slog.String("client", cl.ID), slog.String("topic", pk.TopicName),
		slog.Int64("dropped_total", h.b.Stats().MessagesDropped))
}
