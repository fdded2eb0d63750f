package bridge

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ReservedDevice reports whether PRODUCT.md reserves s as a device (or
// adapter) name: set, availability, status, stats are the last levels of
// the gateway's own topics.
func ReservedDevice(s string) bool {
	switch s {
	case "set", "availability", "status", "stats":
		return true
	}
	return false
}

// ReservedPoint reports whether s is reserved as a point name: the device
// names, and time and errors, the keys of the JSON payload.
func ReservedPoint(s string) bool {
	return s == "time" || s == "errors" || ReservedDevice(s)
}

// CheckTopicText reports why s cannot be part of an MQTT topic name as one
// level (slash false) or several (slash true): invalid UTF-8, U+0000 or
// another control character, or an MQTT wildcard.
func CheckTopicText(s string, slash bool) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20 || c == 0x7f:
				return fmt.Errorf("control character %q", c)
			case c == '+' || c == '#':
				return fmt.Errorf("MQTT wildcard %q", c)
			case c == '/' && !slash:
				return errors.New(`"/"`)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return errors.New("invalid UTF-8")
		}
		if r >= 0x80 && r <= 0x9f {
			return fmt.Errorf("control character %q", r)
		}
		i += n
	}
	return nil
}

// NameOK is the fast check: s can be one topic level (not empty, no
// control characters, wildcards or '/', valid UTF-8). It does not check
// reserved names.
func NameOK(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '+' || c == '#' || c == '/' {
			return false
		}
		if c >= utf8.RuneSelf {
			return CheckTopicText(s[i:], false) == nil
		}
	}
	return true
}

func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	if err := CheckTopicText(s, false); err != nil {
		return fmt.Errorf("%s name %q: %w is not allowed", what, s, err)
	}
	return nil
}

// CheckDeviceName reports whether s may name a device: not empty, valid
// UTF-8 without control characters, no '+', '#' or '/', and none of the
// reserved names set, availability, status, stats. The mapping engine skips
// frames whose device fails this check; adapters refuse them first.
func CheckDeviceName(s string) error {
	if err := checkName("device", s); err != nil {
		return err
	}
	if ReservedDevice(s) {
		return fmt.Errorf("device name %q is reserved", s)
	}
	return nil
}

// CheckPointName is [CheckDeviceName] for a point; time and errors are
// reserved too.
func CheckPointName(s string) error {
	if err := checkName("point", s); err != nil {
		return err
	}
	if ReservedPoint(s) {
		return fmt.Errorf("point name %q is reserved", s)
	}
	return nil
}

// CheckAdapterName reports whether s may name an adapter (the {adapter} in
// topics): the character rules of [CheckDeviceName], no reserved names.
func CheckAdapterName(s string) error { return checkName("adapter", s) }

// CheckGatewayID reports whether s may be the gateway id: the character rules
// of [CheckDeviceName], and it must not start with '$' (topics starting with
// '$' belong to the broker).
func CheckGatewayID(s string) error {
	if err := checkName("gateway id", s); err != nil {
		return err
	}
	if s[0] == '$' {
		return fmt.Errorf("gateway id %q: must not start with $", s)
	}
	return nil
}
