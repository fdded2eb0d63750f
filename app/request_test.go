package app

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/causeway/causeway/internal/modbustest"
	"github.com/causeway/causeway/internal/testpeer"
)

// requester is an MQTT 5 client that sends requests with a response topic
// and correlation data and collects the answers.
type requester struct {
	cli     *paho.Client
	answers chan *paho.Publish
}

func newRequester(t *testing.T, addr, responseFilter string) *requester {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := &requester{answers: make(chan *paho.Publish, 16)}
	r.cli = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			r.answers <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.cli.Connect(ctx, &paho.Connect{ClientID: fmt.Sprintf("req-%d", time.Now().UnixNano()), KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cli.Disconnect(&paho.Disconnect{}) })
	if _, err := r.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: responseFilter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// ask publishes payload on topic as a request and returns the answer on
// responseTopic.
func (r *requester) ask(t *testing.T, topic, payload, responseTopic, corr string) *paho.Publish {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload),
		Properties: &paho.PublishProperties{ResponseTopic: responseTopic, CorrelationData: []byte(corr)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-r.answers:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("no answer on %s to %s %s", responseTopic, topic, payload)
	}
	return nil
}

func checkAnswer(t *testing.T, p *paho.Publish, topic, corr, payload string) {
	t.Helper()
	got := ""
	if p.Properties != nil {
		got = string(p.Properties.CorrelationData)
	}
	if p.Topic != topic || got != corr || string(p.Payload) != payload {
		t.Fatalf("answer %s %q correlation %q, want %s %q correlation %q", p.Topic, p.Payload, got, topic, payload, corr)
	}
}

const requestConfig = `
[gateway]
id = "gw-req"
data_dir = %q
[broker]
listen = "127.0.0.1:0"
[uplink]
url = %q
[[modbus]]
url = %q
[[modbus.device]]
name = "boiler"
unit_id = 1
interval = "1s"
[[modbus.device.point]]
name = "setpoint"
table = "holding"
address = 101
scale = 0.5
writable = true
[[modbus.device.point]]
name = "supply_temp"
table = "holding"
address = 100
`

// TestConfirmedWrites: MQTT 5 requests with a response topic and
// correlation data get their answer there, with the read-back value or the
// error, from the built-in broker and through the uplink.
func TestConfirmedWrites(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Options{})
	up := testpeer.StartMosquitto(t, 0)
	r := start(t, fmt.Sprintf(requestConfig, t.TempDir(), up.URL(), srv.URL()))

	local := newRequester(t, r.a.BrokerAddr().String(), "replies/#")
	p := local.ask(t, "gw-req/modbus/boiler/setpoint/set", "22.5", "replies/local", "corr-1")
	checkAnswer(t, p, "replies/local", "corr-1", `{"ok":true,"values":{"setpoint":22.5}}`)
	if v, err := srv.Get(1, "holding", 101, 1); err != nil || v[0] != 45 {
		t.Fatalf("register 101 = %v %v, want 45 (22.5 / 0.5)", v, err)
	}
	p = local.ask(t, "gw-req/modbus/boiler/supply_temp/set", "1", "replies/local", "corr-2")
	checkAnswer(t, p, "replies/local", "corr-2", `{"ok":false,"error":"point supply_temp is not writable"}`)
	// A response topic that is a command topic is refused (no answer).
	if _, err := local.cli.Publish(context.Background(), &paho.Publish{Topic: "gw-req/modbus/boiler/setpoint/set", QoS: 1, Payload: []byte("21"),
		Properties: &paho.PublishProperties{ResponseTopic: "gw-req/modbus/boiler/set", CorrelationData: []byte("x")}}); err != nil {
		t.Fatal(err)
	}

	// The same through the uplink: the requester is on the remote broker.
	deadline := time.Now().Add(10 * time.Second)
	for !r.a.snapshot().Uplink.Connected {
		if time.Now().After(deadline) {
			t.Fatal("uplink not connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the command subscription follows the connection
	remote := newRequester(t, fmt.Sprintf("127.0.0.1:%d", up.Port), "answers/#")
	p = remote.ask(t, "gw-req/modbus/boiler/setpoint/set", "19", "answers/remote", "corr-3")
	checkAnswer(t, p, "answers/remote", "corr-3", `{"ok":true,"values":{"setpoint":19}}`)
	select {
	case p := <-local.answers:
		t.Fatalf("an answer on the refused response topic: %+v", p)
	default:
	}
}
