package main

import (
	"strings"
	"testing"

	"github.com/causeway/causeway/internal/serialport"
)

// A port of a multi-port adapter is selected by usb_interface; twins
// without a serial number fall back to a by-path link.
func TestConfigLinesMultiPortAndTwins(t *testing.T) {
	var ports []serialport.Info
	for i, n := range []string{"ttyUSB0", "ttyUSB1", "ttyUSB2", "ttyUSB3"} {
		ports = append(ports, serialport.Info{Path: "/dev/" + n, Name: n, VID: "0403", PID: "6011", Serial: "FT4X",
			Interface: "0" + string(rune('0'+i)), Location: "1-1", ByID: []string{"/dev/serial/by-id/usb-FTDI_FT4232-if0" + string(rune('0'+i)) + "-port0"}})
	}
	twin := func(n, path string) serialport.Info {
		return serialport.Info{Path: "/dev/" + n, Name: n, VID: "1a86", PID: "7523", Interface: "00", Location: path, ByPath: []string{"/dev/serial/by-path/" + path}}
	}
	ports = append(ports, twin("ttyUSB4", "usb-0:1.2"), twin("ttyUSB5", "usb-0:1.3"))

	got := strings.Join(configLines(ports, ports[2]), "\n")
	for _, want := range []string{`usb = "0403:6011"`, `usb_serial = "FT4X"`, "usb_interface = 2"} {
		if !strings.Contains(got, want) {
			t.Fatalf("FT4232 port 2:\n%s\nwant %s", got, want)
		}
	}
	got = strings.Join(configLines(ports, ports[4]), "\n")
	if !strings.Contains(got, `port = "/dev/serial/by-path/usb-0:1.2"`) || strings.Contains(got, "usb_interface") {
		t.Fatalf("CH340 twin:\n%s", got)
	}
}
