package mqttcore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/eclipse/paho.golang/paho"
)

// Request is a message with its MQTT 5 request/response properties: a
// requester that sets ResponseTopic (and usually CorrelationData) expects
// its answer there, carrying the same correlation data.
type Request struct {
	Topic           string
	Payload         []byte
	ResponseTopic   string
	CorrelationData []byte
	// Username is the publisher's user name on the built-in broker ("" for
	// anonymous clients, the gateway itself, and the uplink).
	Username string
}

// maxCorrelationData bounds the correlation data echoed back.
const maxCorrelationData = 4096

// SubscribeRequests is Subscribe with the message's response topic and
// correlation data. fn runs on the publisher's goroutine, as for
// Subscribe: copy what it keeps.
func (b *MochiBroker) SubscribeRequests(filter string, fn func(Request)) (func(), error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("broker subscribe: %w", ErrClosed)
	}
	if fn == nil {
		return nil, fmt.Errorf("broker subscribe %q: nil handler", filter)
	}
	id := int(b.subID.Add(1))
	handler := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		r := Request{
			Topic: pk.TopicName, Payload: pk.Payload,
			ResponseTopic: pk.Properties.ResponseTopic, CorrelationData: pk.Properties.CorrelationData,
		}
		if r.ResponseTopic != "" && pk.Origin != "" {
			if cl, ok := b.srv.Clients.Get(pk.Origin); ok {
				r.Username = string(cl.Properties.Username)
			}
		}
		fn(r)
	}
	if err := b.srv.Subscribe(filter, id, handler); err != nil {
		return nil, fmt.Errorf("broker subscribe %q: %w", filter, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() { _ = b.srv.Unsubscribe(filter, id) })
	}, nil
}

// PublishResponse publishes an answer to a Request: payload on topic (its
// ResponseTopic), QoS 1, not retained, with the request's correlation data.
func (b *MochiBroker) PublishResponse(topic string, payload, correlation []byte) error {
	if b.closed.Load() {
		return fmt.Errorf("broker respond: %w", ErrClosed)
	}
	if err := validateTopicName(topic); err != nil {
		return fmt.Errorf("broker respond: response topic: %w", err)
	}
	if len(correlation) > maxCorrelationData {
		return fmt.Errorf("broker respond %q: correlation data of %d bytes, at most %d", topic, len(correlation), maxCorrelationData)
	}
	cl, ok := b.srv.Clients.Get(mqtt.InlineClientId)
	if !ok {
		return errors.New("broker respond: no inline client")
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    1, // not used for the inline client, but must be valid
	}
	pk.Properties.CorrelationData = correlation
	if err := b.srv.InjectPacket(cl, pk); err != nil {
		return fmt.Errorf("broker respond %q: %w", topic, err)
	}
	return nil
}

// Respond publishes the answer to a Request that came through the uplink:
// payload on topic (its ResponseTopic, used as given: no topic_prefix),
// QoS 1, with the correlation data. It is sent at once on the current
// connection, not through the offline queue: an answer that cannot be sent
// now is useless later, and the requester times out.
func (u *PahoUplink) Respond(ctx context.Context, topic string, payload, correlation []byte) error {
	if err := validateTopicName(topic); err != nil {
		return fmt.Errorf("uplink respond: response topic: %w", err)
	}
	if len(correlation) > maxCorrelationData {
		return fmt.Errorf("uplink respond %q: correlation data of %d bytes, at most %d", topic, len(correlation), maxCorrelationData)
	}
	u.runMu.Lock()
	cm := u.cm
	u.runMu.Unlock()
	if cm == nil || !u.Connected() {
		return fmt.Errorf("uplink respond %q: not connected", topic)
	}
	_, err := cm.Publish(ctx, &paho.Publish{
		QoS: 1, Topic: topic, Payload: payload,
		Properties: &paho.PublishProperties{CorrelationData: correlation},
	})
	if err != nil {
		return fmt.Errorf("uplink respond %q: %w", topic, err)
	}
	return nil
}
