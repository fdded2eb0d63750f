package mqttcore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"
)

// Tests of the built-in broker's users, ACLs and anonymous rule, with real
// peers: mosquitto_pub/mosquitto_sub (MQTT 5 and 3.1.1) and paho.golang
// (MQTT 5 reason codes).

// testHash is a bcrypt hash at the minimum cost, to keep the tests fast.
func testHash(t testing.TB, password string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testUsers: alice may command gw-01 and publish under alice/, and read
// gw-01; reader may only read gw-01.
func testUsers(t testing.TB) []BrokerUser {
	return []BrokerUser{
		{Name: "alice", PasswordHash: testHash(t, "alice-pw"),
			Publish: []string{"gw-01/+/+/set", "alice/#"}, Subscribe: []string{"gw-01/#", "alice/#"}},
		{Name: "reader", PasswordHash: testHash(t, "reader-pw"), Subscribe: []string{"gw-01/#"}},
	}
}

// mosq runs mosquitto_pub or mosquitto_sub (bounded to 10 s) and returns
// its combined output and exit code.
func mosq(t testing.TB, name string, args ...string) (string, int) {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found. %s", name, mosquittoHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("%s: %v", name, err)
		return "", -1
	}
}

func hostPort(t testing.TB, a net.Addr) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return host, port
}

// client is a paho MQTT 5 client for the access tests.
type client struct {
	cli  *paho.Client
	mu   sync.Mutex
	msgs []message
}

// connectClient runs the MQTT 5 CONNECT of cp over conn; on a refusal it
// returns the CONNACK and the error.
func connectClient(t testing.TB, conn net.Conn, cp *paho.Connect) (*client, *paho.Connack, error) {
	t.Helper()
	c := &client{}
	c.cli = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.msgs = append(c.msgs, message{topic: pr.Packet.Topic, payload: string(pr.Packet.Payload), qos: pr.Packet.QoS, retain: pr.Packet.Retain})
			c.mu.Unlock()
			return true, nil
		}},
	})
	if cp.ClientID == "" {
		cp.ClientID = fmt.Sprintf("c-%d", time.Now().UnixNano())
	}
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	cp.UsernameFlag, cp.PasswordFlag = cp.Username != "", cp.Password != nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.cli.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { _ = c.cli.Disconnect(&paho.Disconnect{}) })
	return c, ca, nil
}

func dialClient(t testing.TB, addr, user, password string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cp := &paho.Connect{Username: user, CleanStart: true}
	if password != "" {
		cp.Password = []byte(password)
	}
	c, _, err := connectClient(t, conn, cp)
	if err != nil {
		t.Fatalf("connect as %q: %v", user, err)
	}
	return c
}

func (c *client) messages() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]message(nil), c.msgs...)
}

func (c *client) publish(qos byte, topic, payload string) (*paho.PublishResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
}

func (c *client) subscribe(filters ...string) (*paho.Suback, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	return c.cli.Subscribe(ctx, s)
}

// inlineCollector subscribes in-process to filter and collects "topic payload".
type inlineCollector struct {
	mu  sync.Mutex
	got []string
}

func collect(t testing.TB, b *MochiBroker, filter string) *inlineCollector {
	t.Helper()
	c := &inlineCollector{}
	unsub, err := b.Subscribe(filter, func(topic string, payload []byte) {
		c.mu.Lock()
		c.got = append(c.got, topic+" "+string(payload))
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return c
}

func (c *inlineCollector) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// A wrong password, an unknown user and a missing user name are refused
// with the reason code of each protocol version, as mosquitto's clients
// and paho report them.
func TestBrokerAuthRefusesBadCredentials(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{Listen: "0.0.0.0:0", Users: testUsers(t)})
	host, port := hostPort(t, b.Addr())
	pub := func(v string, creds ...string) (string, int) {
		return mosq(t, "mosquitto_pub", append([]string{"-h", host, "-p", port, "-V", v, "-t", "gw-01/x", "-m", "v"}, creds...)...)
	}
	tests := []struct {
		name, v string
		creds   []string
		code    int
		out     string
	}{
		{"v5 right password", "5", []string{"-u", "alice", "-P", "alice-pw"}, 0, ""},
		{"v5 wrong password", "5", []string{"-u", "alice", "-P", "nope"}, 0x86, "Connection error: Bad User Name or Password"},
		{"v5 unknown user", "5", []string{"-u", "mallory", "-P", "alice-pw"}, 0x86, "Connection error: Bad User Name or Password"},
		{"v5 user without password", "5", []string{"-u", "alice"}, 0x86, "Connection error: Bad User Name or Password"},
		{"v5 anonymous", "5", nil, 0x87, "Connection error: Not authorized"},
		{"v3.1.1 right password", "311", []string{"-u", "reader", "-P", "reader-pw"}, 0, ""},
		{"v3.1.1 wrong password", "311", []string{"-u", "reader", "-P", "nope"}, 4, "Connection Refused: bad user name or password."},
		{"v3.1.1 unknown user", "311", []string{"-u", "mallory", "-P", "x"}, 4, "Connection Refused: bad user name or password."},
		{"v3.1.1 anonymous", "311", nil, 5, "Connection Refused: not authorised."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := pub(tt.v, tt.creds...)
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Fatalf("mosquitto_pub: exit %d %q, want exit %d and %q", code, out, tt.code, tt.out)
			}
		})
	}
	if st := b.Stats(); st.AuthRefused != 7 {
		t.Errorf("AuthRefused = %d, want 7", st.AuthRefused)
	}

	// paho (MQTT 5) sees the reason codes in the CONNACK.
	for _, tt := range []struct {
		user, password string
		code           byte
	}{{"alice", "nope", 0x86}, {"nobody", "x", 0x86}, {"", "", 0x87}} {
		conn, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cp := &paho.Connect{Username: tt.user, CleanStart: true}
		if tt.password != "" {
			cp.Password = []byte(tt.password)
		}
		_, ca, err := connectClient(t, conn, cp)
		if err == nil || ca == nil || ca.ReasonCode != tt.code {
			t.Errorf("paho CONNECT as %q: connack %+v, err %v; want reason 0x%x", tt.user, ca, err, tt.code)
		}
	}
	dialClient(t, b.Addr().String(), "alice", "alice-pw")
}

// Publish filters: a user may publish only where its filters allow. A
// denied QoS 1 publish gets PUBACK 0x87 (MQTT 5), is acknowledged and
// discarded for MQTT 3.1.1, and a denied QoS 0 publish is dropped; none
// reaches a subscriber. The gateway's own in-process publishes are not
// restricted.
func TestBrokerACLPublish(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{Users: testUsers(t)})
	cmds := collect(t, b, "gw-01/+/+/set")
	all := collect(t, b, "#")
	alice := dialClient(t, b.Addr().String(), "alice", "alice-pw")
	reader := dialClient(t, b.Addr().String(), "reader", "reader-pw")

	// reader has no publish rights: not even a command.
	pr, err := reader.publish(1, "gw-01/modbus/boiler/set", `{"setpoint":99}`)
	if err == nil || pr == nil || pr.ReasonCode != 0x87 {
		t.Fatalf("reader QoS 1 command: %+v %v, want PUBACK 0x87", pr, err)
	}
	if _, err := reader.publish(0, "gw-01/modbus/boiler/set", `{"setpoint":98}`); err != nil {
		t.Fatal(err) // QoS 0: nothing to report, dropped silently
	}
	if _, err := alice.publish(1, "gw-02/modbus/boiler/set", "1"); err == nil {
		t.Fatal("alice published outside her filters")
	}
	// MQTT 3.1.1: acknowledged, discarded, and the client is not disconnected.
	host, port := hostPort(t, b.Addr())
	out, code := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "311", "-u", "reader", "-P", "reader-pw",
		"-q", "1", "-t", "gw-01/modbus/boiler/set", "-m", `{"setpoint":97}`)
	if code != 0 {
		t.Fatalf("mosquitto_pub 3.1.1 QoS 1 denied: exit %d %q, want an acknowledged publish", code, out)
	}
	out, code = mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "5", "-u", "reader", "-P", "reader-pw",
		"-q", "1", "-t", "gw-01/modbus/boiler/set", "-m", `{"setpoint":96}`)
	if !strings.Contains(out, "Not authorized") {
		t.Fatalf("mosquitto_pub v5 QoS 1 denied: exit %d %q", code, out)
	}

	// Allowed: alice commands the boiler, at every QoS, and by topic alias.
	for qos := range byte(3) {
		if _, err := alice.publish(qos, "gw-01/modbus/boiler/set", fmt.Sprint(qos)); err != nil {
			t.Fatalf("alice qos %d: %v", qos, err)
		}
	}
	alias := uint16(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, topic := range []string{"alice/aliased", ""} {
		if _, err := alice.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("a"),
			Properties: &paho.PublishProperties{TopicAlias: &alias}}); err != nil {
			t.Fatalf("publish by alias %q: %v", topic, err)
		}
	}
	// A denied publish does not set an alias either.
	alias2 := uint16(2)
	for _, topic := range []string{"elsewhere/x", ""} {
		_, _ = alice.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("b"),
			Properties: &paho.PublishProperties{TopicAlias: &alias2}})
	}
	// The gateway itself publishes anywhere.
	if err := b.Publish("gw-01/status", []byte("online"), 1, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "allowed messages", func() bool { return len(all.list()) == 6 })
	time.Sleep(50 * time.Millisecond)
	want := []string{"gw-01/modbus/boiler/set 0", "gw-01/modbus/boiler/set 1", "gw-01/modbus/boiler/set 2",
		"alice/aliased a", "alice/aliased a", "gw-01/status online"}
	if got := all.list(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if got := cmds.list(); len(got) != 3 {
		t.Fatalf("commands that reached the gateway: %q", got)
	}
	if st := b.Stats(); st.ACLDenied < 6 {
		t.Errorf("ACLDenied = %d, want at least 6", st.ACLDenied)
	}
}

// Subscribe filters: a SUBSCRIBE filter is granted only within the user's
// filters (SUBACK 0x87 otherwise), for shared subscriptions too; and a
// session taken over by another user does not leak the first user's
// subscriptions, since every delivery is checked as well.
func TestBrokerACLSubscribe(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{Users: testUsers(t)})
	reader := dialClient(t, b.Addr().String(), "reader", "reader-pw")
	sa, err := reader.subscribe("gw-01/+/+/availability", "#", "+/modbus/#", "$share/g/gw-01/#", "$share/g/#", "$SYS/#", "gw-01")
	if err == nil {
		t.Fatal("no error for denied filters")
	}
	if want := []byte{1, 0x87, 0x87, 1, 0x87, 0x87, 1}; sa == nil || !bytes.Equal(sa.Reasons, want) {
		t.Fatalf("SUBACK %+v, want reasons %x", sa, want)
	}
	if err := b.Publish("gw-01/modbus/boiler/availability", []byte("online"), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("gw-02/modbus/boiler/availability", []byte("online"), 1, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the allowed message", func() bool { return len(reader.messages()) >= 1 })
	time.Sleep(50 * time.Millisecond)
	for _, m := range reader.messages() {
		if !strings.HasPrefix(m.topic, "gw-01/") {
			t.Fatalf("reader got %s", m.topic)
		}
	}

	// mosquitto_sub says so too, in both protocol versions.
	host, port := hostPort(t, b.Addr())
	for _, v := range []string{"5", "311"} {
		out, _ := mosq(t, "mosquitto_sub", "-h", host, "-p", port, "-V", v, "-u", "reader", "-P", "reader-pw", "-t", "#", "-W", "2")
		if !strings.Contains(out, "All subscription requests were denied.") {
			t.Fatalf("mosquitto_sub -V %s '#': %q", v, out)
		}
	}

	// alice subscribes to alice/# in a persistent session; reader takes the
	// session over with the same client id and inherits the subscription,
	// but gets none of alice's messages.
	conn, _ := net.Dial("tcp", b.Addr().String())
	var expiry uint32 = 300
	alice, _, err := connectClient(t, conn, &paho.Connect{ClientID: "shared-id", Username: "alice", Password: []byte("alice-pw"),
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.subscribe("alice/#"); err != nil {
		t.Fatal(err)
	}
	conn2, _ := net.Dial("tcp", b.Addr().String())
	thief, ca, err := connectClient(t, conn2, &paho.Connect{ClientID: "shared-id", Username: "reader", Password: []byte("reader-pw"),
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil || !ca.SessionPresent {
		t.Fatalf("take-over: %+v %v", ca, err)
	}
	if err := b.Publish("alice/secret", []byte("s"), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("gw-01/x", []byte("x"), 1, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range thief.messages() {
		if m.topic == "alice/secret" {
			t.Fatal("a taken-over session delivered another user's message")
		}
	}
}

// A will topic outside the user's publish filters refuses the CONNECT with
// "not authorized"; an allowed will is published when the client vanishes.
func TestBrokerWillACL(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{Users: testUsers(t)})
	wills := collect(t, b, "#")
	conn, _ := net.Dial("tcp", b.Addr().String())
	_, ca, err := connectClient(t, conn, &paho.Connect{Username: "reader", Password: []byte("reader-pw"), CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "gw-01/modbus/boiler/set", Payload: []byte(`{"setpoint":99}`), QoS: 1}})
	if err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("will on a command topic without publish rights: %+v %v, want CONNACK 0x87", ca, err)
	}
	host, port := hostPort(t, b.Addr())
	out, code := mosq(t, "mosquitto_sub", "-h", host, "-p", port, "-V", "311", "-u", "reader", "-P", "reader-pw",
		"--will-topic", "gw-01/modbus/boiler/set", "--will-payload", "x", "-t", "gw-01/#", "-W", "1")
	if code != 5 || !strings.Contains(out, "not authorised") {
		t.Fatalf("mosquitto_sub 3.1.1 with a denied will: exit %d %q", code, out)
	}

	conn, _ = net.Dial("tcp", b.Addr().String())
	if _, _, err := connectClient(t, conn, &paho.Connect{Username: "alice", Password: []byte("alice-pw"), CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "alice/status", Payload: []byte("gone"), QoS: 1}}); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close() // no DISCONNECT: the will is due
	waitFor(t, 5*time.Second, "the will", func() bool { return len(wills.list()) == 1 })
	if got := wills.list(); got[0] != "alice/status gone" {
		t.Fatalf("got %q", got)
	}
}

// The anonymous rule: refused when AllowAnonymous is false (the default of
// the configuration as soon as a listener is beyond loopback); when true
// with a listener beyond loopback, a warning is logged and anonymous
// clients have full access.
func TestBrokerAnonymous(t *testing.T) {
	nonLoopback := ""
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				nonLoopback = ipn.IP.String()
				break
			}
		}
	}
	t.Logf("non-loopback address of this machine: %q", nonLoopback)

	t.Run("refused beyond loopback", func(t *testing.T) {
		var logs testLog
		b := startTestBroker(t, BrokerOptions{Listen: "0.0.0.0:0", Users: testUsers(t),
			Log: slog.New(slog.NewTextHandler(&logs, nil))})
		_, port := hostPort(t, b.Addr())
		hosts := []string{"127.0.0.1"}
		if nonLoopback != "" {
			hosts = append(hosts, nonLoopback)
		}
		for _, h := range hosts {
			if out, code := mosq(t, "mosquitto_sub", "-h", h, "-p", port, "-V", "5", "-t", "#", "-W", "2"); code != 0x87 {
				t.Fatalf("anonymous via %s: exit %d %q", h, code, out)
			}
		}
		if strings.Contains(logs.String(), "anonymous clients allowed") {
			t.Fatal("warned about anonymous clients while refusing them")
		}
	})
	t.Run("explicitly allowed beyond loopback", func(t *testing.T) {
		var logs testLog
		b := startTestBroker(t, BrokerOptions{Listen: "0.0.0.0:0", AllowAnonymous: true, Users: testUsers(t),
			Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if !strings.Contains(logs.String(), `level=WARN msg="anonymous clients allowed on a non-loopback listener`) {
			t.Fatalf("no warning:\n%s", logs.String())
		}
		// Full access for anonymous clients; users keep their filters.
		anon := dialClient(t, b.Addr().String(), "", "")
		if _, err := anon.subscribe("#"); err != nil {
			t.Fatal(err)
		}
		if _, err := anon.publish(1, "gw-01/modbus/boiler/set", "1"); err != nil {
			t.Fatal(err)
		}
		reader := dialClient(t, b.Addr().String(), "reader", "reader-pw")
		if _, err := reader.subscribe("#"); err == nil {
			t.Fatal("a user lost its filters because anonymous clients are allowed")
		}
		// A client that gives a user name must still authenticate.
		host, port := hostPort(t, b.Addr())
		if out, code := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "311", "-u", "reader", "-P", "bad", "-t", "x", "-m", "y"); code != 4 {
			t.Fatalf("bad password with anonymous allowed: exit %d %q", code, out)
		}
	})
	t.Run("loopback", func(t *testing.T) {
		var logs testLog
		startTestBroker(t, BrokerOptions{Listen: "127.0.0.1:0", AllowAnonymous: true, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if strings.Contains(logs.String(), "level=WARN") {
			t.Fatalf("warning on loopback:\n%s", logs.String())
		}
	})
	t.Run("nobody can connect", func(t *testing.T) {
		var logs testLog
		b, err := StartBroker(BrokerOptions{Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if !strings.Contains(logs.String(), "no client can connect") {
			t.Fatalf("no warning:\n%s", logs.String())
		}
		if !isLoopbackAddr(b.Addr()) || isLoopbackAddr(&net.TCPAddr{IP: net.IPv4zero}) || isLoopbackAddr(&net.TCPAddr{IP: net.ParseIP("192.0.2.1")}) ||
			!isLoopbackAddr(&net.TCPAddr{IP: net.IPv6loopback}) {
			t.Fatal("isLoopbackAddr")
		}
	})
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A reconnect storm of known clients costs one bcrypt per user and
// password, not one per CONNECT; failed logins are never cached.
func TestBrokerAuthCache(t *testing.T) {
	users := testUsers(t)
	users[0].PasswordHash = testHash(t, "alice-pw")
	b := startTestBroker(t, BrokerOptions{Users: users})
	for range 20 {
		c := dialClient(t, b.Addr().String(), "alice", "alice-pw")
		_ = c.cli.Disconnect(&paho.Disconnect{})
	}
	if n := b.auth.checks.Load(); n != 1 {
		t.Fatalf("%d bcrypt checks for 20 connections with the same password", n)
	}
	for range 3 {
		conn, _ := net.Dial("tcp", b.Addr().String())
		if _, _, err := connectClient(t, conn, &paho.Connect{Username: "alice", Password: []byte("wrong"), CleanStart: true}); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	if n := b.auth.checks.Load(); n != 4 {
		t.Fatalf("%d bcrypt checks, want 4: failures are not cached", n)
	}
	if b.auth.cache.len() != 1 {
		t.Fatalf("cache holds %d entries", b.auth.cache.len())
	}
}

func TestAuthCacheBounds(t *testing.T) {
	c := newAuthCache(3, time.Hour)
	keys := make([][32]byte, 5)
	for i := range keys {
		keys[i] = c.key(fmt.Sprint("user", i), []byte("pw"))
		c.add(keys[i])
	}
	if c.len() != 3 {
		t.Fatalf("len %d, want the bound 3", c.len())
	}
	if !c.has(keys[4]) {
		t.Fatal("the newest entry was evicted")
	}
	if c.key("a", []byte("bc")) == c.key("ab", []byte("c")) {
		t.Fatal("the name and the password run together in the key")
	}
	if c.key("u", []byte("p")) == newAuthCache(3, time.Hour).key("u", []byte("p")) {
		t.Fatal("two caches share a key: the HMAC secret is not random")
	}
	short := newAuthCache(3, time.Millisecond)
	k := short.key("u", []byte("p"))
	short.add(k)
	time.Sleep(5 * time.Millisecond)
	if short.has(k) || short.len() != 0 {
		t.Fatal("an expired entry is still valid")
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(h); cost != PasswordHashCost || bytes.Contains(h, []byte("s3cret")) {
		t.Fatalf("hash %s", h)
	}
	if bcrypt.CompareHashAndPassword(h, []byte("s3cret")) != nil || bcrypt.CompareHashAndPassword(h, []byte("s3creT")) == nil {
		t.Fatal("hash does not verify")
	}
	if _, err := HashPassword(nil); err == nil {
		t.Fatal("empty password hashed")
	}
	if _, err := HashPassword(bytes.Repeat([]byte("x"), 73)); err == nil {
		t.Fatal("73-byte password hashed: bcrypt would ignore the end")
	}
	// At CONNECT, a password longer than bcrypt's 72 bytes never matches
	// (bcrypt would compare its first 72 bytes only).
	long := strings.Repeat("p", 72)
	b := startTestBroker(t, BrokerOptions{Users: []BrokerUser{{Name: "u", PasswordHash: testHash(t, long)}}})
	dialClient(t, b.Addr().String(), "u", long)
	conn, _ := net.Dial("tcp", b.Addr().String())
	if _, _, err := connectClient(t, conn, &paho.Connect{Username: "u", Password: []byte(long + "extra"), CleanStart: true}); err == nil {
		t.Fatal("a password extending the real one was accepted")
	}
}

func TestBrokerUserValidation(t *testing.T) {
	for _, users := range [][]BrokerUser{
		{{Name: "", PasswordHash: testHash(t, "p")}},
		{{Name: "a", PasswordHash: []byte("plain")}},
		{{Name: "a", PasswordHash: testHash(t, "p")}, {Name: "a", PasswordHash: testHash(t, "q")}},
		{{Name: "a", PasswordHash: testHash(t, "p"), Publish: []string{"a/#/b"}}},
	} {
		if b, err := StartBroker(BrokerOptions{Listen: "127.0.0.1:0", Users: users, Log: discardLogger()}); err == nil {
			_ = b.Close()
			t.Errorf("users %+v accepted", users)
		}
	}
}

// While every bcrypt slot is taken (a flood of CONNECTs with wrong
// passwords), a known client (cached) still connects at once, and an
// unknown one is refused with "server busy" after the wait bound instead
// of queueing for ever.
func TestBrokerAuthSlotsBusy(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{Users: testUsers(t)})
	dialClient(t, b.Addr().String(), "alice", "alice-pw") // cached from now on
	b.auth.wait.Store(int64(300 * time.Millisecond))
	for range cap(b.auth.slots) {
		b.auth.slots <- struct{}{} // the flood holds every slot
	}
	start := time.Now()
	dialClient(t, b.Addr().String(), "alice", "alice-pw")
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("a cached client waited %s for a bcrypt slot", took)
	}
	conn, _ := net.Dial("tcp", b.Addr().String())
	if _, ca, err := connectClient(t, conn, &paho.Connect{Username: "reader", Password: []byte("reader-pw"), CleanStart: true}); err == nil || ca == nil || ca.ReasonCode != 0x89 {
		t.Fatalf("no slot: %+v %v, want CONNACK 0x89 server busy", ca, err)
	}
	host, port := hostPort(t, b.Addr())
	if out, code := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "311", "-u", "reader", "-P", "reader-pw", "-t", "gw-01/x", "-m", "x"); code != 3 {
		t.Fatalf("no slot, MQTT 3.1.1: exit %d %q, want 3 (server unavailable)", code, out)
	}
	for range cap(b.auth.slots) {
		<-b.auth.slots
	}
	dialClient(t, b.Addr().String(), "reader", "reader-pw")
}
