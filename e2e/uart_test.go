package e2e

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// Independent encoders for the far end of the line (not the gateway's code).

func xor8(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

func sum8(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

func crc8(b []byte) byte { // CRC-8/SMBUS: poly 0x07, init 0
	var c byte
	for _, x := range b {
		c ^= x
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
	}
	return c
}

func crc16(b []byte) uint16 { // CRC-16/MODBUS
	c := uint16(0xFFFF)
	for _, x := range b {
		c ^= uint16(x)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
	}
	return c
}

func nmea(s string) string { return fmt.Sprintf("$%s*%02X", s, xor8([]byte(s))) }

func slipEncode(p []byte) []byte {
	out := []byte{0xC0}
	for _, c := range p {
		switch c {
		case 0xC0:
			out = append(out, 0xDB, 0xDC)
		case 0xDB:
			out = append(out, 0xDB, 0xDD)
		default:
			out = append(out, c)
		}
	}
	return append(out, 0xC0)
}

func cobsEncode(p []byte) []byte {
	out := []byte{0}
	code, ci := byte(1), 0
	for _, c := range p {
		if c == 0 {
			out[ci] = code
			code, ci = 1, len(out)
			out = append(out, 0)
			continue
		}
		out = append(out, c)
		code++
		if code == 0xFF {
			out[ci] = code
			code, ci = 1, len(out)
			out = append(out, 0)
		}
	}
	out[ci] = code
	return append(out, 0)
}

// openPeer opens the far end of the pty pair (the sensor's side).
func openPeer(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func uartConfig(brokerPort int, block string) string {
	return modbusConfig(brokerPort, block) // the same gateway, another adapter block
}

type uartCase struct {
	name  string
	block string            // [[uart]] keys after port
	wire  func() [][]byte   // chunks to write: valid frames, garbage, truncated frames
	want  map[string]string // topic -> expected points (k=v, sorted by key) of each valid frame, in order
	count int               // valid frames written
	bad   string            // a log line that must appear (garbage counted), "" for none
}

// Each framing, checksum and parser, end to end from bytes written on the
// far end of a pty pair to messages on MQTT, with garbage and truncated
// frames between valid ones.
func TestUARTFramingsChecksumsParsers(t *testing.T) {
	le16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	cases := []uartCase{
		{
			name:  "line regex none",
			block: "framing = \"line\"\ndelimiter = \"\\r\\n\"\nparser = \"regex\"\npattern = '^(?P<device>\\w+) T=(?P<temperature>-?[\\d.]+) H=(?P<humidity>\\d+)$'\n",
			wire: func() [][]byte {
				return [][]byte{[]byte("kitchen T=21.5 H=40\r\n"), []byte("garbage line\r\n"), []byte("kitchen T=-3 H=41\r\n"), []byte("kitch"), []byte("en T=22 H=42\r\n")}
			},
			want:  map[string]string{"gw-test/uart/kitchen": "humidity=40 temperature=21.5|humidity=41 temperature=-3|humidity=42 temperature=22"},
			count: 3, bad: "cannot parse",
		},
		{
			name:  "line nmea csv",
			block: "framing = \"line\"\nchecksum = \"nmea\"\nparser = \"csv\"\ncolumns = [\"kind\", \"temperature\", \"humidity\"]\ndevice = \"weather\"\n",
			wire: func() [][]byte {
				good := nmea("WIXDR,19.5,61")
				bad := good[:len(good)-2] + "00" // wrong checksum
				return [][]byte{[]byte(good + "\r\n"), []byte(bad + "\r\n"), []byte(nmea("WIXDR,20,60") + "\n")}
			},
			want:  map[string]string{"gw-test/uart/weather": "humidity=61 kind=WIXDR temperature=19.5|humidity=60 kind=WIXDR temperature=20"},
			count: 2, bad: "bad checksum",
		},
		{
			name:  "delimiter kv sum8",
			block: "framing = \"delimiter\"\ndelimiter = \"\\u0003\"\nchecksum = \"sum8\"\nparser = \"kv\"\n",
			wire: func() [][]byte {
				f := func(s string) []byte { return append(append([]byte(s), sum8([]byte(s))), 3) }
				return [][]byte{f("device=attic T=18.25 door=open"), []byte("\x01\x02junk\x03"), f("device=attic T=18.5 door=closed")}
			},
			want:  map[string]string{"gw-test/uart/attic": "T=18.25 door=open|T=18.5 door=closed"},
			count: 2, bad: "bad checksum",
		},
		{
			name: "length binary crc16",
			block: "framing = \"length\"\nlength_offset = 1\nlength_size = 2\nlength_order = \"big\"\nchecksum = \"crc16-modbus\"\nparser = \"binary\"\ndevice = \"meter\"\n" +
				"[[uart.field]]\nname = \"temperature\"\noffset = 3\ntype = \"int16\"\nscale = 0.01\n" +
				"[[uart.field]]\nname = \"energy\"\noffset = 5\ntype = \"uint32\"\norder = \"little\"\n",
			wire: func() [][]byte {
				f := func(temp int16, energy uint32) []byte {
					body := binary.BigEndian.AppendUint16(nil, uint16(temp))
					body = binary.LittleEndian.AppendUint32(body, energy)
					fr := append([]byte{0xAA}, binary.BigEndian.AppendUint16(nil, uint16(len(body)+2))...)
					fr = append(fr, body...)
					return append(fr, le16(crc16(fr))...)
				}
				good1, good2 := f(2150, 123456), f(-125, 7)
				bad := append([]byte(nil), good1...)
				bad[4] ^= 0xFF
				return [][]byte{good1, bad, good2}
			},
			want:  map[string]string{"gw-test/uart/meter": "energy=123456 temperature=21.5|energy=7 temperature=-1.25"},
			count: 2, bad: "bad checksum",
		},
		{
			name:  "slip json crc8",
			block: "framing = \"slip\"\nchecksum = \"crc8\"\nparser = \"json\"\n",
			wire: func() [][]byte {
				f := func(s string) []byte { return slipEncode(append([]byte(s), crc8([]byte(s)))) }
				return [][]byte{f(`{"device":"pump","rpm":1450,"on":true}`), {0xDB, 0x01, 0xC0}, f(`{"device":"pump","rpm":0,"on":false}`)}
			},
			want:  map[string]string{"gw-test/uart/pump": "on=true rpm=1450|on=false rpm=0"},
			count: 2,
		},
		{
			name: "cobs binary xor8",
			block: "framing = \"cobs\"\nchecksum = \"xor8\"\nparser = \"binary\"\ndevice = \"probe\"\n" +
				"[[uart.field]]\nname = \"level\"\noffset = 0\ntype = \"float32\"\norder = \"little\"\n" +
				"[[uart.field]]\nname = \"alarm\"\noffset = 4\ntype = \"bool\"\n",
			wire: func() [][]byte {
				f := func(level float32, alarm byte) []byte {
					p := binary.LittleEndian.AppendUint32(nil, math.Float32bits(level))
					p = append(p, alarm)
					return cobsEncode(append(p, xor8(p)))
				}
				return [][]byte{f(0.75, 0), []byte{0x05, 0xFF, 0x00}, f(-2.5, 1)}
			},
			want:  map[string]string{"gw-test/uart/probe": "alarm=false level=0.75|alarm=true level=-2.5"},
			count: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pty := testpeer.StartPTYPair(t)
			p := freePorts(t)
			g := startGateway(t, uartConfig(p.broker, fmt.Sprintf("[[uart]]\nport = %q\n%s", pty.A, c.block)))
			sub := testpeer.Subscribe(t, p.broker, "gw-test/uart/+")
			peer := openPeer(t, pty.B)
			for _, chunk := range c.wire() {
				if _, err := peer.Write(chunk); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			for topic, want := range c.want {
				frames := strings.Split(want, "|")
				for i, w := range frames {
					m := sub.WaitFor(t, topic, 5*time.Second)
					if got := pointsKV(t, m.Payload); got != w {
						t.Fatalf("%s frame %d: %s, want %s (payload %s)", topic, i, got, w, m.Payload)
					}
				}
			}
			if extra := sub.Drain(300 * time.Millisecond); len(extra) > 0 {
				t.Fatalf("unexpected messages: %v", extra)
			}
			if c.bad != "" && !strings.Contains(g.Log(), c.bad) {
				t.Fatalf("no %q in the log:\n%s", c.bad, g.Log())
			}
		})
	}
}

// pointsKV renders a default-route payload's points as sorted k=v pairs.
func pointsKV(t *testing.T, payload string) string {
	t.Helper()
	m := decodeFrame(t, payload)
	delete(m, "time")
	if e := errorsOf(m); e != nil {
		t.Fatalf("payload %s has errors", payload)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", k, m[k])
	}
	return b.String()
}

// Unplugging the adapter (the pty pair torn down) makes the device offline;
// plugging it back in (the pair recreated) brings it online and frames flow
// again, without a restart. Commands write the template to the port.
func TestUARTUnplugReplugAndCommands(t *testing.T) {
	pty := testpeer.StartPTYPair(t)
	p := freePorts(t)
	block := fmt.Sprintf("[[uart]]\nport = %q\ndevice = \"sensor\"\npattern = '^t=(?P<t>\\d+)$'\nwrite = \"SET {point}={value}\\r\\n\"\n", pty.A)
	startGateway(t, uartConfig(p.broker, block))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/uart/#")
	waitMsg(t, sub, "gw-test/uart/sensor/availability", 10*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })
	peer := openPeer(t, pty.B)
	if _, err := peer.Write([]byte("t=1\n")); err != nil {
		t.Fatal(err)
	}
	sub.WaitFor(t, "gw-test/uart/sensor", 5*time.Second)

	// A command is written to the port.
	out, err := exec.Command(testpeer.Bin(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.broker), "-t", "gw-test/uart/sensor/relay/set", "-m", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	if r := decodeFrame(t, sub.WaitFor(t, "gw-test/uart/sensor/set/result", 5*time.Second).Payload); r["ok"] != true {
		t.Fatalf("command result %v", r)
	}
	buf := make([]byte, 64)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := peer.Read(buf)
	if err != nil || string(buf[:n]) != "SET relay=1\r\n" {
		t.Fatalf("the sensor read %q (%v), want %q", buf[:n], err, "SET relay=1\r\n")
	}

	// Unplug.
	peer.Close()
	pty.Stop()
	waitMsg(t, sub, "gw-test/uart/sensor/availability", 10*time.Second, func(m testpeer.Message) bool { return m.Payload == "offline" })
	// Plug back in: the gateway finds the port again by itself.
	pty.Start()
	waitMsg(t, sub, "gw-test/uart/sensor/availability", 20*time.Second, func(m testpeer.Message) bool { return m.Payload == "online" })
	peer = openPeer(t, pty.B)
	if _, err := peer.Write([]byte("t=2\n")); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, sub, "gw-test/uart/sensor", 5*time.Second, func(m testpeer.Message) bool {
		return fmt.Sprint(decodeFrame(t, m.Payload)["t"]) == "2"
	})
}

// Megabytes of garbage without a delimiter: memory stays bounded by
// max_frame, and the next valid frame still arrives.
func TestUARTGarbageKeepsMemoryBounded(t *testing.T) {
	pty := testpeer.StartPTYPair(t)
	p := freePorts(t)
	g := startGateway(t, uartConfig(p.broker, fmt.Sprintf("[[uart]]\nport = %q\ndevice = \"noisy\"\nparser = \"kv\"\nmax_frame = \"1KiB\"\n", pty.A)))
	sub := testpeer.Subscribe(t, p.broker, "gw-test/uart/noisy")
	peer := openPeer(t, pty.B)
	rss0 := vmRSS(t, g.cmd.Process.Pid)
	junk := []byte(strings.Repeat("x", 64<<10))
	for range 64 { // 4 MiB without a newline
		if _, err := peer.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := peer.Write([]byte("\nv=7\n")); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, sub, "gw-test/uart/noisy", 20*time.Second, func(m testpeer.Message) bool {
		return fmt.Sprint(decodeFrame(t, m.Payload)["v"]) == "7"
	})
	rss1 := vmRSS(t, g.cmd.Process.Pid)
	t.Logf("RSS %d KiB before, %d KiB after 4 MiB of garbage", rss0, rss1)
	if rss1-rss0 > 8<<10 {
		t.Fatalf("RSS grew by %d KiB on 4 MiB of garbage with max_frame 1KiB", rss1-rss0)
	}
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
