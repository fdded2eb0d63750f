package testpeer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/causeway/causeway/internal/serialport"
)

// FakeUSBSerial builds a minimal sysfs and /dev holding one FTDI USB serial
// adapter (0403:6001, serial A9XYZ) whose tty is name, its /dev entry a
// link to target (e.g. one end of a PTYPair), and returns the serialport.FS
// that sees it: for tests of port selection by USB identity.
func FakeUSBSerial(t testing.TB, name, target string) serialport.FS {
	t.Helper()
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	usbDev := filepath.Join(sys, "devices", "pci0000:00", "usb1", "1-1")
	port := filepath.Join(usbDev, "1-1:1.0", name)
	for _, d := range []string{filepath.Join(port, "tty", name), filepath.Join(sys, "class", "tty"), dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for f, v := range map[string]string{"idVendor": "0403", "idProduct": "6001", "serial": "A9XYZ"} {
		if err := os.WriteFile(filepath.Join(usbDev, f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(usbDev, "1-1:1.0", "bInterfaceNumber"), []byte("00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		filepath.Join(port, "tty", name, "device"): port,
		filepath.Join(sys, "class", "tty", name):   filepath.Join(port, "tty", name),
		filepath.Join(dev, name):                   target,
	}
	for l, to := range links {
		if err := os.Symlink(to, l); err != nil {
			t.Fatal(err)
		}
	}
	return serialport.FS{SysRoot: sys, DevRoot: dev}
}
