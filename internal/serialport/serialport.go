// Package serialport lists the serial ports of a Linux machine and selects
// one by USB identity, so that a configuration naming an adapter by
// "vid:pid" (and serial number) keeps working when the adapter comes back
// as another /dev/ttyUSBn after a reboot or a replug. It is shared by the
// Modbus RTU and UART adapters.
//
// Everything is read from sysfs on every call (nothing is cached):
//
//	/sys/class/tty/ttyUSB0 -> ../../devices/.../usb1/1-1/1-1:1.0/ttyUSB0/tty/ttyUSB0
//	  device -> ../../ttyUSB0             usb-serial drivers: the port under the interface
//	/sys/class/tty/ttyACM0/device -> ../../../1-1:1.0   cdc_acm: the interface itself
//	.../1-1:1.0/bInterfaceNumber, driver -> .../drivers/ftdi_sio   the USB interface
//	.../1-1/idVendor, idProduct, serial, manufacturer, product    the USB device
//
// and the /dev/serial/by-id and /dev/serial/by-path links made by udev.
package serialport

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Info describes one serial port.
type Info struct {
	Path         string   `json:"path"`         // /dev/ttyUSB0
	Name         string   `json:"name"`         // ttyUSB0
	VID          string   `json:"vid"`          // lower-case 4-hex-digit vendor id, "" for non-USB ports
	PID          string   `json:"pid"`          // lower-case 4-hex-digit product id, "" for non-USB ports
	Serial       string   `json:"serial"`       // USB serial number (iSerial), may be ""
	Manufacturer string   `json:"manufacturer"` // USB manufacturer string, may be ""
	Product      string   `json:"product"`      // USB product string, may be ""
	Interface    string   `json:"interface"`    // USB interface number (bInterfaceNumber, "00"), "" for non-USB ports
	Location     string   `json:"location"`     // USB device's sysfs name, e.g. "1-1.2" (bus 1, port 1, hub port 2): the socket; "" for non-USB ports
	ByID         []string `json:"by_id"`        // /dev/serial/by-id/... links pointing to it
	ByPath       []string `json:"by_path"`      // /dev/serial/by-path/... links
	Driver       string   `json:"driver"`       // e.g. ftdi_sio, cp210x, cdc_acm, pl2303, ch341; "" if unknown
}

// USB returns the port's USB identity "vid:pid", or "" for a non-USB port.
func (i Info) USB() string {
	if i.VID == "" {
		return ""
	}
	return i.VID + ":" + i.PID
}

// FS locates the trees to scan; the zero value means the real system
// ("/sys", "/dev"). Tests point it at a fake tree.
type FS struct{ SysRoot, DevRoot string }

func (fsys FS) roots() (sys, dev string) {
	sys, dev = fsys.SysRoot, fsys.DevRoot
	if sys == "" {
		sys = "/sys"
	}
	if dev == "" {
		dev = "/dev"
	}
	return filepath.Clean(sys), filepath.Clean(dev)
}

// List returns the serial ports: every /sys/class/tty/<name> entry that has
// a device link, that is real hardware (ttyS*, ttyAMA*, ttyUSB*, ttyACM*,
// ...), not the virtual consoles and ptys. A ttyS whose "type" attribute is
// 0 is left out: it is a placeholder the 8250 driver registers for a UART
// that is not there. The ports are sorted by path, numbers in numeric order
// (ttyUSB2 before ttyUSB10).
//
// A port vanishing during the scan (an adapter unplugged) is left out, not
// an error; only an unreadable /sys/class/tty is.
func (fsys FS) List() ([]Info, error) {
	sys, dev := fsys.roots()
	class := filepath.Join(sys, "class", "tty")
	entries, err := os.ReadDir(class)
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	top, err := filepath.EvalSymlinks(sys)
	if err != nil {
		top = sys
	}
	links := devLinks(dev)
	var ports []Info
	for _, e := range entries {
		p, ok := port(filepath.Join(class, e.Name()), top)
		if !ok {
			continue
		}
		p.Name = e.Name()
		p.Path = filepath.Join(dev, p.Name)
		p.ByID = links["by-id"][p.Path]
		p.ByPath = links["by-path"][p.Path]
		ports = append(ports, p)
	}
	slices.SortFunc(ports, func(a, b Info) int { return naturalCompare(a.Path, b.Path) })
	return ports, nil
}

// port reads the sysfs entry dir (/sys/class/tty/NAME) of one port; top is
// the resolved sysfs root, above which the walk to the USB device stops.
func port(dir, top string) (Info, bool) {
	devDir, err := filepath.EvalSymlinks(filepath.Join(dir, "device"))
	if err != nil {
		return Info{}, false // no device link (virtual console, pty) or gone
	}
	if attr(dir, "type") == "0" {
		return Info{}, false // 8250 placeholder without a UART
	}
	var p Info
	usbDir, ifaceDir := "", ""
	for d, prev := devDir, ""; strings.HasPrefix(d, top+string(filepath.Separator)); prev, d = d, filepath.Dir(d) {
		if exists(filepath.Join(d, "idVendor")) && exists(filepath.Join(d, "idProduct")) {
			usbDir, ifaceDir = d, prev
			break
		}
	}
	if usbDir == "" {
		p.Driver = platformDriver(devDir, top)
		return p, true
	}
	p.VID = strings.ToLower(attr(usbDir, "idVendor"))
	p.PID = strings.ToLower(attr(usbDir, "idProduct"))
	p.Serial = attr(usbDir, "serial")
	p.Manufacturer = attr(usbDir, "manufacturer")
	p.Product = attr(usbDir, "product")
	p.Location = filepath.Base(usbDir)
	if ifaceDir != "" {
		p.Interface = strings.ToLower(attr(ifaceDir, "bInterfaceNumber"))
		p.Driver = linkBase(filepath.Join(ifaceDir, "driver"))
	}
	if p.Driver == "" {
		p.Driver = linkBase(filepath.Join(devDir, "driver"))
	}
	return p, true
}

// platformDriver names the driver of a non-USB port's device. Since Linux
// 6.5 the device of a ttyS or ttyAMA is a serial-base "port" device under a
// serial-base "ctrl" device, whose drivers are called port and ctrl: the
// driver that means something (serial, uart-pl011, ...) is the one of the
// first device above them.
func platformDriver(devDir, top string) string {
	d := devDir
	for linkBase(filepath.Join(d, "subsystem")) == "serial-base" {
		parent := filepath.Dir(d)
		if parent == d || !strings.HasPrefix(parent, top+string(filepath.Separator)) {
			break
		}
		d = parent
	}
	return linkBase(filepath.Join(d, "driver"))
}

// devLinks maps "by-id" and "by-path" to the links in dev/serial/by-id and
// dev/serial/by-path, keyed by the cleaned path each one points to.
func devLinks(dev string) map[string]map[string][]string {
	m := map[string]map[string][]string{}
	for _, kind := range []string{"by-id", "by-path"} {
		dir := filepath.Join(dev, "serial", kind)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		m[kind] = map[string][]string{}
		for _, e := range entries {
			link := filepath.Join(dir, e.Name())
			target, err := os.Readlink(link)
			if err != nil {
				continue
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			target = filepath.Clean(target)
			m[kind][target] = append(m[kind][target], link)
		}
	}
	return m
}

// attr returns a sysfs attribute file's content without surrounding
// white space, or "" when it cannot be read.
func attr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// linkBase returns the last element of a symlink's target (the driver name
// of a driver link), or "" when path is not a readable link.
func linkBase(path string) string {
	t, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// naturalCompare orders strings with runs of digits compared as numbers, so
// that /dev/ttyUSB2 comes before /dev/ttyUSB10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			da, db := digits(a), digits(b)
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			if c := da - db; c != 0 { // same number: fewer leading zeros first
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(s string) int {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}
