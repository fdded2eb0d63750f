package config

import (
	"strconv"
	"strings"
	"time"
)

// Duration is a Go duration string in the file ("500ms", "30s", "168h").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns the duration as the file writes it, without zero trailing
// units: "60s" prints as "1m", "168h" as "168h", zero as "0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText writes the duration as a string that Parse reads back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Size is a byte size in the file with binary units ("64KiB", "256MiB").
type Size int64

// String returns the size with the largest binary unit that divides it:
// "16KiB", "256MiB", "1000B".
func (s Size) String() string {
	n := int64(s)
	if n == 0 {
		return "0B"
	}
	for _, u := range [...]struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// MarshalText writes the size as a string that Parse reads back.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Secret is a string that is never printed: the effective configuration shows
// it as "<redacted>" when it is set. String, GoString and MarshalText all
// redact it (so fmt, encoding/json and TOML encoders never leak it); use
// string(s) where the value itself is needed.
type Secret string

// redactedText is what a set Secret prints as.
const redactedText = "<redacted>"

// String returns "<redacted>" for a set secret and "" for an empty one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redactedText
}

// GoString redacts the secret for %#v as well.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText redacts the secret in every encoder that honours
// encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Config is the whole gateway.toml, after defaults, ${ENV} expansion and
// *_file reading. Every field is valid once Load returns without error.
type Config struct {
	Gateway       Gateway       `toml:"gateway"`
	HTTP          *HTTP         `toml:"http"` // nil: no HTTP listener
	Broker        Broker        `toml:"broker"`
	Uplink        *Uplink       `toml:"uplink"` // nil: no uplink
	Queue         Queue         `toml:"queue"`
	CoAP          []CoAP        `toml:"coap"`
	Modbus        []Modbus      `toml:"modbus"`
	UART          []UART        `toml:"uart"`
	Routes        []Route       `toml:"route"`
	HomeAssistant HomeAssistant `toml:"homeassistant"`
}

// Gateway is [gateway].
type Gateway struct {
	ID            string   `toml:"id"`       // default: host name
	DataDir       string   `toml:"data_dir"` // default "./data"
	LogLevel      string   `toml:"log_level"`
	LogFormat     string   `toml:"log_format"`
	StatsInterval Duration `toml:"stats_interval"`
}

// HTTP is [http].
type HTTP struct {
	Listen string `toml:"listen"`
}

// Broker is [broker], the built-in MQTT broker.
type Broker struct {
	Enabled        bool         `toml:"enabled"`
	Listen         string       `toml:"listen"`
	Websocket      string       `toml:"websocket"`
	TLSListen      string       `toml:"tls_listen"`
	TLSCertFile    string       `toml:"tls_cert_file"`
	TLSKeyFile     string       `toml:"tls_key_file"`
	AllowAnonymous bool         `toml:"allow_anonymous"`
	Users          []BrokerUser `toml:"user"`
}

// BrokerUser is one [[broker.user]].
type BrokerUser struct {
	Name         string   `toml:"name"`
	Password     Secret   `toml:"password"` // or password_file
	PasswordHash Secret   `toml:"password_hash"`
	Publish      []string `toml:"publish"`
	Subscribe    []string `toml:"subscribe"`
}

// Uplink is [uplink], the session to a remote broker.
type Uplink struct {
	URL               string   `toml:"url"`
	ClientID          string   `toml:"client_id"` // default: gateway id
	Username          string   `toml:"username"`
	Password          Secret   `toml:"password"` // or password_file
	CAFile            string   `toml:"ca_file"`
	CertFile          string   `toml:"cert_file"`
	KeyFile           string   `toml:"key_file"`
	Keepalive         Duration `toml:"keepalive"`
	Protocol          int      `toml:"protocol"` // 5 or 4
	TopicPrefix       string   `toml:"topic_prefix"`
	SubscribeCommands bool     `toml:"subscribe_commands"`
}

// Queue is [queue], the offline queue in front of the uplink.
type Queue struct {
	MaxBytes      Size     `toml:"max_bytes"`
	MaxAge        Duration `toml:"max_age"`
	WhenFull      string   `toml:"when_full"` // drop_oldest | drop_newest
	Fsync         string   `toml:"fsync"`     // always | batch | off
	FsyncInterval Duration `toml:"fsync_interval"`
	Inflight      int      `toml:"inflight"`
}

// CoAP is one [[coap]] block.
type CoAP struct {
	Name       string       `toml:"name"`
	Listen     string       `toml:"listen"`
	DTLSListen string       `toml:"dtls_listen"`
	MaxPayload Size         `toml:"max_payload"`
	RateLimit  float64      `toml:"rate_limit"` // requests/s per source address and port; 0 = no limit
	RateBurst  int          `toml:"rate_burst"` // requests a source may send back to back
	PSK        []CoAPPSK    `toml:"psk"`
	Devices    []CoAPDevice `toml:"device"`
}

// CoAPPSK is one [[coap.psk]].
type CoAPPSK struct {
	Identity string `toml:"identity"`
	Key      Secret `toml:"key"` // hex, or key_file
}

// CoAPDevice is one [[coap.device]]: the gateway as a CoAP client.
type CoAPDevice struct {
	Device      string   `toml:"device"`
	URL         string   `toml:"url"`
	PSKIdentity string   `toml:"psk_identity"`
	PSKKey      Secret   `toml:"psk_key"`
	Observe     bool     `toml:"observe"`
	Interval    Duration `toml:"interval"`
	Point       string   `toml:"point"`
	CommandPath string   `toml:"command_path"`
	// CommandMethod and CommandFormat shape commands: PUT (default) or
	// POST, with a JSON (default) or CBOR object. Added by causeway.
	CommandMethod string `toml:"command_method"`
	CommandFormat string `toml:"command_format"`
}

// Serial holds the serial line settings shared by [[modbus]] (rtu) and [[uart]].
type Serial struct {
	Baud      int    `toml:"baud"`
	DataBits  int    `toml:"data_bits"`
	Parity    string `toml:"parity"` // N | E | O
	StopBits  int    `toml:"stop_bits"`
	USB       string `toml:"usb"` // "vid:pid"
	USBSerial string `toml:"usb_serial"`
	// USBInterface picks one port of a multi-port USB adapter (FT4232: 0..3)
	// by its interface number; -1: any (the adapter must have one port).
	// Added by causeway.
	USBInterface int `toml:"usb_interface"`
}

// Modbus is one [[modbus]] connection.
type Modbus struct {
	Name    string         `toml:"name"`
	URL     string         `toml:"url"`
	Serial                 // baud, data_bits, parity, stop_bits, usb, usb_serial
	Timeout Duration       `toml:"timeout"`
	Retries int            `toml:"retries"`
	Devices []ModbusDevice `toml:"device"`
}

// ModbusDevice is one [[modbus.device]] (a unit id).
type ModbusDevice struct {
	Name     string        `toml:"name"`
	UnitID   int           `toml:"unit_id"`
	Interval Duration      `toml:"interval"`
	MaxGap   int           `toml:"max_gap"`
	Points   []ModbusPoint `toml:"point"`
}

// ModbusPoint is one [[modbus.device.point]].
type ModbusPoint struct {
	Name     string  `toml:"name"`
	Table    string  `toml:"table"`
	Address  int     `toml:"address"`
	Type     string  `toml:"type"`
	Order    string  `toml:"order"`
	Length   int     `toml:"length"`
	Scale    float64 `toml:"scale"`
	Offset   float64 `toml:"offset"`
	Unit     string  `toml:"unit"`
	Writable bool    `toml:"writable"`
}

// UART is one [[uart]] port.
type UART struct {
	Name         string      `toml:"name"`
	Port         string      `toml:"port"`
	Serial                   // baud, data_bits, parity, stop_bits, usb, usb_serial
	Framing      string      `toml:"framing"`
	Delimiter    string      `toml:"delimiter"`
	LengthOffset int         `toml:"length_offset"`
	LengthSize   int         `toml:"length_size"`
	LengthOrder  string      `toml:"length_order"`
	MaxFrame     Size        `toml:"max_frame"`
	Checksum     string      `toml:"checksum"`
	Parser       string      `toml:"parser"`
	Pattern      string      `toml:"pattern"`
	Columns      []string    `toml:"columns"`
	Device       string      `toml:"device"`
	Write        string      `toml:"write"`
	Fields       []UARTField `toml:"field"`
}

// UARTField is one [[uart.field]] of a binary layout.
type UARTField struct {
	Name   string  `toml:"name"`
	Offset int     `toml:"offset"`
	Type   string  `toml:"type"`
	Order  string  `toml:"order"`
	Scale  float64 `toml:"scale"`
}

// Route is one [[route]]. Keys the file omits are filled from the default
// route (topic "{gateway}/{adapter}/{device}", payload json, qos 1, retain
// false, uplink true).
type Route struct {
	Match       string   `toml:"match"`
	Topic       string   `toml:"topic"`
	Payload     string   `toml:"payload"` // json | value | senml
	QoS         int      `toml:"qos"`
	Retain      bool     `toml:"retain"`
	Uplink      bool     `toml:"uplink"`
	Deadband    float64  `toml:"deadband"`
	MinInterval Duration `toml:"min_interval"`
	MaxInterval Duration `toml:"max_interval"`
	Drop        bool     `toml:"drop"`
	Line        int      `toml:"-"` // line of the [[route]] header, for messages
}

// HomeAssistant is [homeassistant].
type HomeAssistant struct {
	Enabled         bool   `toml:"enabled"`
	DiscoveryPrefix string `toml:"discovery_prefix"`
}
