package mqttcore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Errors shared by the broker and the uplink.
var (
	// ErrInvalidTopic is returned for a topic name that MQTT does not allow
	// in a PUBLISH: empty, wildcards, invalid UTF-8, U+0000, or too long.
	ErrInvalidTopic = errors.New("invalid topic name")
	// ErrInvalidQoS is returned for a QoS other than 0, 1 or 2.
	ErrInvalidQoS = errors.New("invalid QoS")
	// ErrClosed is returned by operations on a closed broker, uplink or queue.
	ErrClosed = errors.New("closed")
)

// maxTopicLen is the longest topic name MQTT can encode (a two-byte length).
const maxTopicLen = 65535

// validateTopicName checks that topic may be used as a PUBLISH topic name.
func validateTopicName(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(topic) > maxTopicLen:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidTopic, len(topic), maxTopicLen)
	case strings.ContainsAny(topic, "+#"):
		return fmt.Errorf("%w: %q contains a wildcard", ErrInvalidTopic, topic)
	case strings.IndexByte(topic, 0) >= 0:
		return fmt.Errorf("%w: %q contains U+0000", ErrInvalidTopic, topic)
	case !utf8.ValidString(topic):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidTopic, topic)
	}
	return nil
}

// validatePrefix checks a topic prefix: it may be empty, and must not
// introduce anything validateTopicName would refuse.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.ContainsAny(prefix, "+#") || strings.IndexByte(prefix, 0) >= 0 || !utf8.ValidString(prefix) {
		return fmt.Errorf("%w: topic prefix %q", ErrInvalidTopic, prefix)
	}
	return nil
}
