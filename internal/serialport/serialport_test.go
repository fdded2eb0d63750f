package serialport

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// gateway builds the fake tree of a well-stocked gateway:
//
//	ttyUSB0, ttyUSB1  two FT232R (0403:6001), serials A1 and B2
//	ttyUSB2           a CP2102 (10c4:ea60)
//	ttyUSB3..ttyUSB6  an FT4232 (0403:6011): one device, interfaces 00..03
//	ttyUSB7, ttyUSB10 two CH340 (1a86:7523) without serial numbers
//	ttyACM0           an Arduino (cdc_acm)
//	ttyS0             a 16550 on the PNP bus (Linux 6.5+ serial-base layout)
//	ttyS1             an 8250 placeholder (type 0): not listed
//	ttyAMA0           a Raspberry Pi PL011 (platform device)
//	tty0, tty63, console, ptmx   virtual: not listed
func gateway(t *testing.T) *fakeTree {
	f := newFakeTree(t)
	a := f.usbDevice("1-1.1", "0403", "6001", "A1", "FTDI", "FT232R USB UART")
	f.usbSerial("ttyUSB0", a, 0, "ftdi_sio")
	f.devLink("by-id", "usb-FTDI_FT232R_USB_UART_A1-if00-port0", "ttyUSB0")
	f.devLink("by-path", "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.1:1.0-port0", "ttyUSB0")
	b := f.usbDevice("1-1.2", "0403", "6001", "B2", "FTDI", "FT232R USB UART")
	f.usbSerial("ttyUSB1", b, 0, "ftdi_sio")
	f.devLink("by-id", "usb-FTDI_FT232R_USB_UART_B2-if00-port0", "ttyUSB1")
	cp := f.usbDevice("1-1.3", "10c4", "ea60", "0001", "Silicon Labs", "CP2102 USB to UART Bridge Controller")
	f.usbSerial("ttyUSB2", cp, 0, "cp210x")
	f.devLink("by-id", "usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0", "ttyUSB2")
	quad := f.usbDevice("1-1.4", "0403", "6011", "FT4X", "FTDI", "Quad RS232-HS")
	for i, name := range []string{"ttyUSB3", "ttyUSB4", "ttyUSB5", "ttyUSB6"} {
		f.usbSerial(name, quad, i, "ftdi_sio")
		f.devLink("by-id", "usb-FTDI_Quad_RS232-HS_FT4X-if0"+string(rune('0'+i))+"-port0", name)
	}
	ch1 := f.usbDevice("1-1.5", "1a86", "7523", "", "", "USB Serial")
	f.usbSerial("ttyUSB7", ch1, 0, "ch341")
	ch2 := f.usbDevice("1-1.6", "1a86", "7523", "", "", "USB Serial")
	f.usbSerial("ttyUSB10", ch2, 0, "ch341")
	uno := f.usbDevice("1-1.7", "2341", "0043", "75735", "Arduino (www.arduino.cc)", "")
	f.acm("ttyACM0", uno, 0)
	f.devLink("by-id", "usb-Arduino__www.arduino.cc__0043_75735-if00", "ttyACM0")
	f.serialBase("ttyS0", "00:00", "4")
	f.serialBase("ttyS1", "00:01", "0")
	f.platform("ttyAMA0", "fe201000.serial")
	for _, v := range []string{"tty0", "tty63", "console", "ptmx"} {
		f.virtual(v)
	}
	return f
}

func TestList(t *testing.T) {
	f := gateway(t)
	dev := func(name string) string { return filepath.Join(f.dev, name) }
	byID := func(link string) []string { return []string{filepath.Join(f.dev, "serial", "by-id", link)} }
	ftdi := func(name, serial, loc, iface string) Info {
		return Info{Path: dev(name), Name: name, VID: "0403", PID: "6001", Serial: serial, Manufacturer: "FTDI", Product: "FT232R USB UART",
			Interface: iface, Location: loc, Driver: "ftdi_sio", ByID: byID("usb-FTDI_FT232R_USB_UART_" + serial + "-if00-port0")}
	}
	quad := func(name, iface string) Info {
		return Info{Path: dev(name), Name: name, VID: "0403", PID: "6011", Serial: "FT4X", Manufacturer: "FTDI", Product: "Quad RS232-HS",
			Interface: iface, Location: "1-1.4", Driver: "ftdi_sio", ByID: byID("usb-FTDI_Quad_RS232-HS_FT4X-if" + iface + "-port0")}
	}
	ch340 := func(name, loc string) Info {
		return Info{Path: dev(name), Name: name, VID: "1a86", PID: "7523", Product: "USB Serial", Interface: "00", Location: loc, Driver: "ch341"}
	}
	usb0 := ftdi("ttyUSB0", "A1", "1-1.1", "00")
	usb0.ByPath = []string{filepath.Join(f.dev, "serial", "by-path", "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.1:1.0-port0")}
	want := []Info{
		{Path: dev("ttyACM0"), Name: "ttyACM0", VID: "2341", PID: "0043", Serial: "75735", Manufacturer: "Arduino (www.arduino.cc)",
			Interface: "00", Location: "1-1.7", Driver: "cdc_acm", ByID: byID("usb-Arduino__www.arduino.cc__0043_75735-if00")},
		{Path: dev("ttyAMA0"), Name: "ttyAMA0", Driver: "uart-pl011"},
		{Path: dev("ttyS0"), Name: "ttyS0", Driver: "serial"},
		usb0,
		ftdi("ttyUSB1", "B2", "1-1.2", "00"),
		{Path: dev("ttyUSB2"), Name: "ttyUSB2", VID: "10c4", PID: "ea60", Serial: "0001", Manufacturer: "Silicon Labs",
			Product: "CP2102 USB to UART Bridge Controller", Interface: "00", Location: "1-1.3", Driver: "cp210x",
			ByID: byID("usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0")},
		quad("ttyUSB3", "00"), quad("ttyUSB4", "01"), quad("ttyUSB5", "02"), quad("ttyUSB6", "03"),
		ch340("ttyUSB7", "1-1.5"),
		ch340("ttyUSB10", "1-1.6"),
	}
	got, err := f.fs().List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("List: %d ports, want %d", len(got), len(want))
	}
	for i := range max(len(got), len(want)) {
		var g, w Info
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("port %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// TestListEdges: the trees a gateway meets besides a healthy one.
func TestListEdges(t *testing.T) {
	tests := []struct {
		name    string
		build   func(f *fakeTree)
		want    []string // names
		wantErr string
	}{
		{
			name:  "only virtual ttys",
			build: func(f *fakeTree) { f.virtual("tty0"); f.virtual("ptmx") },
		},
		{
			name:    "no sysfs",
			build:   func(f *fakeTree) { f.remove(filepath.Join(f.sys, "class")) },
			wantErr: "list serial ports: open ",
		},
		{
			name: "adapter unplugged during the scan: dangling device link left out",
			build: func(f *fakeTree) {
				a := f.usbDevice("1-1", "0403", "6001", "A1", "FTDI", "FT232R USB UART")
				f.usbSerial("ttyUSB0", a, 0, "ftdi_sio")
				b := f.usbDevice("1-2", "0403", "6001", "B2", "FTDI", "FT232R USB UART")
				f.usbSerial("ttyUSB1", b, 0, "ftdi_sio")
				f.remove(filepath.Join(a, "1-1:1.0", "ttyUSB0"))
			},
			want: []string{"ttyUSB1"},
		},
		{
			name: "no /dev/serial links (udev not running)",
			build: func(f *fakeTree) {
				f.remove(filepath.Join(f.dev, "serial"))
				f.serialBase("ttyS0", "00:00", "4")
			},
			want: []string{"ttyS0"},
		},
		{
			name: "numeric order",
			build: func(f *fakeTree) {
				for i, name := range []string{"ttyUSB10", "ttyUSB2", "ttyUSB1"} {
					d := f.usbDevice("1-"+string(rune('1'+i)), "1a86", "7523", "", "", "USB Serial")
					f.usbSerial(name, d, 0, "ch341")
				}
			},
			want: []string{"ttyUSB1", "ttyUSB2", "ttyUSB10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeTree(t)
			tt.build(f)
			ports, err := f.fs().List()
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q...", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range ports {
				names = append(names, p.Name)
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("names = %q, want %q", names, tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	f := gateway(t)
	const connected = "; connected: ttyACM0 2341:0043 (serial 75735), ttyUSB0 0403:6001 (serial A1), ttyUSB1 0403:6001 (serial B2), " +
		"ttyUSB2 10c4:ea60 (serial 0001), ttyUSB3 0403:6011 (serial FT4X, interface 00), ttyUSB4 0403:6011 (serial FT4X, interface 01), " +
		"ttyUSB5 0403:6011 (serial FT4X, interface 02), ttyUSB6 0403:6011 (serial FT4X, interface 03), ttyUSB7 1a86:7523, ttyUSB10 1a86:7523"
	tests := []struct {
		name        string
		usb, serial string
		iface       int // for ResolveInterface; -1: Resolve
		want        string
		wantErr     string
		kind        error
	}{
		{name: "by serial", usb: "0403:6001", serial: "A1", iface: -1, want: "ttyUSB0"},
		{name: "twin by serial", usb: "0403:6001", serial: "B2", iface: -1, want: "ttyUSB1"},
		{name: "unique vid:pid, upper case", usb: "10C4:EA60", iface: -1, want: "ttyUSB2"},
		{name: "unique vid:pid with its serial", usb: "10c4:ea60", serial: "0001", iface: -1, want: "ttyUSB2"},
		{name: "cdc_acm", usb: "2341:0043", iface: -1, want: "ttyACM0"},
		{
			name: "twins without serial", usb: "0403:6001", iface: -1, kind: ErrAmbiguous,
			wantErr: "2 serial ports with USB id 0403:6001: ttyUSB0 (serial A1), ttyUSB1 (serial B2); set usb_serial",
		},
		{
			name: "wrong serial", usb: "0403:6001", serial: "A9XYZ", iface: -1, kind: ErrNotFound,
			wantErr: "no serial port with USB id 0403:6001 (serial A9XYZ)" + connected,
		},
		{
			name: "not plugged in", usb: "067b:2303", iface: -1, kind: ErrNotFound,
			wantErr: "no serial port with USB id 067b:2303" + connected,
		},
		{
			name: "multi-port device", usb: "0403:6011", iface: -1, kind: ErrAmbiguous,
			wantErr: "USB device 0403:6011 (serial FT4X) has 4 serial ports: ttyUSB3 (interface 00), ttyUSB4 (interface 01), ttyUSB5 (interface 02), ttyUSB6 (interface 03); " +
				"usb and usb_serial cannot choose among them: name the port by its /dev/serial/by-id/ link, which ends in the interface (-if01...)",
		},
		{
			name: "multi-port device with serial", usb: "0403:6011", serial: "FT4X", iface: -1, kind: ErrAmbiguous,
			wantErr: "USB device 0403:6011 (serial FT4X) has 4 serial ports: ttyUSB3 (interface 00), ttyUSB4 (interface 01), ttyUSB5 (interface 02), ttyUSB6 (interface 03); " +
				"usb and usb_serial cannot choose among them: name the port by its /dev/serial/by-id/ link, which ends in the interface (-if01...)",
		},
		{name: "multi-port device by interface", usb: "0403:6011", serial: "FT4X", iface: 2, want: "ttyUSB5"},
		{name: "multi-port device by interface, no serial", usb: "0403:6011", iface: 3, want: "ttyUSB6"},
		{
			name: "no such interface", usb: "0403:6011", serial: "FT4X", iface: 7, kind: ErrNotFound,
			wantErr: "no serial port with USB id 0403:6011 (serial FT4X, interface 07)" + connected,
		},
		{
			name: "twins without serial numbers", usb: "1a86:7523", iface: -1, kind: ErrAmbiguous,
			wantErr: "2 serial ports with USB id 1a86:7523: ttyUSB7 (no serial number), ttyUSB10 (no serial number); set usb_serial where it tells them apart; " +
				"an adapter without a serial number of its own can only be named by its /dev/serial/by-path/ link (fixed to the USB socket)",
		},
		{name: "not a USB id", usb: "0403-6001", iface: -1, wantErr: `"0403-6001" is not a USB id "vid:pid" of 4 hex digits each, e.g. "0403:6001"`},
		{name: "empty USB id", usb: "", serial: "A1", iface: -1, wantErr: `"" is not a USB id "vid:pid" of 4 hex digits each, e.g. "0403:6001"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			var err error
			if tt.iface < 0 {
				got, err = f.fs().Resolve(tt.usb, tt.serial)
			} else {
				got, err = f.fs().ResolveInterface(tt.usb, tt.serial, tt.iface)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Resolve(%q, %q) = %q, %v;\nwant error %s", tt.usb, tt.serial, got, err, tt.wantErr)
				}
				for _, k := range []error{ErrNotFound, ErrAmbiguous} {
					if errors.Is(err, k) != (k == tt.kind) {
						t.Errorf("errors.Is(err, %v) = %t", k, !(k == tt.kind))
					}
				}
				return
			}
			if want := filepath.Join(f.dev, tt.want); err != nil || got != want {
				t.Fatalf("Resolve(%q, %q) = %q, %v; want %q", tt.usb, tt.serial, got, err, want)
			}
		})
	}
}

// TestResolveAmbiguousMixes: lists of ports Resolve cannot choose from,
// besides the ones of TestResolve.
func TestResolveAmbiguousMixes(t *testing.T) {
	ftdi := func(name, serial, loc, iface string) Info {
		return Info{Name: name, Path: "/dev/" + name, VID: "0403", PID: "6011", Serial: serial, Location: loc, Interface: iface}
	}
	tests := []struct {
		name    string
		ports   []Info
		serial  string
		wantErr string
	}{
		{
			name:   "two quad devices",
			ports:  []Info{ftdi("ttyUSB0", "Q1", "1-1", "00"), ftdi("ttyUSB1", "Q1", "1-1", "01"), ftdi("ttyUSB2", "Q2", "1-2", "00"), ftdi("ttyUSB3", "Q2", "1-2", "01")},
			serial: "",
			wantErr: "4 serial ports with USB id 0403:6011: ttyUSB0 (serial Q1, interface 00), ttyUSB1 (serial Q1, interface 01), " +
				"ttyUSB2 (serial Q2, interface 00), ttyUSB3 (serial Q2, interface 01); set usb_serial",
		},
		{
			name:   "clones sharing a serial number",
			ports:  []Info{ftdi("ttyUSB0", "12345678", "1-1", "00"), ftdi("ttyUSB1", "12345678", "1-2", "00")},
			serial: "12345678",
			wantErr: "2 serial ports with USB id 0403:6011 and serial 12345678: ttyUSB0 (serial 12345678), ttyUSB1 (serial 12345678); " +
				"the adapters have the same serial number: name the port by its /dev/serial/by-path/ link (fixed to the USB socket) instead",
		},
		{
			name:   "clones sharing a serial number, none given",
			ports:  []Info{ftdi("ttyUSB0", "12345678", "1-1", "00"), ftdi("ttyUSB1", "12345678", "1-2", "00"), ftdi("ttyUSB2", "", "1-3", "00")},
			serial: "",
			wantErr: "3 serial ports with USB id 0403:6011: ttyUSB0 (serial 12345678), ttyUSB1 (serial 12345678), ttyUSB2 (no serial number); " +
				"set usb_serial where it tells them apart; an adapter without a serial number of its own can only be named by its /dev/serial/by-path/ link (fixed to the USB socket)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pick(tt.ports, "0403", "6011", tt.serial, -1)
			if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("err = %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}

// TestResolveReenumeration: the configuration names adapters by USB
// identity; between calls they come back under other names (a reboot, a
// replug into another socket) and Resolve follows them.
func TestResolveReenumeration(t *testing.T) {
	f := newFakeTree(t)
	type plug struct{ tty, loc, serial string }
	steps := []struct {
		name  string
		plugs []plug
		want  map[string]string // serial -> tty, "" for not found
	}{
		{
			name:  "first boot",
			plugs: []plug{{"ttyUSB0", "1-1.1", "A1"}, {"ttyUSB1", "1-1.2", "B2"}},
			want:  map[string]string{"A1": "ttyUSB0", "B2": "ttyUSB1"},
		},
		{
			name:  "reboot: enumerated the other way round",
			plugs: []plug{{"ttyUSB1", "1-1.1", "A1"}, {"ttyUSB0", "1-1.2", "B2"}},
			want:  map[string]string{"A1": "ttyUSB1", "B2": "ttyUSB0"},
		},
		{
			name:  "B2 unplugged",
			plugs: []plug{{"ttyUSB1", "1-1.1", "A1"}},
			want:  map[string]string{"A1": "ttyUSB1", "B2": ""},
		},
		{
			name:  "A1 moved to another socket, B2 back",
			plugs: []plug{{"ttyUSB0", "1-1.2", "B2"}, {"ttyUSB2", "1-1.3", "A1"}},
			want:  map[string]string{"A1": "ttyUSB2", "B2": "ttyUSB0"},
		},
	}
	for _, st := range steps {
		// Unplug everything, then plug this step's adapters.
		f.remove(filepath.Join(f.sys, "devices"))
		f.remove(filepath.Join(f.sys, "class", "tty"))
		f.mkdir(f.sys, "class", "tty")
		for _, p := range st.plugs {
			d := f.usbDevice(p.loc, "0403", "6001", p.serial, "FTDI", "FT232R USB UART")
			f.usbSerial(p.tty, d, 0, "ftdi_sio")
		}
		for serial, want := range st.want {
			got, err := f.fs().Resolve("0403:6001", serial)
			if want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("%s: Resolve(%s) = %q, %v; want ErrNotFound", st.name, serial, got, err)
				}
				continue
			}
			if want = filepath.Join(f.dev, want); err != nil || got != want {
				t.Errorf("%s: Resolve(%s) = %q, %v; want %q", st.name, serial, got, err, want)
			}
		}
	}
}

func TestResolveNothingConnected(t *testing.T) {
	f := newFakeTree(t)
	f.serialBase("ttyS0", "00:00", "4")
	_, err := f.fs().Resolve("0403:6001", "A9XYZ")
	const want = "no serial port with USB id 0403:6001 (serial A9XYZ); no USB serial adapter is connected"
	if err == nil || err.Error() != want || !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestSelector(t *testing.T) {
	f := gateway(t)
	ports, err := f.fs().List()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		usb, serial string
		ok          bool
	}{
		{name: "ttyACM0", usb: "2341:0043", ok: true},
		{name: "ttyAMA0"},
		{name: "ttyS0"},
		{name: "ttyUSB0", usb: "0403:6001", serial: "A1", ok: true},
		{name: "ttyUSB1", usb: "0403:6001", serial: "B2", ok: true},
		{name: "ttyUSB2", usb: "10c4:ea60", ok: true},
		{name: "ttyUSB3"}, {name: "ttyUSB4"}, {name: "ttyUSB5"}, {name: "ttyUSB6"},
		{name: "ttyUSB7"}, {name: "ttyUSB10"},
	}
	if len(tests) != len(ports) {
		t.Fatalf("%d ports, %d cases", len(ports), len(tests))
	}
	for i, tt := range tests {
		p := ports[i]
		if p.Name != tt.name {
			t.Fatalf("port %d is %s, want %s", i, p.Name, tt.name)
		}
		usb, serial, ok := Selector(ports, p)
		if usb != tt.usb || serial != tt.serial || ok != tt.ok {
			t.Errorf("Selector(%s) = %q, %q, %t; want %q, %q, %t", p.Name, usb, serial, ok, tt.usb, tt.serial, tt.ok)
			continue
		}
		if ok { // and Resolve agrees
			if got, err := f.fs().Resolve(usb, serial); err != nil || got != p.Path {
				t.Errorf("Resolve(%q, %q) = %q, %v; want %q", usb, serial, got, err, p.Path)
			}
		}
	}
}

func TestParseUSB(t *testing.T) {
	tests := []struct {
		in       string
		vid, pid string
		ok       bool
	}{
		{"0403:6001", "0403", "6001", true},
		{"10C4:EA60", "10c4", "ea60", true},
		{"1a86:7523", "1a86", "7523", true},
		{"FfFf:0000", "ffff", "0000", true},
		{"", "", "", false},
		{":", "", "", false},
		{"0403", "", "", false},
		{"0403:", "", "", false},
		{"403:6001", "", "", false},
		{"00403:6001", "", "", false},
		{"0403:6001:01", "", "", false},
		{"0403-6001", "", "", false},
		{" 0403:6001", "", "", false},
		{"0x03:6001", "", "", false},
		{"+403:6001", "", "", false},
		{"04_3:6001", "", "", false},
		{"040g:6001", "", "", false},
		{"0403:６001", "", "", false},
	}
	for _, tt := range tests {
		vid, pid, err := ParseUSB(tt.in)
		if vid != tt.vid || pid != tt.pid || (err == nil) != tt.ok {
			t.Errorf("ParseUSB(%q) = %q, %q, %v; want %q, %q, ok %t", tt.in, vid, pid, err, tt.vid, tt.pid, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), `is not a USB id "vid:pid" of 4 hex digits each`) {
			t.Errorf("ParseUSB(%q): error %q", tt.in, err)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"/dev/ttyUSB2", "/dev/ttyUSB10", -1},
		{"/dev/ttyUSB10", "/dev/ttyUSB2", 1},
		{"/dev/ttyUSB1", "/dev/ttyUSB1", 0},
		{"/dev/ttyACM0", "/dev/ttyUSB0", -1},
		{"/dev/ttyS9", "/dev/ttyS10", -1},
		{"/dev/ttyS", "/dev/ttyS0", -1},
		{"a01", "a1", 1},
		{"a1b", "a1a", 1},
		{"", "", 0},
	}
	sign := func(n int) int { return min(max(n, -1), 1) }
	for _, tt := range tests {
		if got := sign(naturalCompare(tt.a, tt.b)); got != tt.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestListSystem lists this machine's ports: whatever they are, they are
// under /dev and are not virtual consoles.
func TestListSystem(t *testing.T) {
	if _, err := os.Stat("/sys/class/tty"); err != nil {
		t.Skip("no /sys/class/tty:", err)
	}
	ports, err := FS{}.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p.Path != "/dev/"+p.Name || strings.HasPrefix(p.Name, "pty") || p.Name == "tty0" || p.Name == "console" {
			t.Errorf("unexpected port %+v", p)
		}
		if (p.VID == "") != (p.PID == "") || (p.VID == "") != (p.Location == "") {
			t.Errorf("partial USB identity %+v", p)
		}
	}
	t.Logf("%d ports: %+v", len(ports), ports)
}
