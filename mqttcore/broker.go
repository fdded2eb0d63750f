package mqttcore

import (
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
// to it over TCP; the gateway itself publishes and subscribes in-process.
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
}

// Defaults of BrokerOptions.
const (
	DefaultMaxClients         = 256
	DefaultClientBufferBytes  = 1 << 20
	DefaultClientWritePending = 256
	DefaultClientMaxInflight  = 1024
	DefaultMaxPacketSize      = 1 << 20
	DefaultMaxSessionExpiry   = 24 * time.Hour
	DefaultClientWriteTimeout = 30 * time.Second
)

// BrokerOptions configures the built-in broker. Zero values take defaults.
//
// Authentication (users, ACLs, allow_anonymous), the TLS listener and the
// WebSocket listener come later as further fields here; until then every
// client is allowed, so Listen should stay on loopback.
type BrokerOptions struct {
	// Listen is the TCP listen address, "" for no TCP listener.
	Listen string
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
}

// MochiBroker is the Broker implemented with github.com/mochi-mqtt/server.
type MochiBroker struct {
	srv  *mqtt.Server
	log  *slog.Logger
	addr net.Addr

	subID     atomic.Int64
	slow      atomic.Int64
	closed    atomic.Bool
	closeOnce sync.Once
	writers   sync.WaitGroup // boundedConn writer goroutines
	writes    atomic.Uint64  // Write calls on client connections
	slowLog   *rateLimiter
}

var _ Broker = (*MochiBroker)(nil)

// StartBroker starts the built-in broker and, if opts.Listen is set, its
// TCP listener.
func StartBroker(opts BrokerOptions) (*MochiBroker, error) {
	opts.setDefaults()
	log := opts.Log.With(slog.String("component", "broker"))

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(opts.MaxClients)
	caps.MaximumClientWritesPending = int32(opts.ClientWritesPending)
	caps.MaximumInflight = uint16(opts.ClientMaxInflight)
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumSessionExpiryInterval = uint32(opts.MaxSessionExpiry / time.Second)

	b := &MochiBroker{log: log, slowLog: newRateLimiter(logInterval)}
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient:           true,
		Capabilities:           caps,
		Logger:                 slog.New(newMochiHandler(log.Handler())),
		SysTopicResendInterval: 10,
	})
	if err := b.srv.AddHook(new(allowAllHook), nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	if err := b.srv.AddHook(&dropHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: add drop hook: %w", err)
	}
	if opts.Listen != "" {
		ln, err := net.Listen("tcp", opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("broker: listen %s: %w", opts.Listen, err)
		}
		b.addr = ln.Addr()
		bl := newBoundedListener(ln, connLimits{
			maxPending:   opts.ClientBufferBytes,
			writeTimeout: opts.WriteTimeout,
			onSlow:       b.onSlowClient,
			wg:           &b.writers,
			writes:       &b.writes,
		})
		if err := b.srv.AddListener(&mqttListener{id: "tcp", bl: bl, srv: b.srv}); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("broker: add listener %s: %w", opts.Listen, err)
		}
	}
	if err := b.srv.Serve(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	log.Info("built-in broker started", slog.Any("listen", b.addr))
	return b, nil
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
	if b.addr == nil {
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

// allowAllHook lets every client connect, publish and subscribe. It stands
// in until the broker's users and ACLs are implemented. (mochi's own
// auth.AllowHook is the same, but its package pulls in a YAML dependency.)
type allowAllHook struct {
	mqtt.HookBase
}

func (h *allowAllHook) ID() string { return "allow-all" }

func (h *allowAllHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowAllHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAllHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

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
