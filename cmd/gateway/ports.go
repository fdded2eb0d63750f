package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/causeway/causeway/internal/serialport"
)

// cmdPorts implements "gateway ports [-json]": it lists the serial ports
// for the technician with their USB identity and the configuration lines
// that select each one, so that the configuration survives the adapter
// coming back as another /dev/ttyUSBn.
func cmdPorts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ports", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the ports as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway ports: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ports, err := serialport.FS{}.List()
	if err != nil {
		fmt.Fprintf(stderr, "gateway ports: %v\n", err)
		return 1
	}
	if *asJSON {
		return printPortsJSON(stdout, stderr, ports)
	}
	printPorts(stdout, ports)
	return 0
}

func printPortsJSON(stdout, stderr io.Writer, ports []serialport.Info) int {
	out := make([]serialport.Info, len(ports)) // [] rather than null, here and in the link lists
	for i, p := range ports {
		if p.ByID == nil {
			p.ByID = []string{}
		}
		if p.ByPath == nil {
			p.ByPath = []string{}
		}
		out[i] = p
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "gateway ports: %v\n", err)
		return 1
	}
	return 0
}

const noUSBHint = "Plug the USB serial adapter in, then look at `sudo dmesg | tail` for its driver\n" +
	"attaching it (\"... now attached to ttyUSB0\", \"cdc_acm ... ttyACM0: USB ACM device\").\n"

func printPorts(w io.Writer, ports []serialport.Info) {
	if len(ports) == 0 {
		fmt.Fprint(w, "No serial ports found.\n"+noUSBHint)
		return
	}
	usb := 0
	for i, p := range ports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if p.VID != "" {
			usb++
		}
		printPort(w, ports, p)
	}
	if usb == 0 {
		fmt.Fprint(w, "\nNo USB serial adapter found.\n"+noUSBHint)
	}
}

// printPort prints the block of one port.
func printPort(w io.Writer, ports []serialport.Info, p serialport.Info) {
	field := func(name, value string) { fmt.Fprintf(w, "    %-10s %s\n", name, value) }
	fmt.Fprintln(w, p.Path)
	if p.VID == "" {
		field("usb", "none (built-in serial port)")
	} else {
		serial := "serial " + p.Serial
		if p.Serial == "" {
			serial = "(no serial number)"
		}
		field("usb", p.USB()+"  "+serial)
		if d := description(p); d != "" {
			field("device", d)
		}
	}
	driver := p.Driver
	if driver == "" {
		driver = "unknown"
	}
	if p.Location != "" {
		driver += fmt.Sprintf(" (interface %s of USB device %s)", p.Interface, p.Location)
	}
	field("driver", driver)
	for _, l := range p.ByID {
		field("by-id", l)
	}
	for _, l := range p.ByPath {
		field("by-path", l)
	}
	for i, l := range configLines(ports, p) {
		name := ""
		if i == 0 {
			name = "config"
		}
		field(name, l)
	}
}

// description joins a USB device's manufacturer and product strings.
func description(p serialport.Info) string {
	if p.Manufacturer == "" || strings.HasPrefix(p.Product, p.Manufacturer) {
		return p.Product
	}
	return strings.TrimSpace(p.Manufacturer + " " + p.Product)
}

// configLines returns the TOML lines that select p in a [[uart]] or
// [[modbus]] section: usb (and usb_serial when there are identical
// adapters) for a USB port, else port, with TOML comments for [[modbus]].
func configLines(ports []serialport.Info, p serialport.Info) []string {
	usb, serial, ok := serialport.Selector(ports, p)
	if ok {
		lines := []string{"usb = " + tomlString(usb)}
		if serial != "" {
			lines = append(lines, "usb_serial = "+tomlString(serial))
		} else if p.Serial != "" {
			lines = append(lines, fmt.Sprintf("# usb_serial = %s   # only needed once another %s is plugged in", tomlString(p.Serial), usb))
		}
		return append(lines, `# [[modbus]]: also url = "rtu://"`)
	}
	if lines := interfaceLines(ports, p); lines != nil {
		return lines
	}
	path, why := p.Path, ""
	if p.VID != "" {
		siblings := 0
		for _, q := range ports {
			if q.Location == p.Location {
				siblings++
			}
		}
		links := append(append([]string(nil), p.ByPath...), p.ByID...)
		if siblings > 1 {
			// One of several ports of one device: the by-id link names
			// the device's serial number and the interface.
			why = fmt.Sprintf("# usb cannot choose: this USB device has %d serial ports", siblings)
			links = append(append([]string(nil), p.ByID...), p.ByPath...)
		} else {
			// Identical adapters without distinct serial numbers: only
			// the USB socket (by-path) tells them apart.
			why = fmt.Sprintf("# usb cannot choose: another %s has the same serial number", p.USB())
			if p.Serial == "" {
				why = fmt.Sprintf("# usb cannot choose: several %s without a serial number", p.USB())
			}
		}
		if len(links) > 0 {
			path = links[0]
		}
	}
	lines := []string{"port = " + tomlString(path)}
	if why != "" {
		lines = append(lines, why)
	}
	if p.VID != "" && path == p.Path {
		lines = append(lines, fmt.Sprintf("# no /dev/serial link (is udev running?): %s may change at the next reboot", p.Name))
	}
	return append(lines, "# [[modbus]]: url = "+tomlString("rtu://"+path)+" instead")
}

// interfaceLines selects one port of a multi-port USB adapter (FT4232)
// with usb, usb_serial and usb_interface, when those pick exactly p; nil
// otherwise.
func interfaceLines(ports []serialport.Info, p serialport.Info) []string {
	if p.VID == "" || p.Interface == "" {
		return nil
	}
	iface, err := strconv.ParseUint(p.Interface, 16, 8)
	if err != nil {
		return nil
	}
	n := 0
	for _, q := range ports {
		if q.VID == p.VID && q.PID == p.PID && q.Serial == p.Serial && q.Interface == p.Interface {
			n++
		}
	}
	if n != 1 {
		return nil
	}
	lines := []string{"usb = " + tomlString(p.USB())}
	if p.Serial != "" {
		lines = append(lines, "usb_serial = "+tomlString(p.Serial))
	}
	return append(lines, fmt.Sprintf("usb_interface = %d   # port %d of this multi-port adapter", iface, iface), `# [[modbus]]: also url = "rtu://"`)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
