package mqttcore

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// BrokerUser is one user of the built-in broker ([[broker.user]]).
type BrokerUser struct {
	// Name is the MQTT user name. Names are unique.
	Name string
	// PasswordHash is the bcrypt hash of the password ("$2a$", "$2b$" or
	// "$2y$"); HashPassword makes one from a plaintext password, so that no
	// plaintext is kept by the broker.
	PasswordHash []byte
	// Publish are the topic filters the user may publish to (PUBLISH and
	// the will message of its CONNECT). None: it may publish nothing.
	Publish []string
	// Subscribe are the topic filters the user may subscribe within: a
	// SUBSCRIBE filter is granted when every topic it can match is matched
	// by one of these. None: it may subscribe to nothing.
	Subscribe []string
}

// PasswordHashCost is the bcrypt cost of HashPassword: about 50-100 ms per
// hash on a Raspberry Pi 4, paid at start for each plaintext password and
// once per user and password at CONNECT (then cached, see authCacheSize).
const PasswordHashCost = 10

// MaxPasswordLen is the longest password bcrypt uses in full (bytes).
const MaxPasswordLen = 72

// HashPassword returns the bcrypt hash (cost PasswordHashCost) of password.
func HashPassword(password []byte) ([]byte, error) {
	if len(password) == 0 {
		return nil, errors.New("empty password")
	}
	if len(password) > MaxPasswordLen {
		return nil, fmt.Errorf("password of %d bytes: bcrypt uses at most %d", len(password), MaxPasswordLen)
	}
	return bcrypt.GenerateFromPassword(password, PasswordHashCost)
}

// Bounds of the authentication path.
const (
	// authCacheSize bounds the remembered successful logins.
	authCacheSize = 1024
	// authCacheTTL is how long a successful login is remembered.
	authCacheTTL = time.Hour
	// authWait bounds the wait for a bcrypt slot (see authHook.slots).
	authWait = 5 * time.Second
)

// authHook is the broker's authentication and access control.
//
// CONNECT: a client without a user name is anonymous, admitted only with
// allow_anonymous (it may then publish and subscribe to every topic); a
// client with a user name must name a configured user and give its
// password, and a will topic it may not publish to is refused. The
// decision is taken in OnConnect, which (unlike OnConnectAuthenticate) lets
// the hook choose the CONNACK reason code:
//
//	why                          MQTT 5                            MQTT 3.1.1
//	no user name, not allowed    0x87 not authorized               5 not authorized
//	unknown user, bad password   0x86 bad user name or password    4 bad user name or password
//	will topic not allowed       0x87 not authorized               5 not authorized
//	no bcrypt slot within 5 s    0x89 server busy                  3 server unavailable
//
// Passwords are checked with bcrypt, at most len(slots) at once so that a
// flood of CONNECTs with wrong passwords cannot take every core; a
// successful check is remembered (authCache) so that a reconnect storm of
// known clients costs one HMAC each, not one bcrypt each. A user name that
// does not exist costs a bcrypt too, so timing does not reveal which names
// exist.
//
// ACL: mochi calls OnACLCheck for every PUBLISH from a client (write),
// every SUBSCRIBE filter and every delivery to a client (read), and
// OnPublish for every PUBLISH once its topic alias is resolved. Users are
// held to their filters (anyCovers); a delivery is checked too, so a
// session taken over by another user (same client id) does not leak the
// first user's subscriptions. The gateway's own in-process Publish and
// Subscribe (mochi's inline client) are never restricted.
type authHook struct {
	mqtt.HookBase
	srv       *mqtt.Server
	b         *MochiBroker
	anonymous bool
	users     map[string]*BrokerUser
	cache     *authCache
	slots     chan struct{}
	wait      atomic.Int64 // nanoseconds to wait for a slot: authWait

	dummyOnce sync.Once
	dummy     []byte // a hash to compare against for unknown users
	dummyCost int
	checks    atomic.Int64 // bcrypt comparisons made
}

func newAuthHook(b *MochiBroker, srv *mqtt.Server, users []BrokerUser, anonymous bool) (*authHook, error) {
	h := &authHook{
		srv: srv, b: b, anonymous: anonymous,
		users: make(map[string]*BrokerUser, len(users)),
		cache: newAuthCache(authCacheSize, authCacheTTL),
		slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
	}
	h.wait.Store(int64(authWait))
	h.dummyCost = bcrypt.MinCost
	for i := range users {
		u := users[i]
		if u.Name == "" {
			return nil, fmt.Errorf("broker user %d: empty name", i)
		}
		if _, dup := h.users[u.Name]; dup {
			return nil, fmt.Errorf("broker user %q: defined twice", u.Name)
		}
		cost, err := bcrypt.Cost(u.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("broker user %q: password hash: %w", u.Name, err)
		}
		h.dummyCost = max(h.dummyCost, cost)
		for _, f := range append(append([]string(nil), u.Publish...), u.Subscribe...) {
			if !mqtt.IsValidFilter(f, false) {
				return nil, fmt.Errorf("broker user %q: invalid topic filter %q", u.Name, f)
			}
		}
		u.PasswordHash = bytes.Clone(u.PasswordHash)
		u.Publish = append([]string(nil), u.Publish...)
		u.Subscribe = append([]string(nil), u.Subscribe...)
		h.users[u.Name] = &u
	}
	return h, nil
}

func (h *authHook) ID() string { return "auth-acl" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish
}

// OnConnect decides whether the client may connect; a refused client gets
// its CONNACK here, and mochi closes the connection on the error.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	code, why := h.authenticate(cl, pk)
	if code == packets.CodeSuccess {
		return nil
	}
	h.b.authRefused.Add(1)
	h.b.authLog.log(h.b.log, slog.LevelWarn, "refused an mqtt client", slog.String("reason", why),
		slog.String("user", string(cl.Properties.Username)), slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote), slog.String("listener", cl.Net.Listener),
		slog.Int64("refused_total", h.b.authRefused.Load()))
	if cl.Properties.ProtocolVersion < 5 {
		code = v3ConnackCode(code)
	}
	_ = h.srv.SendConnack(cl, code, false, nil)
	return code
}

// OnConnectAuthenticate admits every client that OnConnect let through
// (mochi refuses a client when no hook returns true).
func (h *authHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// authenticate returns CodeSuccess or the reason code of the refusal, with
// a reason for the log.
func (h *authHook) authenticate(cl *mqtt.Client, pk packets.Packet) (packets.Code, string) {
	name := string(cl.Properties.Username)
	if name == "" {
		if h.anonymous {
			return packets.CodeSuccess, ""
		}
		return packets.ErrNotAuthorized, "no user name, and anonymous clients are not allowed"
	}
	u := h.users[name]
	switch ok, busy := h.verify(u, name, pk.Connect.Password); {
	case busy:
		return packets.ErrServerBusy, "too many password checks at once"
	case !ok && u == nil:
		return packets.ErrBadUsernameOrPassword, "unknown user"
	case !ok:
		return packets.ErrBadUsernameOrPassword, "wrong password"
	}
	if pk.Connect.WillFlag && !anyCovers(u.Publish, pk.Connect.WillTopic) {
		return packets.ErrNotAuthorized, "the will topic " + pk.Connect.WillTopic + " is outside the user's publish filters"
	}
	return packets.CodeSuccess, ""
}

// verify checks password against the user's hash (u nil: a user that does
// not exist, checked against a dummy hash for the same cost). busy: no
// bcrypt slot came free within authWait.
func (h *authHook) verify(u *BrokerUser, name string, password []byte) (ok, busy bool) {
	if len(password) > MaxPasswordLen {
		return false, false // bcrypt would compare only the first 72 bytes
	}
	key := h.cache.key(name, password)
	if u != nil && h.cache.has(key) {
		return true, false
	}
	timer := time.NewTimer(time.Duration(h.wait.Load()))
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
	case <-timer.C:
		return false, true
	}
	defer func() { <-h.slots }()
	hash := h.dummyHash()
	if u != nil {
		hash = u.PasswordHash
	}
	h.checks.Add(1)
	err := bcrypt.CompareHashAndPassword(hash, password)
	if u == nil || err != nil {
		return false, false
	}
	h.cache.add(key)
	return true, false
}

func (h *authHook) dummyHash() []byte {
	h.dummyOnce.Do(func() {
		var pw [16]byte
		_, _ = rand.Read(pw[:])
		h.dummy, _ = bcrypt.GenerateFromPassword(pw[:], h.dummyCost)
	})
	return h.dummy
}

// OnACLCheck: topic is a topic name for a PUBLISH from the client (write)
// and for a delivery to it, a topic filter for a SUBSCRIBE.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if len(cl.Properties.Username) == 0 {
		return h.anonymous // anonymous clients only got in when allowed
	}
	if write && (cl.Properties.ProtocolVersion < 5 || topic == "") {
		// Decided by OnPublish: MQTT 3.1.1 (see there), and an MQTT 5
		// PUBLISH by topic alias, which mochi checks here before it
		// resolves the alias.
		return true
	}
	if write {
		return h.allowed(cl, topic, true)
	}
	return h.allowed(cl, stripShare(topic), false)
}

// OnPublish checks the PUBLISH packets of users once more, with the topic
// alias resolved; it decides those OnACLCheck left to it. A refused one is
// acknowledged as usual and discarded (not retained, not delivered):
// MQTT 3.1.1 has no way to tell a client that a publish was refused, and
// mochi would disconnect the client, which then sends the same QoS 1
// message again after every reconnect, for ever; mosquitto acknowledges and
// discards too. MQTT 5 clients get PUBACK 0x87 from OnACLCheck instead;
// here they only meet an unknown topic alias.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || len(cl.Properties.Username) == 0 {
		return pk, nil
	}
	if pk.TopicName == "" || !h.allowed(cl, pk.TopicName, true) {
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// allowed applies the topic filters of the client's user: publish filters
// to a topic name, subscribe filters to a topic filter or, for a delivery,
// a topic name. A refusal is counted and logged (rate-limited).
func (h *authHook) allowed(cl *mqtt.Client, topic string, write bool) bool {
	u := h.users[string(cl.Properties.Username)]
	var ok bool
	switch {
	case u == nil:
		ok = false
	case write:
		ok = anyCovers(u.Publish, topic)
	default:
		ok = anyCovers(u.Subscribe, topic)
	}
	if !ok {
		h.b.aclDenied.Add(1)
		action := "subscribe"
		if write {
			action = "publish"
		}
		h.b.authLog.log(h.b.log, slog.LevelWarn, "denied by the broker's ACL", slog.String("action", action),
			slog.String("user", string(cl.Properties.Username)), slog.String("client", cl.ID),
			slog.String("topic", topic), slog.Int64("denied_total", h.b.aclDenied.Load()))
	}
	return ok
}

// v3ConnackCode maps a CONNACK reason code to its MQTT 3.1.1 return code
// (mochi maps 0x86 to 5 and leaves 0x87 unmapped, an invalid 3.1.1 code).
func v3ConnackCode(c packets.Code) packets.Code {
	switch c.Code {
	case packets.ErrBadUsernameOrPassword.Code:
		return packets.ErrMalformedUsernameOrPassword // 4: bad user name or password
	case packets.ErrServerBusy.Code, packets.ErrServerUnavailable.Code:
		return packets.Err3ServerUnavailable // 3
	default:
		return packets.Err3NotAuthorized // 5
	}
}

// authCache remembers successful logins (user name and password) for ttl,
// at most size of them, so that a client that reconnects often does not
// cost a bcrypt each time. It keeps an HMAC-SHA256 of the name and the
// password under a key drawn at start, never the password: the entries are
// useless outside this process, and failed logins are never cached.
type authCache struct {
	secret [32]byte
	size   int
	ttl    time.Duration
	mu     sync.Mutex
	m      map[[32]byte]time.Time // expiry
}

func newAuthCache(size int, ttl time.Duration) *authCache {
	c := &authCache{size: size, ttl: ttl, m: make(map[[32]byte]time.Time)}
	_, _ = rand.Read(c.secret[:])
	return c
}

func (c *authCache) key(name string, password []byte) [32]byte {
	m := hmac.New(sha256.New, c.secret[:])
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(name)))
	m.Write(n[:]) // length-prefixed: ("a", "b") and ("ab", "") differ
	m.Write([]byte(name))
	m.Write(password)
	var k [32]byte
	m.Sum(k[:0])
	return k
}

func (c *authCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[k]
	if ok && time.Now().After(exp) {
		delete(c.m, k)
		ok = false
	}
	return ok
}

func (c *authCache) add(k [32]byte) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.size {
		for k2, exp := range c.m { // drop the expired entries, else one at random
			if now.After(exp) {
				delete(c.m, k2)
			}
		}
		for k2 := range c.m {
			if len(c.m) < c.size {
				break
			}
			delete(c.m, k2)
		}
	}
	c.m[k] = now.Add(c.ttl)
}

func (c *authCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
