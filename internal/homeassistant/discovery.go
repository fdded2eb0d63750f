// Package homeassistant builds Home Assistant MQTT discovery messages for
// the gateway's points (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery).
//
// One retained config message per point, on
// {prefix}/{component}/{node}/{object}/config, tells Home Assistant where
// the point's value is published, how to read it from the payload, its
// unit and device class, which topics say whether it is available, and
// the device it belongs to. A writable point also gets a command topic.
// An empty retained message on the same topic removes the entity.
//
// The package is pure: it formats messages. The app decides when to
// announce, re-announce and remove.
package homeassistant

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
)

// Kind is what a point's values are.
type Kind uint8

// The kinds of values.
const (
	Number Kind = iota
	Bool
	String
)

// Entity is one point to announce.
type Entity struct {
	Adapter, Device, Point string
	// AdapterKind is "modbus", "uart" or "coap" (shown as the model).
	AdapterKind string
	Kind        Kind
	Unit        string
	// Writable points get a command topic: number, switch or text.
	Writable bool
	// Step is the resolution of a writable number (0: 1 for whole
	// numbers... the app passes 10^-decimals of the scale).
	Step float64
	// StateTopic and Payload ("json", "value", "senml") are where and how
	// the routes publish the point (mapping.Engine.Describe).
	StateTopic string
	Payload    string
	// Availability: the adapter publishes {gateway}/{adapter}/{device}/availability.
	Availability bool
}

// Key identifies an entity: adapter/device/point.
func (e Entity) Key() string { return e.Adapter + "/" + e.Device + "/" + e.Point }

// Message is one discovery message: retained, QoS 1.
type Message struct {
	Topic   string
	Payload []byte
}

// Component is the Home Assistant platform of e.
func (e Entity) Component() string {
	switch {
	case e.Kind == Bool && e.Writable:
		return "switch"
	case e.Kind == Bool:
		return "binary_sensor"
	case e.Kind == String && e.Writable:
		return "text"
	case e.Writable:
		return "number"
	}
	return "sensor"
}

// ConfigTopic is where e's config message is retained.
func ConfigTopic(prefix, gateway string, e Entity) string {
	return prefix + "/" + e.Component() + "/" + ID(gateway) + "/" + ID(e.Adapter+"_"+e.Device+"_"+e.Point) + "/config"
}

// GatewayTopic is where the gateway's own entity (its connectivity) is
// retained.
func GatewayTopic(prefix, gateway string) string {
	return prefix + "/binary_sensor/" + ID(gateway) + "/status/config"
}

// ID makes s usable as a discovery topic level and in unique ids: letters,
// digits, '_' and '-'; anything else becomes '_' and, so that two names do
// not end up the same, a hash of s is appended.
func ID(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			clean = false
			break
		}
	}
	if clean && s != "" {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !idByte(b[i]) {
			b[i] = '_'
		}
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%s_%08x", b, h.Sum32())
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

type availability struct {
	Topic string `json:"topic"`
}

type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
	ViaDevice    string   `json:"via_device,omitempty"`
}

// config is the discovery payload; field names are Home Assistant's.
type config struct {
	Name             string         `json:"name"`
	UniqueID         string         `json:"unique_id"`
	ObjectID         string         `json:"object_id,omitempty"`
	StateTopic       string         `json:"state_topic"`
	ValueTemplate    string         `json:"value_template,omitempty"`
	CommandTopic     string         `json:"command_topic,omitempty"`
	CommandTemplate  string         `json:"command_template,omitempty"`
	PayloadOn        string         `json:"payload_on,omitempty"`
	PayloadOff       string         `json:"payload_off,omitempty"`
	StateOn          string         `json:"state_on,omitempty"`
	StateOff         string         `json:"state_off,omitempty"`
	Unit             string         `json:"unit_of_measurement,omitempty"`
	DeviceClass      string         `json:"device_class,omitempty"`
	StateClass       string         `json:"state_class,omitempty"`
	Min              *float64       `json:"min,omitempty"`
	Max              *float64       `json:"max,omitempty"`
	Step             float64        `json:"step,omitempty"`
	Mode             string         `json:"mode,omitempty"`
	Availability     []availability `json:"availability"`
	AvailabilityMode string         `json:"availability_mode,omitempty"`
	Device           device         `json:"device"`
	Origin           map[string]any `json:"origin,omitempty"`
}

// Gateway identifies the gateway for the device blocks.
type Gateway struct {
	ID      string
	Version string
}

func (g Gateway) deviceID() string { return "causeway_" + ID(g.ID) }

// GatewayConfig is the gateway's own entity: a connectivity binary sensor
// on {gateway}/status, the device every point's device is reached through.
func GatewayConfig(prefix string, g Gateway) Message {
	c := config{
		Name:        "Status",
		UniqueID:    g.deviceID() + "_status",
		StateTopic:  g.ID + "/status",
		PayloadOn:   "online",
		PayloadOff:  "offline",
		DeviceClass: "connectivity",
		Device: device{
			Identifiers: []string{g.deviceID()}, Name: g.ID,
			Manufacturer: "causeway", Model: "edge gateway", SWVersion: g.Version,
		},
		Availability: []availability{},
		Origin:       map[string]any{"name": "causeway", "sw": g.Version},
	}
	b, _ := json.Marshal(c)
	return Message{Topic: GatewayTopic(prefix, g.ID), Payload: b}
}

// Config is the discovery message of e.
func Config(prefix string, g Gateway, e Entity) Message {
	devID := g.deviceID() + "_" + ID(e.Adapter+"_"+e.Device)
	c := config{
		Name:         e.Point,
		UniqueID:     devID + "_" + ID(e.Point),
		StateTopic:   e.StateTopic,
		Availability: []availability{{Topic: g.ID + "/status"}},
		Device: device{
			Identifiers: []string{devID},
			Name:        e.Device,
			Model:       strings.TrimSpace(e.AdapterKind + " device (" + e.Adapter + ")"),
			ViaDevice:   g.deviceID(),
		},
		Origin: map[string]any{"name": "causeway", "sw": g.Version},
	}
	if e.Availability {
		c.Availability = append(c.Availability, availability{Topic: g.ID + "/" + e.Adapter + "/" + e.Device + "/availability"})
		c.AvailabilityMode = "all"
	}
	value := valueExpr(e.Payload, e.Point)
	if e.Kind == String {
		value = strings.Replace(value, "map(attribute='v')", "map(attribute='vs')", 1) // SenML string value
	}
	// A json or senml message carries the points of one frame: a message
	// without this point keeps the entity's state (this.state).
	has := hasExpr(e.Payload, e.Point)
	switch e.Kind {
	case Bool:
		if has == "" {
			c.ValueTemplate = "{{ 'ON' if " + truthy(value) + " else 'OFF' }}"
		} else {
			c.ValueTemplate = "{{ ('ON' if " + truthy(value) + " else 'OFF') if " + has + " else ('ON' if this.state == 'on' else 'OFF') }}"
		}
		if e.Writable {
			c.StateOn, c.StateOff = "ON", "OFF"
			c.PayloadOn, c.PayloadOff = "true", "false"
		}
	default:
		if has != "" {
			c.ValueTemplate = "{{ " + value + " if " + has + " else this.state }}"
		}
		// payload = "value": the payload is the value, no template.
	}
	if e.Kind == Number {
		unit, class, state := Classify(e.Unit, e.Point)
		c.Unit, c.DeviceClass = unit, class
		if !e.Writable {
			c.StateClass = state
		}
	}
	if e.Writable {
		c.CommandTopic = g.ID + "/" + e.Adapter + "/" + e.Device + "/" + e.Point + "/set"
		if e.Kind == Number {
			lo, hi := -1e9, 1e9
			c.Min, c.Max = &lo, &hi
			c.Step = e.Step
			if c.Step <= 0 {
				c.Step = 1
			}
			c.Mode = "box"
		}
		if e.Kind == String {
			c.CommandTemplate = "{{ value | tojson }}" // a JSON string literal: taken as the string
		}
	}
	b, _ := json.Marshal(c)
	return Message{Topic: ConfigTopic(prefix, g.ID, e), Payload: b}
}

// valueExpr is the Jinja expression of the point's value in a payload.
func valueExpr(payload, point string) string {
	p, _ := json.Marshal(point)
	switch payload {
	case "value":
		return "value"
	case "senml":
		// Records named {bn}{point}: the last record whose name ends with
		// the point (SenML "n" is relative to "bn").
		return "(value_json | selectattr('n', 'defined') | selectattr('n', 'eq', " + string(p) + ") | map(attribute='v') | first)"
	}
	return "value_json[" + string(p) + "]"
}

// hasExpr is the Jinja test that a json or senml payload carries the
// point ("" for value payloads, which always do).
func hasExpr(payload, point string) string {
	p, _ := json.Marshal(point)
	switch payload {
	case "value":
		return ""
	case "senml":
		return "(value_json | selectattr('n', 'defined') | selectattr('n', 'eq', " + string(p) + ") | list | count > 0)"
	}
	return string(p) + " in value_json"
}

// truthy turns a value expression into a boolean test that accepts both
// JSON booleans and the bare payloads "true"/"false"/"1"/"0".
func truthy(v string) string {
	if v == "value" {
		return "value in ('true', '1', 'on', 'ON')"
	}
	return strings.Replace(v, "map(attribute='v')", "map(attribute='vb')", 1) // SenML boolean value
}

// Classify maps a unit to the unit Home Assistant expects, a device class
// where the unit implies one, and a state class: "measurement", or
// "total_increasing" for energy and volume meters.
func Classify(unit, point string) (haUnit, deviceClass, stateClass string) {
	u := strings.TrimSpace(unit)
	stateClass = "measurement"
	switch u {
	case "degC", "Cel", "°C", "C":
		return "°C", "temperature", stateClass
	case "degF", "°F", "F":
		return "°F", "temperature", stateClass
	case "K":
		return "K", "temperature", stateClass
	case "%RH":
		return "%", "humidity", stateClass
	case "%":
		if strings.Contains(strings.ToLower(point), "humid") {
			return "%", "humidity", stateClass
		}
		return "%", "", stateClass
	case "V", "mV", "kV":
		return u, "voltage", stateClass
	case "A", "mA":
		return u, "current", stateClass
	case "W", "kW":
		return u, "power", stateClass
	case "VA":
		return u, "apparent_power", stateClass
	case "var":
		return u, "reactive_power", stateClass
	case "Wh", "kWh", "MWh":
		return u, "energy", "total_increasing"
	case "Hz":
		return u, "frequency", stateClass
	case "Pa", "hPa", "kPa", "bar", "mbar", "psi":
		return u, "pressure", stateClass
	case "lx":
		return u, "illuminance", stateClass
	case "dBm":
		return u, "signal_strength", stateClass
	case "s", "min", "h":
		return u, "duration", stateClass
	case "m3", "m³":
		return "m³", "volume", "total_increasing"
	case "L":
		return u, "volume", "total_increasing"
	case "m/s", "km/h":
		return u, "wind_speed", stateClass
	case "W/m2", "W/m²":
		return "W/m²", "irradiance", stateClass
	case "ppm":
		return u, "", stateClass
	}
	return u, "", stateClass
}

// StepOf is the resolution of a value scaled by scale: 10^-decimals.
func StepOf(decimals int) float64 {
	if decimals <= 0 {
		return 1
	}
	return math.Pow10(-decimals)
}
