package config

import (
	"os"
	"time"
)

// Defaults, as CONFIG.md shows them.
const (
	DefaultDataDir         = "./data"
	DefaultBrokerListen    = "127.0.0.1:1883"
	DefaultHTTPListen      = "127.0.0.1:9100"
	DefaultCoAPListen      = "0.0.0.0:5683"
	DefaultRouteTopic      = "{gateway}/{adapter}/{device}"
	DefaultDiscoveryPrefix = "homeassistant"
)

// newConfig returns the defaults of every top-level table, except those that
// depend on other values (gateway.id, broker.allow_anonymous), which derive
// fills in.
func newConfig() *Config {
	c := &Config{}
	c.Gateway.setDefaults()
	c.Broker.setDefaults()
	c.Queue.setDefaults()
	c.HomeAssistant.setDefaults()
	return c
}

// Default returns the configuration of an empty gateway.toml: a built-in
// broker on 127.0.0.1:1883 and nothing else. Its gateway id is the host
// name ("gateway" if there is none). It is not validated.
func Default() *Config {
	c := newConfig()
	c.Gateway.ID = "gateway"
	if h, err := os.Hostname(); err == nil && h != "" {
		c.Gateway.ID = h
	}
	c.Broker.AllowAnonymous = true
	return c
}

// DefaultRoute returns the route a point takes when no [[route]] matches it,
// and whose values a [[route]] takes for the keys it omits.
func DefaultRoute() Route {
	var r Route
	r.setDefaults()
	return r
}

func (g *Gateway) setDefaults() {
	g.DataDir = DefaultDataDir
	g.LogLevel = "info"
	g.LogFormat = "text"
	g.StatsInterval = Duration(60 * time.Second)
}

func (h *HTTP) setDefaults() { h.Listen = DefaultHTTPListen }

func (b *Broker) setDefaults() {
	b.Enabled = true
	b.Listen = DefaultBrokerListen
}

func (u *Uplink) setDefaults() {
	u.Keepalive = Duration(30 * time.Second)
	u.Protocol = 5
	u.SubscribeCommands = true
}

func (q *Queue) setDefaults() {
	q.MaxBytes = 256 << 20
	q.MaxAge = Duration(168 * time.Hour)
	q.WhenFull = "drop_oldest"
	q.Fsync = "batch"
	q.FsyncInterval = Duration(50 * time.Millisecond)
	q.Inflight = 32
}

func (c *CoAP) setDefaults() {
	c.Name = "coap"
	c.Listen = DefaultCoAPListen
	c.MaxPayload = 16 << 10
	c.RateLimit = 100
	c.RateBurst = 2000
}

func (d *CoAPDevice) setDefaults() {
	d.Observe = true
	d.Interval = Duration(10 * time.Second)
	d.Point = "value"
	d.CommandMethod = "PUT"
	d.CommandFormat = "json"
}

func (s *Serial) setDefaults() {
	s.Baud = 9600
	s.DataBits = 8
	s.Parity = "N"
	s.StopBits = 1
	s.USBInterface = -1
}

func (m *Modbus) setDefaults() {
	m.Name = "modbus"
	m.Serial.setDefaults()
	m.Timeout = Duration(500 * time.Millisecond)
	m.Retries = 2
}

func (d *ModbusDevice) setDefaults() {
	d.UnitID = 1
	d.Interval = Duration(time.Second)
	d.MaxGap = 8
}

func (p *ModbusPoint) setDefaults() {
	p.Table = "holding"
	p.Type = "uint16"
	p.Order = "ABCD"
	p.Scale = 1
}

func (u *UART) setDefaults() {
	u.Name = "uart"
	u.Serial.setDefaults()
	u.Framing = "line"
	u.Delimiter = "\n"
	u.LengthSize = 1
	u.LengthOrder = "big"
	u.MaxFrame = 4 << 10
	u.Checksum = "none"
	u.Parser = "regex"
}

func (f *UARTField) setDefaults() {
	f.Order = "big"
	f.Scale = 1
}

func (r *Route) setDefaults() {
	r.Topic = DefaultRouteTopic
	r.Payload = "json"
	r.QoS = 1
	r.Uplink = true
}

func (h *HomeAssistant) setDefaults() { h.DiscoveryPrefix = DefaultDiscoveryPrefix }
