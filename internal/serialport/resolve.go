package serialport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors of Resolve and ResolveInterface, for errors.Is: an adapter that is
// not plugged in yet (ErrNotFound) may be worth waiting for, a
// configuration that matches several ports (ErrAmbiguous) is not.
var (
	ErrNotFound  = errors.New("no matching serial port")
	ErrAmbiguous = errors.New("several matching serial ports")
)

// resolveError is an error of Resolve: its text for people, its kind
// (ErrNotFound or ErrAmbiguous) for errors.Is.
type resolveError struct {
	kind error
	msg  string
}

func (e *resolveError) Error() string { return e.msg }
func (e *resolveError) Unwrap() error { return e.kind }

// ParseUSB parses "vid:pid" (4 hex digits each, any case) into lower-case
// vid and pid.
func ParseUSB(s string) (vid, pid string, err error) {
	v, p, ok := strings.Cut(s, ":")
	if !ok || !isHex4(v) || !isHex4(p) {
		return "", "", fmt.Errorf(`%q is not a USB id "vid:pid" of 4 hex digits each, e.g. "0403:6001"`, s)
	}
	return strings.ToLower(v), strings.ToLower(p), nil
}

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Resolve returns the path (/dev/ttyUSB1) of the one port whose USB identity
// matches usb ("vid:pid", any case) and, if serial != "", whose USB serial
// number equals serial. The ports are scanned afresh on every call, so the
// answer follows an adapter from ttyUSB0 to ttyUSB1.
//
// It fails with an error wrapping ErrNotFound when no port matches (the
// message lists the USB ports that are connected), and with one wrapping
// ErrAmbiguous when several do: several adapters (set usb_serial), or
// several ttys of one multi-port device such as an FT4232 (the message
// names them with their interface numbers; see ResolveInterface).
func (fsys FS) Resolve(usb, serial string) (string, error) {
	return fsys.ResolveInterface(usb, serial, -1)
}

// ResolveInterface is Resolve for a device with several serial ports: when
// iface >= 0 only the tty of USB interface iface (bInterfaceNumber, as in
// the "-if01" of a /dev/serial/by-id link) matches. A negative iface
// matches any interface, as Resolve does.
func (fsys FS) ResolveInterface(usb, serial string, iface int) (string, error) {
	vid, pid, err := ParseUSB(usb)
	if err != nil {
		return "", err
	}
	ports, err := fsys.List()
	if err != nil {
		return "", err
	}
	p, err := pick(ports, vid, pid, serial, iface)
	if err != nil {
		return "", err
	}
	return p.Path, nil
}

// Selector returns the usb and usb_serial values with which Resolve picks p
// among ports (as returned by List): serial is "" when usb alone is enough.
// ok is false for a non-USB port and for one that usb and usb_serial cannot
// single out: another tty of the same multi-port device, or an adapter whose
// serial number is missing or shared with an identical adapter.
func Selector(ports []Info, p Info) (usb, serial string, ok bool) {
	if p.VID == "" {
		return "", "", false
	}
	if m := matches(ports, p.VID, p.PID, "", -1); len(m) == 1 && m[0].Path == p.Path {
		return p.USB(), "", true
	}
	if p.Serial != "" {
		if m := matches(ports, p.VID, p.PID, p.Serial, -1); len(m) == 1 && m[0].Path == p.Path {
			return p.USB(), p.Serial, true
		}
	}
	return "", "", false
}

// matches returns the ports with USB identity vid:pid (lower case), serial
// number serial unless it is "", and interface iface unless it is negative.
func matches(ports []Info, vid, pid, serial string, iface int) []Info {
	var m []Info
	for _, p := range ports {
		if p.VID != vid || p.PID != pid || serial != "" && p.Serial != serial {
			continue
		}
		if iface >= 0 {
			n, err := strconv.ParseUint(p.Interface, 16, 8)
			if err != nil || int(n) != iface {
				continue
			}
		}
		m = append(m, p)
	}
	return m
}

// pick is Resolve on a list of ports.
func pick(ports []Info, vid, pid, serial string, iface int) (Info, error) {
	m := matches(ports, vid, pid, serial, iface)
	switch len(m) {
	case 1:
		return m[0], nil
	case 0:
		return Info{}, notFound(ports, vid+":"+pid, serial, iface)
	}
	return Info{}, ambiguous(m, vid+":"+pid, serial)
}

func notFound(ports []Info, usb, serial string, iface int) error {
	var want []string
	if serial != "" {
		want = append(want, "serial "+serial)
	}
	if iface >= 0 {
		want = append(want, fmt.Sprintf("interface %02x", iface))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no serial port with USB id %s", usb)
	if len(want) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(want, ", "))
	}
	multi := multiPort(ports)
	var connected []string
	for _, p := range ports {
		if p.VID == "" {
			continue
		}
		s := p.Name + " " + p.USB()
		if d := details(p, multi); d != "" {
			s += " (" + d + ")"
		}
		connected = append(connected, s)
	}
	if len(connected) == 0 {
		b.WriteString("; no USB serial adapter is connected")
	} else {
		b.WriteString("; connected: " + strings.Join(connected, ", "))
	}
	return &resolveError{ErrNotFound, b.String()}
}

func ambiguous(m []Info, usb, serial string) error {
	multi := multiPort(m)
	devices := map[string]bool{}
	for _, p := range m {
		devices[device(p)] = true
	}
	var b strings.Builder
	if len(devices) == 1 {
		fmt.Fprintf(&b, "USB device %s", usb)
		if m[0].Serial != "" {
			fmt.Fprintf(&b, " (serial %s)", m[0].Serial)
		}
		fmt.Fprintf(&b, " has %d serial ports: ", len(m))
		for i, p := range m {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (interface %s)", p.Name, orUnknown(p.Interface))
		}
		b.WriteString("; usb and usb_serial cannot choose among them: name the port by its /dev/serial/by-id/ link, which ends in the interface (-if01...)")
		return &resolveError{ErrAmbiguous, b.String()}
	}
	fmt.Fprintf(&b, "%d serial ports with USB id %s", len(m), usb)
	if serial != "" {
		fmt.Fprintf(&b, " and serial %s", serial)
	}
	b.WriteString(": ")
	serials := map[string]string{} // serial number -> device
	distinct := true
	for i, p := range m {
		if i > 0 {
			b.WriteString(", ")
		}
		d := details(p, multi)
		if p.Serial == "" {
			d = strings.TrimSuffix("no serial number, "+d, ", ")
		}
		fmt.Fprintf(&b, "%s (%s)", p.Name, d)
		if other, seen := serials[p.Serial]; p.Serial == "" || seen && other != device(p) {
			distinct = false
		}
		serials[p.Serial] = device(p)
	}
	switch {
	case serial != "":
		b.WriteString("; the adapters have the same serial number: name the port by its /dev/serial/by-path/ link (fixed to the USB socket) instead")
	case distinct:
		b.WriteString("; set usb_serial")
	default:
		b.WriteString("; set usb_serial where it tells them apart; an adapter without a serial number of its own can only be named by its /dev/serial/by-path/ link (fixed to the USB socket)")
	}
	return &resolveError{ErrAmbiguous, b.String()}
}

// details describes p in a list: its serial number, and its interface
// when its device has several ports (multi, from multiPort).
func details(p Info, multi map[string]bool) string {
	var d []string
	if p.Serial != "" {
		d = append(d, "serial "+p.Serial)
	}
	if multi[device(p)] {
		d = append(d, "interface "+orUnknown(p.Interface))
	}
	return strings.Join(d, ", ")
}

// multiPort returns the devices (see device) with more than one port.
func multiPort(ports []Info) map[string]bool {
	n := map[string]int{}
	multi := map[string]bool{}
	for _, p := range ports {
		if p.VID == "" {
			continue
		}
		k := device(p)
		n[k]++
		if n[k] > 1 {
			multi[k] = true
		}
	}
	return multi
}

// device identifies the USB device of a port: its location, unique among
// the connected devices.
func device(p Info) string {
	if p.Location == "" {
		return "tty " + p.Name
	}
	return p.Location
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
