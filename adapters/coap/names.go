package coap

import (
	"fmt"

	"github.com/causeway/causeway/bridge"
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
	if len(name) > maxNameLen {
		return fmt.Errorf("device name %.32q... is longer than %d bytes", name, maxNameLen)
	}
	return bridge.CheckDeviceName(name)
}

// ValidPointName reports why name cannot name a point, or nil: the device
// rules, and "time" and "errors" are reserved too.
func ValidPointName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("point name %.32q... is longer than %d bytes", name, maxNameLen)
	}
	return bridge.CheckPointName(name)
}
