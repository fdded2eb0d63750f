package coap

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxNameLen bounds device and point names; it is the largest Uri-Path
// option a CoAP request can carry.
const maxNameLen = 255

// ValidDeviceName reports why name cannot name a device, or nil. The rules
// are PRODUCT.md's: never empty, never "set", "availability", "status" or
// "stats", never containing '+', '#' or '/'. This package also refuses
// invalid UTF-8, control characters and names longer than 255 bytes, which
// could not become part of an MQTT topic.
func ValidDeviceName(name string) error {
	if err := validName("device", name); err != nil {
		return err
	}
	switch name {
	case "set", "availability", "status", "stats":
		return fmt.Errorf("device name %q is reserved", name)
	}
	return nil
}

// ValidPointName reports why name cannot name a point, or nil: the device
// rules, and "time" and "errors" are reserved too.
func ValidPointName(name string) error {
	if err := validName("point", name); err != nil {
		return err
	}
	switch name {
	case "time", "errors", "set", "availability", "status", "stats":
		return fmt.Errorf("point name %q is reserved", name)
	}
	return nil
}

func validName(what, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s name", what)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%s name %.32q... is longer than %d bytes", what, name, maxNameLen)
	}
	if i := strings.IndexAny(name, "+#/"); i >= 0 {
		return fmt.Errorf("%s name %q contains %q", what, name, name[i])
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%s name %q is not valid UTF-8", what, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s name %q contains a control character", what, name)
		}
	}
	return nil
}
