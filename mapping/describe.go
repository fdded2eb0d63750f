package mapping

import "strings"

// Describe says where these routes publish the value of one point: the
// topic and the payload format (PayloadJSON, PayloadValue, PayloadSenML).
// ok is false when the point is dropped or its names cannot form a topic.
// For json and senml the point is one member of the payload; for value
// the payload is the value alone. Consumers that must find a point's value
// without seeing a message (Home Assistant discovery) use it.
func (e *Engine) Describe(adapter, device, point string) (topic, payload string, ok bool) {
	c := &e.routes[len(e.routes)-1]
	if i := e.Select(adapter, device, point); i >= 0 {
		c = &e.routes[i]
	}
	if c.Drop {
		return "", "", false
	}
	if _, valid := c.topic.length(adapter, device, point); !valid {
		return "", "", false
	}
	var b strings.Builder
	b.Grow(c.topic.size(adapter, device, point))
	c.topic.write(&b, adapter, device, point)
	return b.String(), c.Route.Payload, true
}
