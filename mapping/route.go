package mapping

import (
	"errors"
	"fmt"
)

// Route is one compiled-from-config route ([[route]] in gateway.toml); all
// fields are already defaulted by the config layer (see [DefaultRoute]).
type Route struct {
	// Match is a glob on "{adapter}/{device}/{point}": "*" matches within one
	// segment, a "**" segment matches any number of segments (zero included).
	Match string
	// Topic is a template with {gateway}, {adapter}, {device} and {point}.
	// With {point}, every point is published on its own.
	Topic string
	// Payload is "json", "value" or "senml".
	Payload string
	// QoS is 0, 1 or 2.
	QoS byte
	// Retain sets the MQTT retain flag.
	Retain bool
	// Uplink also sends the messages to the uplink broker.
	Uplink bool
	// Drop discards the matching points. Topic and Payload may then be empty.
	Drop bool
}

// Payload formats.
const (
	PayloadJSON  = "json"
	PayloadValue = "value"
	PayloadSenML = "senml"
)

// DefaultRoute returns the route a point takes when no route matches it, and
// whose values a [[route]] inherits for the keys it omits: topic
// "{gateway}/{adapter}/{device}", payload json, QoS 1, no retain, uplink.
// Its Match is "**".
func DefaultRoute() Route {
	return Route{
		Match:   "**",
		Topic:   "{gateway}/{adapter}/{device}",
		Payload: PayloadJSON,
		QoS:     1,
		Uplink:  true,
	}
}

// FieldError is an error in one field of a route. Field is the gateway.toml
// key: "match", "topic", "payload" or "qos", so that the config layer can
// name the key path and line.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// ValidateRoute checks one route and returns every problem found, each a
// *[FieldError]; nil means the route is valid. It checks the glob, the topic
// template (known placeholders, balanced braces, no MQTT wildcards, no
// reserved last level), the payload name, that "value" has {point} in the
// topic, and that QoS is at most 2. A drop route needs only a valid match.
func ValidateRoute(r Route) []error {
	var errs []error
	if _, err := compileGlob(r.Match); err != nil {
		errs = append(errs, &FieldError{"match", err})
	}
	if r.Drop && r.Topic == "" && r.Payload == "" {
		return errs
	}
	t, err := compileTemplate(r.Topic, "")
	if err != nil {
		errs = append(errs, &FieldError{"topic", err})
	}
	switch r.Payload {
	case PayloadJSON, PayloadSenML:
	case PayloadValue:
		if err == nil && !t.hasPoint {
			errs = append(errs, &FieldError{"payload", fmt.Errorf(`"value" needs {point} in the topic %q: a bare value names no point`, r.Topic)})
		}
	case "":
		errs = append(errs, &FieldError{"payload", errors.New(`missing: want "json", "value" or "senml"`)})
	default:
		errs = append(errs, &FieldError{"payload", fmt.Errorf(`unknown payload %q: want "json", "value" or "senml"`, r.Payload)})
	}
	if r.QoS > 2 {
		errs = append(errs, &FieldError{"qos", fmt.Errorf("%d: want 0, 1 or 2", r.QoS)})
	}
	return errs
}
