package mapping

import (
	"errors"
	"fmt"
	"math"
	"time"
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

	// Report by exception (see the package documentation, "Report by
	// exception"); zero turns each off. A drop route ignores them.

	// Deadband skips a numeric point that moved less than this since the
	// value last published for it; other values are skipped while they do
	// not change.
	Deadband float64
	// MinInterval publishes at most one message per point per interval; a
	// value that comes sooner is held (the latest wins) and published when
	// the interval ends, by [Engine.Due].
	MinInterval time.Duration
	// MaxInterval re-publishes a point's newest value when nothing was
	// published for it for this long (a heartbeat, by [Engine.Due]).
	MaxInterval time.Duration
}

// rbe reports whether the route reports by exception.
func (r *Route) rbe() bool {
	return !r.Drop && (r.Deadband != 0 || r.MinInterval != 0 || r.MaxInterval != 0)
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
// key: "match", "topic", "payload", "qos", "deadband", "min_interval" or
// "max_interval", so that the config layer can name the key path and line.
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
// topic, that QoS is at most 2, that deadband is a finite number not below
// zero, that the intervals are not negative and that max_interval, when
// both are set, is not shorter than min_interval (a heartbeat more often
// than one message per min_interval contradicts it; equal values publish
// exactly once per interval). A drop route needs only a valid match.
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
	if r.Deadband < 0 || math.IsNaN(r.Deadband) || math.IsInf(r.Deadband, 0) {
		errs = append(errs, &FieldError{"deadband", fmt.Errorf("%v: want a finite number, 0 or more", r.Deadband)})
	}
	if r.MinInterval < 0 {
		errs = append(errs, &FieldError{"min_interval", fmt.Errorf("%v: must not be negative", r.MinInterval)})
	}
	if r.MaxInterval < 0 {
		errs = append(errs, &FieldError{"max_interval", fmt.Errorf("%v: must not be negative", r.MaxInterval)})
	} else if r.MaxInterval > 0 && r.MaxInterval < r.MinInterval {
		errs = append(errs, &FieldError{"max_interval", fmt.Errorf("%v is shorter than min_interval %v: a heartbeat cannot come more often than one message per min_interval", r.MaxInterval, r.MinInterval)})
	}
	return errs
}
