package config

// notYet is the tail of every "not built yet" message.
const notYet = "is not supported yet in this version"

// unsupported reports the features this version of the gateway does not
// run yet, so that a technician never believes something runs that does
// not. The contents of those blocks are still fully validated elsewhere:
// when a feature ships, delete its check here (and nothing else).
//
// ParseOptions.AllowUnsupported skips this function.
func unsupported(c *Config, d *decoder) {
	if c.Broker.Websocket != "" {
		d.errorf("broker.websocket", "MQTT over WebSocket %s", notYet)
	}
	if c.Broker.TLSListen != "" {
		d.errorf("broker.tls_listen", "the built-in broker's TLS listener %s", notYet)
	}
	for i := range c.Broker.Users {
		d.errorf(indexPath("broker.user", i), "[[broker.user]] (authentication on the built-in broker) %s", notYet)
	}
	if c.Uplink != nil && c.Uplink.Protocol == 4 {
		d.errorf("uplink.protocol", "MQTT 3.1.1 (protocol = 4) %s; use protocol = 5", notYet)
	}
	for i, r := range c.Routes {
		p := indexPath("route", i)
		if r.Deadband != 0 {
			d.errorf(p+".deadband", "deadband %s", notYet)
		}
		if r.MinInterval != 0 {
			d.errorf(p+".min_interval", "min_interval %s", notYet)
		}
		if r.MaxInterval != 0 {
			d.errorf(p+".max_interval", "max_interval %s", notYet)
		}
	}
	if c.HomeAssistant.Enabled {
		d.errorf("homeassistant.enabled", "Home Assistant discovery %s", notYet)
	}
}
