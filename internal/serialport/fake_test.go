package serialport

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeTree builds a sysfs and /dev tree like the kernel's and udev's, with
// real directories and symlinks, in a temporary directory.
type fakeTree struct {
	t        *testing.T
	sys, dev string
}

func newFakeTree(t *testing.T) *fakeTree {
	t.Helper()
	root := t.TempDir()
	f := &fakeTree{t: t, sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev")}
	f.mkdir(f.sys, "class", "tty")
	f.mkdir(f.sys, "bus", "usb", "drivers")
	f.mkdir(f.dev, "serial", "by-id")
	f.mkdir(f.dev, "serial", "by-path")
	return f
}

func (f *fakeTree) fs() FS { return FS{SysRoot: f.sys, DevRoot: f.dev} }

func (f *fakeTree) mkdir(elem ...string) string {
	f.t.Helper()
	d := filepath.Join(elem...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fakeTree) write(dir, name, content string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// link makes the symlink at (absolute) path point to target written
// relative to the link's directory, as sysfs and udev do.
func (f *fakeTree) link(path, target string) {
	f.t.Helper()
	rel, err := filepath.Rel(filepath.Dir(path), target)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(rel, path); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeTree) remove(path string) {
	f.t.Helper()
	if err := os.RemoveAll(path); err != nil {
		f.t.Fatal(err)
	}
}

// usbDevice creates the USB device directory for bus location loc
// ("1-1.2") with its descriptor attributes (sysfs ends each with "\n";
// an empty serial means the device has none, so no file) and returns it.
func (f *fakeTree) usbDevice(loc, vid, pid, serial, manufacturer, product string) string {
	d := f.mkdir(f.sys, "devices", "pci0000:00", "0000:00:14.0", "usb1", loc)
	f.write(d, "idVendor", vid+"\n")
	f.write(d, "idProduct", pid+"\n")
	if serial != "" {
		f.write(d, "serial", serial+"\n")
	}
	f.write(d, "manufacturer", manufacturer+"\n")
	f.write(d, "product", product+"\n")
	return d
}

// iface creates interface n of the USB device dir, bound to driver.
func (f *fakeTree) iface(dev string, n int, driver string) string {
	d := f.mkdir(dev, filepath.Base(dev)+":1."+string(rune('0'+n)))
	f.write(d, "bInterfaceNumber", "0"+string(rune('0'+n))+"\n")
	drv := f.mkdir(f.sys, "bus", "usb", "drivers", driver)
	f.link(filepath.Join(d, "driver"), drv)
	return d
}

// tty creates the class device tty under parent (parent/tty/NAME), the
// /sys/class/tty/NAME link to it, its device link to device and the /dev
// node, and returns the class device directory.
func (f *fakeTree) tty(name, parent, device string) string {
	d := f.mkdir(parent, "tty", name)
	f.write(d, "dev", "188:0\n")
	f.link(filepath.Join(d, "device"), device)
	f.link(filepath.Join(f.sys, "class", "tty", name), d)
	f.write(f.dev, name, "")
	return d
}

// usbSerial adds a usb-serial port (ftdi_sio, cp210x, ...): the port
// device ttyUSBn under interface n of dev, whose tty's device is that port.
func (f *fakeTree) usbSerial(name, dev string, n int, driver string) {
	ifc := f.iface(dev, n, driver)
	port := f.mkdir(ifc, name)
	f.link(filepath.Join(port, "driver"), f.mkdir(f.sys, "bus", "usb-serial", "drivers", driver))
	f.tty(name, port, port)
}

// acm adds a cdc_acm port: the tty's device is interface n itself.
func (f *fakeTree) acm(name, dev string, n int) {
	ifc := f.iface(dev, n, "cdc_acm")
	f.tty(name, ifc, ifc)
}

// devLink adds the udev link /dev/serial/<kind>/<link> -> ../../<name>.
func (f *fakeTree) devLink(kind, link, name string) {
	f.link(filepath.Join(f.dev, "serial", kind, link), filepath.Join(f.dev, name))
}

// virtual adds a virtual tty (console, pty): no device link.
func (f *fakeTree) virtual(name string) {
	d := f.mkdir(f.sys, "devices", "virtual", "tty", name)
	f.write(d, "dev", "4:0\n")
	f.link(filepath.Join(f.sys, "class", "tty", name), d)
}

// serialBase adds a ttyS as Linux 6.5+ lays it out (this VM's ttyS0):
// pnp device 00:0n (driver serial) / serial-base ctrl 00:0n:0 / serial-base
// port 00:0n:0.0, the tty's device. typ is its "type" attribute.
func (f *fakeTree) serialBase(name, pnp, typ string) {
	pnpDir := f.mkdir(f.sys, "devices", "pnp0", pnp)
	f.link(filepath.Join(pnpDir, "driver"), f.mkdir(f.sys, "bus", "pnp", "drivers", "serial"))
	ctrl := f.mkdir(pnpDir, pnp+":0")
	port := f.mkdir(ctrl, pnp+":0.0")
	base := f.mkdir(f.sys, "bus", "serial-base")
	f.link(filepath.Join(ctrl, "subsystem"), base)
	f.link(filepath.Join(ctrl, "driver"), f.mkdir(base, "drivers", "ctrl"))
	f.link(filepath.Join(port, "subsystem"), base)
	f.link(filepath.Join(port, "driver"), f.mkdir(base, "drivers", "port"))
	d := f.tty(name, port, port)
	f.write(d, "type", typ+"\n")
}

// platform adds a ttyAMA as older kernels lay out a Raspberry Pi's PL011:
// the tty's device is the platform device, bound to uart-pl011.
func (f *fakeTree) platform(name, devName string) {
	d := f.mkdir(f.sys, "devices", "platform", "soc", devName)
	f.link(filepath.Join(d, "driver"), f.mkdir(f.sys, "bus", "amba", "drivers", "uart-pl011"))
	tty := f.tty(name, d, d)
	f.write(tty, "type", "32\n")
}
