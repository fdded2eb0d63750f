package config

import (
	"github.com/causeway/causeway/bridge"

	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// derive fills in the defaults that depend on other values.
func (d *decoder) derive(c *Config) {
	if !d.isSet("gateway.id") {
		h, err := d.opts.Hostname()
		switch {
		case err != nil:
			d.errorf("gateway.id", "not set, and the host name for the default is unavailable (%v): set [gateway] id", err)
		case h == "":
			d.errorf("gateway.id", "not set, and the host name for the default is empty: set [gateway] id")
		default:
			c.Gateway.ID = h
		}
	}
	if c.Uplink != nil && !d.isSet("uplink.client_id") {
		c.Uplink.ClientID = c.Gateway.ID
	}
	for i := range c.UART {
		if !d.isSet(indexPath("uart", i) + ".device") {
			c.UART[i].Device = c.UART[i].Name
		}
	}
	for i := range c.Modbus {
		for j := range c.Modbus[i].Devices {
			for k := range c.Modbus[i].Devices[j].Points {
				p := &c.Modbus[i].Devices[j].Points[k]
				path := fmt.Sprintf("modbus[%d].device[%d].point[%d]", i, j, k)
				if !d.isSet(path+".type") && (p.Table == "coil" || p.Table == "discrete") {
					p.Type = "bool"
				}
			}
		}
	}
	if !d.isSet("broker.allow_anonymous") {
		b := &c.Broker
		b.AllowAnonymous = true
		for _, l := range []string{b.Listen, b.Websocket, b.TLSListen} {
			if l != "" && !isLoopback(l) {
				b.AllowAnonymous = false
			}
		}
	}
}

// validate checks every value of c; d.errorf collects the problems.
func (d *decoder) validate(c *Config) {
	d.validateGateway(c)
	if c.HTTP != nil {
		d.listen("http.listen", c.HTTP.Listen, false)
	}
	d.validateBroker(c)
	if c.Uplink != nil {
		d.validateUplink(c.Uplink)
	}
	d.validateQueue(&c.Queue)
	for i := range c.CoAP {
		d.validateCoAP(indexPath("coap", i), &c.CoAP[i])
	}
	for i := range c.Modbus {
		d.validateModbus(indexPath("modbus", i), &c.Modbus[i])
	}
	for i := range c.UART {
		d.validateUART(indexPath("uart", i), &c.UART[i])
	}
	d.validateAdapterNames(c)
	d.validateSerialPorts(c)
	d.validateListeners(c)
	for i := range c.Routes {
		d.validateRoute(indexPath("route", i), &c.Routes[i])
	}
	d.validateHomeAssistant(&c.HomeAssistant)
	if !c.Broker.Enabled && c.Uplink == nil {
		d.errorf("broker.enabled", "the built-in broker is disabled and there is no [uplink]: readings would go nowhere")
	}
}

func (d *decoder) enum(path, v string, allowed ...string) {
	if msg := oneOf(v, allowed...); msg != "" {
		d.errorf(path, "%s", msg)
	}
}

func (d *decoder) checkName(path, kind, v string) {
	if msg := nameProblem(v, kind == "point"); msg != "" {
		d.errorf(path, "invalid %s name: %s", kind, msg)
	}
}

// listen checks a listen address; empty is allowed where it disables the
// listener.
func (d *decoder) listen(path, v string, emptyOK bool) {
	if v == "" {
		if !emptyOK {
			d.errorf(path, `must not be empty: use "host:port", e.g. "127.0.0.1:9100"`)
		}
		return
	}
	if msg := hostPortProblem(v); msg != "" {
		d.errorf(path, "invalid address %s", msg)
	}
}

func (d *decoder) positive(path string, v Duration) {
	if v <= 0 {
		d.errorf(path, "must be greater than 0s")
	}
}

func (d *decoder) intRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		d.errorf(path, "%d is out of range %d..%d", v, lo, hi)
	}
}

// readable checks a file that another part of the gateway opens (TLS
// certificates and keys) and makes its path absolute.
func (d *decoder) readable(path string, p *string) {
	if *p == "" {
		return
	}
	*p = d.resolve(*p)
	if _, err := d.opts.ReadFile(*p); err != nil {
		d.errorf(path, "cannot read %s: %v", *p, unwrapPathError(err))
	}
}

func (d *decoder) validateGateway(c *Config) {
	g := &c.Gateway
	switch id := g.ID; {
	case id == "":
		d.errorf("gateway.id", "must not be empty")
	case strings.ContainsAny(id, "+#/") || hasControl(id) || strings.HasPrefix(id, "$"):
		src := ""
		if !d.isSet("gateway.id") {
			src = " (the host name, the default)"
		}
		d.errorf("gateway.id", `%q%s cannot be the {gateway} in topics: it must not contain "+", "#", "/" or control characters, nor start with "$"; set [gateway] id`, id, src)
	}
	if g.DataDir == "" {
		d.errorf("gateway.data_dir", "must not be empty")
	}
	d.enum("gateway.log_level", g.LogLevel, "debug", "info", "warn", "error")
	d.enum("gateway.log_format", g.LogFormat, "text", "json")
}

func (d *decoder) validateBroker(c *Config) {
	b := &c.Broker
	d.listen("broker.listen", b.Listen, true)
	d.listen("broker.websocket", b.Websocket, true)
	d.listen("broker.tls_listen", b.TLSListen, true)
	if b.TLSListen != "" {
		if b.TLSCertFile == "" {
			d.errorf("broker.tls_cert_file", "required with tls_listen")
		}
		if b.TLSKeyFile == "" {
			d.errorf("broker.tls_key_file", "required with tls_listen")
		}
	}
	d.readable("broker.tls_cert_file", &b.TLSCertFile)
	d.readable("broker.tls_key_file", &b.TLSKeyFile)
	d.brokerReachable(b)
	seen := map[string]int{}
	for i := range b.Users {
		u := &b.Users[i]
		p := indexPath("broker.user", i)
		switch {
		case u.Name == "":
			d.errorf(p+".name", "required")
		case hasControl(u.Name):
			d.errorf(p+".name", "%q must not contain control characters", u.Name)
		default:
			if j, dup := seen[u.Name]; dup {
				d.errorf(p+".name", "user %q is already defined by broker.user[%d] (line %d)", u.Name, j, d.line(indexPath("broker.user", j)))
			} else {
				seen[u.Name] = i
			}
		}
		switch {
		case u.Password == "" && u.PasswordHash == "":
			d.errorf(p+".password", "required: set password, password_file or password_hash")
		case u.Password != "" && u.PasswordHash != "":
			d.errorf(p+".password_hash", "set either password or password_hash, not both")
		case u.PasswordHash != "" && !isBcrypt(string(u.PasswordHash)):
			d.errorf(p+".password_hash", `is not a bcrypt hash ("$2a$", "$2b$" or "$2y$" followed by cost and 53 characters)`)
		case len(u.Password) > 72:
			d.errorf(p+".password", "is %d bytes long; bcrypt uses at most 72: shorten it", len(u.Password))
		}
		for j, f := range u.Publish {
			if msg := topicFilterProblem(f); msg != "" {
				d.errorf(indexPath(p+".publish", j), "%s", msg)
			}
		}
		for j, f := range u.Subscribe {
			if msg := topicFilterProblem(f); msg != "" {
				d.errorf(indexPath(p+".subscribe", j), "%s", msg)
			}
		}
	}
}

// brokerReachable refuses a broker that no client could connect to: it
// listens, refuses anonymous clients and has no users. The usual cause is
// a listener beyond loopback, which turns the default of allow_anonymous
// to false: the error asks for a decision (users, or an explicit
// allow_anonymous = true) rather than leaving the broker useless.
func (d *decoder) brokerReachable(b *Broker) {
	if !b.Enabled || b.AllowAnonymous || len(b.Users) > 0 {
		return
	}
	if d.isSet("broker.allow_anonymous") {
		if b.Listen != "" || b.Websocket != "" || b.TLSListen != "" {
			d.errorf("broker.allow_anonymous", "false with no [[broker.user]]: no client could connect to the broker; add a [[broker.user]]")
		}
		return
	}
	for _, l := range []struct{ path, addr string }{
		{"broker.listen", b.Listen}, {"broker.tls_listen", b.TLSListen}, {"broker.websocket", b.Websocket},
	} {
		if l.addr != "" && !isLoopback(l.addr) {
			d.errorf(l.path, "%q is beyond loopback, so anonymous clients are refused (allow_anonymous defaults to false), "+
				"and there is no [[broker.user]]: no client could connect; add a [[broker.user]], "+
				"or set allow_anonymous = true to let every client on the network in, with full access", l.addr)
			return
		}
	}
}

func isBcrypt(s string) bool {
	if len(s) != 60 || s[0] != '$' || s[3] != '$' || s[6] != '$' {
		return false
	}
	switch s[1:3] {
	case "2a", "2b", "2y":
	default:
		return false
	}
	return s[4] >= '0' && s[4] <= '3' && s[5] >= '0' && s[5] <= '9'
}

func (d *decoder) validateUplink(u *Uplink) {
	tls := false
	switch {
	case !d.isSet("uplink.url"):
		d.errorf("uplink.url", `required, e.g. "mqtts://broker.example.com:8883"`)
	default:
		pu, err := url.Parse(u.URL)
		if err != nil {
			d.errorf("uplink.url", "invalid url %q: %v", u.URL, unwrapURLError(err))
			break
		}
		switch strings.ToLower(pu.Scheme) {
		case "mqtt", "ws":
		case "mqtts", "wss":
			tls = true
		default:
			hint := ""
			switch strings.ToLower(pu.Scheme) {
			case "tcp":
				hint = ` (for plain MQTT over TCP write "mqtt://")`
			case "ssl", "tls":
				hint = ` (for MQTT over TLS write "mqtts://")`
			}
			d.errorf("uplink.url", "%q: scheme %q is not supported: use mqtt://, mqtts://, ws:// or wss://%s", u.URL, pu.Scheme, hint)
			return
		}
		switch {
		case pu.User != nil:
			d.errorf("uplink.url", "must not contain credentials: use username and password (or password_file), which are never printed")
		case pu.Hostname() == "":
			d.errorf("uplink.url", "%q has no host", u.URL)
		case pu.Port() != "" && portProblem(pu.Port()) != "":
			d.errorf("uplink.url", "%q: %s", u.URL, portProblem(pu.Port()))
		case (pu.Scheme == "mqtt" || pu.Scheme == "mqtts") && pu.Path != "" && pu.Path != "/":
			d.errorf("uplink.url", "%q: mqtt:// and mqtts:// urls have no path (ws:// and wss:// do)", u.URL)
		}
	}
	if u.ClientID == "" {
		d.errorf("uplink.client_id", "must not be empty")
	} else if hasControl(u.ClientID) {
		d.errorf("uplink.client_id", "%q must not contain control characters", u.ClientID)
	}
	if u.Keepalive > Duration(65535*time.Second) {
		d.errorf("uplink.keepalive", "%s is longer than MQTT allows (65535s)", u.Keepalive)
	} else if u.Keepalive%Duration(time.Second) != 0 {
		d.errorf("uplink.keepalive", "%s: MQTT keepalive is a whole number of seconds", u.Keepalive)
	}
	if u.Protocol != 4 && u.Protocol != 5 {
		d.errorf("uplink.protocol", "invalid value %d: use 5 (MQTT 5) or 4 (MQTT 3.1.1)", u.Protocol)
	}
	if u.Protocol == 4 && u.Password != "" && u.Username == "" {
		d.errorf("uplink.password", "MQTT 3.1.1 (protocol = 4) needs a username with a password")
	}
	if strings.ContainsAny(u.TopicPrefix, "+#") || hasControl(u.TopicPrefix) {
		d.errorf("uplink.topic_prefix", `%q must not contain "+", "#" or control characters`, u.TopicPrefix)
	}
	for _, f := range []struct {
		key string
		p   *string
	}{{"ca_file", &u.CAFile}, {"cert_file", &u.CertFile}, {"key_file", &u.KeyFile}} {
		if *f.p != "" && !tls && d.isSet("uplink.url") {
			d.errorf("uplink."+f.key, "needs an mqtts:// or wss:// url; %q does not use TLS", u.URL)
		}
		d.readable("uplink."+f.key, f.p)
	}
	if (u.CertFile == "") != (u.KeyFile == "") {
		if u.CertFile == "" {
			d.errorf("uplink.cert_file", "required with key_file")
		} else {
			d.errorf("uplink.key_file", "required with cert_file")
		}
	}
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func (d *decoder) validateQueue(q *Queue) {
	if q.MaxBytes <= 0 {
		d.errorf("queue.max_bytes", "must be greater than 0")
	}
	d.positive("queue.max_age", q.MaxAge)
	d.enum("queue.when_full", q.WhenFull, "drop_oldest", "drop_newest")
	d.enum("queue.fsync", q.Fsync, "always", "batch", "off")
	if q.Fsync == "batch" {
		d.positive("queue.fsync_interval", q.FsyncInterval)
	}
	d.intRange("queue.inflight", q.Inflight, 1, 65535)
}

func (d *decoder) validateCoAP(p string, c *CoAP) {
	d.checkName(p+".name", "adapter", c.Name)
	d.listen(p+".listen", c.Listen, true)
	d.listen(p+".dtls_listen", c.DTLSListen, true)
	if c.Listen == "" && c.DTLSListen == "" && len(c.Devices) == 0 {
		d.errorf(p+".listen", "is empty and there is no dtls_listen nor [[coap.device]]: the block would do nothing")
	}
	if c.MaxPayload <= 0 {
		d.errorf(p+".max_payload", "must be greater than 0")
	}
	if c.RateLimit < 0 || c.RateLimit > 1e6 || (c.RateLimit > 0 && c.RateLimit < 1e-3) {
		d.errorf(p+".rate_limit", "%v is out of range: 0 (no limit) or 0.001 to 1000000 requests per second", c.RateLimit)
	}
	if c.RateBurst < 1 || c.RateBurst > 1000000 {
		d.errorf(p+".rate_burst", "%d is out of range 1..1000000", c.RateBurst)
	}
	if c.DTLSListen != "" && len(c.PSK) == 0 {
		d.errorf(p+".dtls_listen", "needs at least one [[coap.psk]]")
	}
	ids := map[string]int{}
	for i := range c.PSK {
		k := &c.PSK[i]
		kp := indexPath(p+".psk", i)
		if k.Identity == "" {
			d.errorf(kp+".identity", "required")
		} else if j, dup := ids[k.Identity]; dup {
			d.errorf(kp+".identity", "identity %q is already defined by %s (line %d)", k.Identity, indexPath(p+".psk", j), d.line(indexPath(p+".psk", j)))
		} else {
			ids[k.Identity] = i
		}
		if k.Key == "" {
			d.errorf(kp+".key", "required: set key or key_file (hex)")
		} else if !isHex(string(k.Key)) {
			d.errorf(kp+".key", "is not hex (an even number of the digits 0-9, a-f)")
		}
	}
	devs := map[string]int{}
	for i := range c.Devices {
		dv := &c.Devices[i]
		dp := indexPath(p+".device", i)
		if !d.isSet(dp + ".device") {
			d.errorf(dp+".device", "required: the {device} name")
		} else {
			d.checkName(dp+".device", "device", dv.Device)
			if j, dup := devs[dv.Device]; dup && dv.Device != "" {
				d.errorf(dp+".device", "device %q is already defined by %s (line %d)", dv.Device, indexPath(p+".device", j), d.line(indexPath(p+".device", j)))
			} else {
				devs[dv.Device] = i
			}
		}
		secure := false
		if !d.isSet(dp + ".url") {
			d.errorf(dp+".url", `required, e.g. "coap://192.0.2.10:5683/sensors/temp"`)
		} else if u, err := url.Parse(dv.URL); err != nil {
			d.errorf(dp+".url", "invalid url %q: %v", dv.URL, unwrapURLError(err))
		} else {
			switch strings.ToLower(u.Scheme) {
			case "coap":
			case "coaps":
				secure = true
			default:
				d.errorf(dp+".url", "%q: scheme %q is not supported: use coap:// or coaps://", dv.URL, u.Scheme)
			}
			if u.Hostname() == "" {
				d.errorf(dp+".url", "%q has no host", dv.URL)
			} else if u.Port() != "" && portProblem(u.Port()) != "" {
				d.errorf(dp+".url", "%q: %s", dv.URL, portProblem(u.Port()))
			}
		}
		if secure {
			if dv.PSKIdentity == "" {
				d.errorf(dp+".psk_identity", "required with a coaps:// url")
			}
			if dv.PSKKey == "" {
				d.errorf(dp+".psk_key", "required with a coaps:// url (hex, or psk_key_file)")
			}
		} else if dv.PSKIdentity != "" || dv.PSKKey != "" {
			d.errorf(dp+".psk_identity", "psk_identity and psk_key need a coaps:// url")
		}
		if dv.PSKKey != "" && !isHex(string(dv.PSKKey)) {
			d.errorf(dp+".psk_key", "is not hex (an even number of the digits 0-9, a-f)")
		}
		d.positive(dp+".interval", dv.Interval)
		d.pointName(dp+".point", dv.Point)
		d.enum(dp+".command_method", dv.CommandMethod, "PUT", "POST")
		d.enum(dp+".command_format", dv.CommandFormat, "json", "cbor")
		if dv.CommandPath != "" && !strings.HasPrefix(dv.CommandPath, "/") {
			d.errorf(dp+".command_path", "%q must start with \"/\"", dv.CommandPath)
		}
	}
}

func (d *decoder) pointName(path, v string) {
	d.checkName(path, "point", v)
}

func (d *decoder) validateSerial(p string, s *Serial) {
	if s.Baud <= 0 || s.Baud > 4000000 {
		d.errorf(p+".baud", "%d is out of range 1..4000000", s.Baud)
	}
	d.intRange(p+".data_bits", s.DataBits, 5, 8)
	d.enum(p+".parity", s.Parity, "N", "E", "O")
	d.intRange(p+".stop_bits", s.StopBits, 1, 2)
	if s.USB != "" {
		if msg := usbProblem(s.USB); msg != "" {
			d.errorf(p+".usb", "%s", msg)
		}
	}
	if s.USBSerial != "" && s.USB == "" {
		d.errorf(p+".usb_serial", "needs usb (the \"vid:pid\" of the adapter)")
	}
	if s.USBInterface != -1 {
		if s.USBInterface < 0 || s.USBInterface > 255 {
			d.errorf(p+".usb_interface", "%d is out of range 0..255", s.USBInterface)
		} else if s.USB == "" {
			d.errorf(p+".usb_interface", "needs usb (the \"vid:pid\" of the adapter)")
		}
	}
}

// registers returns the number of 16-bit registers a Modbus type takes
// (0 for unknown types and for strings, whose length says).
func registers(typ string) int {
	switch typ {
	case "bool", "int16", "uint16":
		return 1
	case "int32", "uint32", "float32":
		return 2
	case "int64", "uint64", "float64":
		return 4
	}
	return 0
}

func pointTypes() []string {
	return []string{"bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"}
}

func (d *decoder) validateModbus(p string, m *Modbus) {
	d.checkName(p+".name", "adapter", m.Name)
	rtu := false
	if !d.isSet(p + ".url") {
		d.errorf(p+".url", `required: "tcp://host:port", "rtu:///dev/ttyUSB0" or "rtuovertcp://host:port"`)
	} else if u, err := url.Parse(m.URL); err != nil {
		d.errorf(p+".url", "invalid url %q: %v", m.URL, unwrapURLError(err))
	} else {
		switch strings.ToLower(u.Scheme) {
		case "tcp", "rtuovertcp":
			switch {
			case u.Hostname() == "":
				d.errorf(p+".url", "%q has no host", m.URL)
			case u.Port() == "":
				d.errorf(p+".url", "%q has no port (Modbus TCP usually listens on 502)", m.URL)
			case portProblem(u.Port()) != "":
				d.errorf(p+".url", "%q: %s", m.URL, portProblem(u.Port()))
			case u.Path != "" && u.Path != "/":
				d.errorf(p+".url", "%q: a %s:// url has no path", m.URL, u.Scheme)
			}
			if m.USB != "" {
				d.errorf(p+".usb", "only for rtu:// urls")
			}
		case "rtu":
			rtu = true
			switch {
			case u.Host != "":
				d.errorf(p+".url", `%q: write the serial port as a path with three slashes, e.g. "rtu:///dev/ttyUSB0"`, m.URL)
			case u.Path == "" && m.USB == "":
				d.errorf(p+".url", `%q names no serial port: write "rtu:///dev/ttyUSB0", or "rtu://" with usb = "vid:pid"`, m.URL)
			case u.Path != "" && m.USB != "":
				d.errorf(p+".usb", "set either a serial port in url or usb, not both")
			}
		default:
			d.errorf(p+".url", "%q: scheme %q is not supported: use tcp://, rtu:// or rtuovertcp://", m.URL, u.Scheme)
		}
	}
	d.validateSerial(p, &m.Serial)
	d.positive(p+".timeout", m.Timeout)
	d.intRange(p+".retries", m.Retries, 0, 100)
	if len(m.Devices) == 0 {
		d.errorf(p, "needs at least one [[modbus.device]]")
	}
	devs := map[string]int{}
	for i := range m.Devices {
		dv := &m.Devices[i]
		dp := indexPath(p+".device", i)
		if !d.isSet(dp + ".name") {
			d.errorf(dp+".name", "required: the {device} name")
		} else {
			d.checkName(dp+".name", "device", dv.Name)
			if j, dup := devs[dv.Name]; dup {
				d.errorf(dp+".name", "device %q is already defined by %s (line %d)", dv.Name, indexPath(p+".device", j), d.line(indexPath(p+".device", j)))
			} else {
				devs[dv.Name] = i
			}
		}
		if rtu {
			d.intRange(dp+".unit_id", dv.UnitID, 1, 247)
		} else {
			d.intRange(dp+".unit_id", dv.UnitID, 0, 255)
		}
		d.positive(dp+".interval", dv.Interval)
		d.intRange(dp+".max_gap", dv.MaxGap, 0, 125)
		if len(dv.Points) == 0 {
			d.errorf(dp, "needs at least one [[modbus.device.point]]")
		}
		points := map[string]int{}
		for k := range dv.Points {
			pt := &dv.Points[k]
			pp := indexPath(dp+".point", k)
			if !d.isSet(pp + ".name") {
				d.errorf(pp+".name", "required: the {point} name")
			} else {
				d.pointName(pp+".name", pt.Name)
				if j, dup := points[pt.Name]; dup {
					d.errorf(pp+".name", "point %q is already defined by %s (line %d)", pt.Name, indexPath(dp+".point", j), d.line(indexPath(dp+".point", j)))
				} else {
					points[pt.Name] = k
				}
			}
			d.validatePoint(pp, pt)
		}
	}
}

func (d *decoder) validatePoint(pp string, pt *ModbusPoint) {
	d.enum(pp+".table", pt.Table, "coil", "discrete", "input", "holding")
	d.enum(pp+".type", pt.Type, pointTypes()...)
	bits := pt.Table == "coil" || pt.Table == "discrete"
	if bits && pt.Type != "bool" {
		d.errorf(pp+".type", "a %s is a single bit: its type is \"bool\"", pt.Table)
	}
	switch registers(pt.Type) {
	case 4:
		d.enum(pp+".order", pt.Order, "ABCD", "BADC", "CDAB", "DCBA", "ABCDEFGH", "BADCFEHG", "GHEFCDAB", "HGFEDCBA")
	default:
		d.enum(pp+".order", pt.Order, "ABCD", "BADC", "CDAB", "DCBA")
	}
	n := registers(pt.Type)
	if pt.Type == "string" {
		if pt.Length <= 0 || pt.Length > 125 {
			d.errorf(pp+".length", "a string point needs length = 1..125 (registers)")
		}
		n = pt.Length
	} else if pt.Length != 0 {
		d.errorf(pp+".length", "only for type = \"string\"")
	}
	if !d.isSet(pp + ".address") {
		d.errorf(pp+".address", "required: the zero-based register or coil address")
	} else if pt.Address < 0 || pt.Address > 65535 {
		d.errorf(pp+".address", "%d is out of range 0..65535", pt.Address)
	} else if n > 1 && pt.Address+n-1 > 65535 {
		d.errorf(pp+".address", "%d: the %d registers of this point run past address 65535", pt.Address, n)
	}
	if pt.Scale == 0 {
		d.errorf(pp+".scale", "must not be 0 (every reading would become the offset)")
	}
	if pt.Writable && (pt.Table == "discrete" || pt.Table == "input") {
		d.errorf(pp+".writable", "%s is a read-only table; only coil and holding points can be written", quoteList([]string{pt.Table}))
	}
}

func (d *decoder) validateUART(p string, u *UART) {
	d.checkName(p+".name", "adapter", u.Name)
	switch {
	case u.Port == "" && u.USB == "":
		d.errorf(p+".port", `required: set port (e.g. "/dev/ttyUSB0") or usb (e.g. "0403:6001")`)
	case u.Port != "" && u.USB != "":
		d.errorf(p+".usb", "set either port or usb, not both")
	}
	d.validateSerial(p, &u.Serial)
	d.enum(p+".framing", u.Framing, "line", "delimiter", "length", "slip", "cobs")
	switch u.Framing {
	case "line":
		if u.Delimiter != "\n" && u.Delimiter != "\r\n" {
			d.errorf(p+".delimiter", `framing = "line" ends lines with "\n" or "\r\n"; use framing = "delimiter" for others`)
		}
	case "delimiter":
		if u.Delimiter == "" {
			d.errorf(p+".delimiter", "must not be empty")
		}
	}
	if u.LengthOffset < 0 {
		d.errorf(p+".length_offset", "must not be negative")
	} else if int64(u.LengthOffset) >= int64(u.MaxFrame) && u.Framing == "length" {
		d.errorf(p+".length_offset", "%d is beyond max_frame (%s)", u.LengthOffset, u.MaxFrame)
	}
	d.intRange(p+".length_size", u.LengthSize, 1, 2)
	if u.Framing == "length" && u.LengthOffset >= 0 && int64(u.LengthOffset+u.LengthSize) > int64(u.MaxFrame) && u.MaxFrame > 0 {
		d.errorf(p+".length_offset", "the length field (offset %d, %d bytes) does not fit in max_frame (%s)", u.LengthOffset, u.LengthSize, u.MaxFrame)
	}
	if u.MaxFrame > 1<<30 {
		d.errorf(p+".max_frame", "%s is more than 1GiB", u.MaxFrame)
	}
	d.enum(p+".length_order", u.LengthOrder, "big", "little")
	if u.MaxFrame <= 0 {
		d.errorf(p+".max_frame", "must be greater than 0")
	}
	d.enum(p+".checksum", u.Checksum, "none", "nmea", "crc16-modbus", "crc8", "sum8", "xor8")
	d.enum(p+".parser", u.Parser, "regex", "json", "kv", "csv", "binary")
	if u.Parser == "regex" && u.Pattern == "" {
		d.errorf(p+".pattern", `required with parser = "regex", e.g. '^(?P<device>\w+) T=(?P<temperature>-?[\d.]+)$'`)
	}
	if u.Pattern != "" {
		re, err := regexp.Compile(u.Pattern)
		if err != nil {
			d.errorf(p+".pattern", "invalid regular expression: %v", err)
		} else {
			points := 0
			for _, g := range re.SubexpNames() {
				switch {
				case g == "" || g == "device":
				case bridge.ReservedPoint(g):
					d.errorf(p+".pattern", "group (?P<%s>…): %s", g, nameProblem(g, true))
				default:
					points++
				}
			}
			if points == 0 && u.Parser == "regex" {
				d.errorf(p+".pattern", "has no named group (?P<point>…): it would yield no points")
			}
		}
	}
	if u.Parser == "csv" && len(u.Columns) == 0 {
		d.errorf(p+".columns", `required with parser = "csv": the point names in column order`)
	}
	cols := map[string]bool{}
	for i, col := range u.Columns {
		cp := indexPath(p+".columns", i)
		if col != "device" {
			d.pointName(cp, col)
		}
		if cols[col] {
			d.errorf(cp, "column %q appears twice", col)
		}
		cols[col] = true
	}
	d.checkName(p+".device", "device", u.Device)
	if msg := placeholderProblem(u.Write, "device", "point", "value"); msg != "" {
		d.errorf(p+".write", "%s", msg)
	}
	if u.Parser == "binary" && len(u.Fields) == 0 {
		d.errorf(p, `parser = "binary" needs at least one [[uart.field]]`)
	}
	fields := map[string]int{}
	for i := range u.Fields {
		f := &u.Fields[i]
		fp := indexPath(p+".field", i)
		if !d.isSet(fp + ".name") {
			d.errorf(fp+".name", "required: the {point} name")
		} else {
			d.pointName(fp+".name", f.Name)
			if j, dup := fields[f.Name]; dup {
				d.errorf(fp+".name", "field %q is already defined by %s (line %d)", f.Name, indexPath(p+".field", j), d.line(indexPath(p+".field", j)))
			} else {
				fields[f.Name] = i
			}
		}
		if !d.isSet(fp + ".offset") {
			d.errorf(fp+".offset", "required: the byte offset in the frame")
		} else if f.Offset < 0 {
			d.errorf(fp+".offset", "must not be negative")
		} else if u.MaxFrame > 0 && int64(f.Offset) >= int64(u.MaxFrame) {
			d.errorf(fp+".offset", "%d is beyond max_frame (%s)", f.Offset, u.MaxFrame)
		}
		if !d.isSet(fp + ".type") {
			d.errorf(fp+".type", "required: one of %s", quoteList(pointTypes()[:9]))
		} else if f.Type == "string" {
			d.errorf(fp+".type", `"string" needs a length, which [[uart.field]] does not have yet; use parser = "regex" for text`)
		} else {
			d.enum(fp+".type", f.Type, pointTypes()[:9]...)
		}
		d.enum(fp+".order", f.Order, "big", "little")
		if f.Scale == 0 {
			d.errorf(fp+".scale", "must not be 0 (every reading would become 0)")
		}
	}
}

// block is one adapter block, for checks across blocks.
type block struct {
	path string
	name string
}

func adapterBlocks(c *Config) []block {
	var bs []block
	for i, x := range c.CoAP {
		bs = append(bs, block{indexPath("coap", i), x.Name})
	}
	for i, x := range c.Modbus {
		bs = append(bs, block{indexPath("modbus", i), x.Name})
	}
	for i, x := range c.UART {
		bs = append(bs, block{indexPath("uart", i), x.Name})
	}
	return bs
}

// byLine orders blocks by their header line so that the later one is
// blamed for a conflict.
func (d *decoder) byLine(bs []block) {
	for i := 1; i < len(bs); i++ {
		for j := i; j > 0 && d.line(bs[j].path) < d.line(bs[j-1].path); j-- {
			bs[j], bs[j-1] = bs[j-1], bs[j]
		}
	}
}

func (d *decoder) validateAdapterNames(c *Config) {
	bs := adapterBlocks(c)
	d.byLine(bs)
	seen := map[string]string{}
	for _, b := range bs {
		if prev, dup := seen[b.name]; dup && b.name != "" {
			hint := ""
			if !d.isSet(b.path + ".name") {
				hint = " (the default for an unnamed block)"
			}
			d.errorf(b.path+".name", "adapter name %q%s is already used by %s (line %d): every adapter block needs its own name", b.name, hint, prev, d.line(prev))
			continue
		}
		seen[b.name] = b.path
	}
}

// validateSerialPorts enforces one owner per serial port.
func (d *decoder) validateSerialPorts(c *Config) {
	type owner struct {
		path, key, what string
	}
	var owners []owner
	usb := func(s Serial) string {
		return "usb " + strings.ToLower(s.USB) + " serial " + s.USBSerial + " interface " + strconv.Itoa(s.USBInterface)
	}
	for i, m := range c.Modbus {
		p := indexPath("modbus", i)
		if u, err := url.Parse(m.URL); err == nil && strings.EqualFold(u.Scheme, "rtu") && u.Path != "" {
			owners = append(owners, owner{p + ".url", "port " + filepath.Clean(u.Path), fmt.Sprintf("serial port %q", u.Path)})
		} else if m.USB != "" && err == nil && strings.EqualFold(u.Scheme, "rtu") {
			owners = append(owners, owner{p + ".usb", usb(m.Serial), fmt.Sprintf("USB serial adapter %q", m.USB+" "+m.USBSerial)})
		}
	}
	for i, x := range c.UART {
		p := indexPath("uart", i)
		if x.Port != "" {
			owners = append(owners, owner{p + ".port", "port " + filepath.Clean(x.Port), fmt.Sprintf("serial port %q", x.Port)})
		} else if x.USB != "" {
			owners = append(owners, owner{p + ".usb", usb(x.Serial), fmt.Sprintf("USB serial adapter %q", strings.TrimSpace(x.USB+" "+x.USBSerial))})
		}
	}
	for i := 1; i < len(owners); i++ {
		for j := i; j > 0 && d.line(owners[j].path) < d.line(owners[j-1].path); j-- {
			owners[j], owners[j-1] = owners[j-1], owners[j]
		}
	}
	seen := map[string]string{}
	for _, o := range owners {
		if prev, dup := seen[o.key]; dup {
			d.errorf(o.path, "%s is already opened by %s (line %d): one owner per port", o.what, parentPath(prev), d.line(prev))
			continue
		}
		seen[o.key] = o.path
	}
}

// validateListeners rejects two listeners on the same port of one protocol.
func (d *decoder) validateListeners(c *Config) {
	type listener struct{ path, addr, proto string }
	var ls []listener
	if c.Broker.Enabled {
		ls = append(ls, listener{"broker.listen", c.Broker.Listen, "tcp"},
			listener{"broker.websocket", c.Broker.Websocket, "tcp"},
			listener{"broker.tls_listen", c.Broker.TLSListen, "tcp"})
	}
	if c.HTTP != nil {
		ls = append(ls, listener{"http.listen", c.HTTP.Listen, "tcp"})
	}
	for i, x := range c.CoAP {
		p := indexPath("coap", i)
		ls = append(ls, listener{p + ".listen", x.Listen, "udp"}, listener{p + ".dtls_listen", x.DTLSListen, "udp"})
	}
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && d.line(ls[j].path) < d.line(ls[j-1].path); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
	for i, a := range ls {
		ah, ap, err := net.SplitHostPort(a.addr)
		if err != nil || ap == "0" || hostPortProblem(a.addr) != "" {
			continue
		}
		for _, b := range ls[:i] {
			bh, bp, err := net.SplitHostPort(b.addr)
			if err != nil || b.proto != a.proto || bp != ap || hostPortProblem(b.addr) != "" {
				continue
			}
			if sameHost(ah, bh) || isWildcardHost(ah) || isWildcardHost(bh) {
				d.errorf(a.path, "%s port %s is already used by %s (line %d)", strings.ToUpper(a.proto), ap, b.path, d.line(b.path))
				break
			}
		}
	}
}

func sameHost(a, b string) bool {
	norm := func(h string) string {
		if strings.EqualFold(h, "localhost") {
			return "127.0.0.1"
		}
		if ip := net.ParseIP(h); ip != nil {
			return ip.String()
		}
		return strings.ToLower(h)
	}
	return norm(a) == norm(b)
}

func (d *decoder) validateRoute(p string, r *Route) {
	if !d.isSet(p + ".match") {
		d.errorf(p+".match", `required: a glob on {adapter}/{device}/{point}, e.g. "coap/greenhouse/*"`)
	} else if msg := globProblem(r.Match); msg != "" {
		d.errorf(p+".match", "invalid pattern %s", msg)
	}
	if msg := topicTemplateProblem(r.Topic); msg != "" {
		d.errorf(p+".topic", "invalid topic %s", msg)
	}
	d.enum(p+".payload", r.Payload, "json", "value", "senml")
	if r.Payload == "value" && !strings.Contains(r.Topic, "{point}") {
		d.errorf(p+".payload", `payload = "value" publishes one point per message: the topic needs {point} (topic is %q)`, r.Topic)
	}
	d.intRange(p+".qos", r.QoS, 0, 2)
	if r.Deadband < 0 || math.IsNaN(r.Deadband) || math.IsInf(r.Deadband, 0) {
		d.errorf(p+".deadband", "must not be negative (and must be finite)")
	}
	if r.MinInterval < 0 {
		d.errorf(p+".min_interval", "must not be negative")
	}
	if r.MaxInterval < 0 {
		d.errorf(p+".max_interval", "must not be negative")
	}
	if r.MaxInterval > 0 && r.MaxInterval < r.MinInterval {
		d.errorf(p+".max_interval", "%s is shorter than min_interval (%s): a heartbeat more often than values may be sent", r.MaxInterval.D(), r.MinInterval.D())
	}
}

func (d *decoder) validateHomeAssistant(h *HomeAssistant) {
	switch p := h.DiscoveryPrefix; {
	case p == "":
		d.errorf("homeassistant.discovery_prefix", "must not be empty")
	case strings.ContainsAny(p, "+#") || hasControl(p):
		d.errorf("homeassistant.discovery_prefix", `%q must not contain "+", "#" or control characters`, p)
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		d.errorf("homeassistant.discovery_prefix", `%q must not start or end with "/"`, p)
	}
}
