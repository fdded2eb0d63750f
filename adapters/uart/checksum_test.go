package uart

import (
	"bytes"
	"errors"
	"testing"

	"github.com/causeway/causeway/adapters/modbus/wire"
)

// checksumKinds are the kinds of the [[uart]] checksum key.
func checksumKinds() []string {
	return []string{"none", "nmea", "crc16-modbus", "crc8", "sum8", "xor8"}
}

// TestChecksumCheckValues checks each algorithm against its check value: the
// checksum of "123456789" (from the CRC catalogue for the CRCs).
func TestChecksumCheckValues(t *testing.T) {
	check := []byte("123456789")
	if got := wire.CRC16(check); got != 0x4B37 {
		t.Errorf("CRC-16/MODBUS = 0x%04X, want 0x4B37", got)
	}
	if got := crc8SMBus(check); got != 0xF4 {
		t.Errorf("CRC-8/SMBUS = 0x%02X, want 0xF4", got)
	}
	if got := checksumSum8(check); got != 0xDD {
		t.Errorf("sum8 = 0x%02X, want 0xDD", got)
	}
	if got := checksumXOR8(check); got != 0x31 {
		t.Errorf("xor8 = 0x%02X, want 0x31", got)
	}
	if got := wire.CRC16(nil); got != 0xFFFF {
		t.Errorf("CRC-16/MODBUS of nothing = 0x%04X, want the init value 0xFFFF", got)
	}
}

func TestChecksumVerify(t *testing.T) {
	const gga = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
	cases := []struct {
		kind, frame string
		payload     string // when err is ""
		err         string
		sentinel    error
	}{
		{"none", "anything", "anything", "", nil},
		{"none", "", "", "", nil},

		{"nmea", "$" + gga + "*47", gga, "", nil},
		{"nmea", "$" + gga + "*47\r\n", gga, "", nil},
		{"nmea", "$" + gga + "*47 \t", gga, "", nil},
		{"nmea", "!AIVDM,1,1,,B,177KQJ5000G?tO`K>RA1wUbN0TKH,0*5C", "AIVDM,1,1,,B,177KQJ5000G?tO`K>RA1wUbN0TKH,0", "", nil},
		{"nmea", "$GPGLL,4916.45,N,12311.12,W,225444,A*31", "GPGLL,4916.45,N,12311.12,W,225444,A", "", nil},
		{"nmea", "$PX*08", "PX", "", nil},
		{"nmea", "$PX*0a", "", "bad checksum: nmea 0x08, frame says 0x0A", ErrChecksum},
		{"nmea", "$HCHDG,98.3,0.0,E,12.6,W*57", "HCHDG,98.3,0.0,E,12.6,W", "", nil},
		{"nmea", "$hchdg,98.3,0.0,E,12.6,W*57", "", "bad checksum: nmea 0x77, frame says 0x57", ErrChecksum},
		{"nmea", "$*00", "", "", nil},
		{"nmea", "$" + gga + "*48", "", "bad checksum: nmea 0x47, frame says 0x48", ErrChecksum},
		{"nmea", "$" + gga, "", "no checksum: nmea sentence does not end with *hh", ErrNoChecksum},
		{"nmea", "$" + gga + "*4", "", "no checksum: nmea sentence does not end with *hh", ErrNoChecksum},
		{"nmea", "$" + gga + "*4G", "", `no checksum: nmea sentence ends with "*4G", not *hh`, ErrNoChecksum},
		{"nmea", gga + "*47", "", "no checksum: nmea sentence does not start with '$' or '!'", ErrNoChecksum},
		{"nmea", " $" + gga + "*47", "", "no checksum: nmea sentence does not start with '$' or '!'", ErrNoChecksum},
		{"nmea", "", "", "no checksum: nmea sentence does not start with '$' or '!'", ErrNoChecksum},
		{"nmea", "$*0", "", "no checksum: nmea sentence does not end with *hh", ErrNoChecksum},
		{"nmea", "*00", "", "no checksum: nmea sentence does not start with '$' or '!'", ErrNoChecksum},

		// A Modbus RTU request: read 1 holding register at 0 from unit 1.
		{"crc16-modbus", "\x01\x03\x00\x00\x00\x01\x84\x0A", "\x01\x03\x00\x00\x00\x01", "", nil},
		{"crc16-modbus", "123456789\x37\x4B", "123456789", "", nil},
		{"crc16-modbus", "123456789\x4B\x37", "", "bad checksum: crc16-modbus 0x4B37, frame says 0x374B", ErrChecksum},
		{"crc16-modbus", "\xFF\xFF", "", "", nil},
		{"crc16-modbus", "\xFF", "", "no checksum: crc16-modbus needs 2 bytes, frame has 1", ErrNoChecksum},
		{"crc16-modbus", "", "", "no checksum: crc16-modbus needs 2 bytes, frame has 0", ErrNoChecksum},

		{"crc8", "123456789\xF4", "123456789", "", nil},
		{"crc8", "123456789\xF5", "", "bad checksum: crc8 0xF4, frame says 0xF5", ErrChecksum},
		{"crc8", "\x00", "", "", nil},
		{"crc8", "", "", "no checksum: crc8 needs 1 bytes, frame has 0", ErrNoChecksum},

		{"sum8", "123456789\xDD", "123456789", "", nil},
		{"sum8", "\xFF\x02\x01", "\xFF\x02", "", nil},
		{"sum8", "123456789\x00", "", "bad checksum: sum8 0xDD, frame says 0x00", ErrChecksum},
		{"sum8", "", "", "no checksum: sum8 needs 1 bytes, frame has 0", ErrNoChecksum},

		{"xor8", "123456789\x31", "123456789", "", nil},
		{"xor8", "123456789\x13", "", "bad checksum: xor8 0x31, frame says 0x13", ErrChecksum},
		{"xor8", "", "", "no checksum: xor8 needs 1 bytes, frame has 0", ErrNoChecksum},
	}
	for _, tc := range cases {
		check, err := NewChecksum(tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		frame := []byte(tc.frame)
		payload, err := check(frame)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s %q: %v", tc.kind, tc.frame, err)
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%s %q: error %v, want %q", tc.kind, tc.frame, err, tc.err)
		case tc.err != "" && !errors.Is(err, tc.sentinel):
			t.Errorf("%s %q: error %v does not wrap %v", tc.kind, tc.frame, err, tc.sentinel)
		case tc.err == "" && string(payload) != tc.payload:
			t.Errorf("%s %q: payload %q, want %q", tc.kind, tc.frame, payload, tc.payload)
		case tc.err == "" && cap(payload) != len(payload):
			t.Errorf("%s %q: payload capacity %d, length %d", tc.kind, tc.frame, cap(payload), len(payload))
		}
		if string(frame) != tc.frame {
			t.Errorf("%s %q: frame modified to %q", tc.kind, tc.frame, frame)
		}
	}
}

func TestAppendChecksum(t *testing.T) {
	cases := []struct{ kind, payload, want string }{
		{"none", "abc", "abc"},
		{"nmea", "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"},
		{"nmea", "PX", "$PX*08"},
		{"nmea", "", "$*00"},
		{"crc16-modbus", "\x01\x03\x00\x00\x00\x01", "\x01\x03\x00\x00\x00\x01\x84\x0A"},
		{"crc16-modbus", "123456789", "123456789\x37\x4B"},
		{"crc8", "123456789", "123456789\xF4"},
		{"sum8", "123456789", "123456789\xDD"},
		{"xor8", "123456789", "123456789\x31"},
	}
	for _, tc := range cases {
		payload := []byte(tc.payload)
		got, err := AppendChecksum(tc.kind, payload[:len(payload):len(payload)])
		if err != nil || string(got) != tc.want {
			t.Errorf("AppendChecksum(%s, %q) = %q, %v; want %q", tc.kind, tc.payload, got, err, tc.want)
		}
		if string(payload) != tc.payload {
			t.Errorf("AppendChecksum(%s) modified its payload", tc.kind)
		}
	}
	// The result never shares memory with the payload.
	payload := make([]byte, 3, 100)
	for _, kind := range checksumKinds() {
		got, err := AppendChecksum(kind, payload)
		if err != nil {
			t.Fatal(err)
		}
		if &got[0] == &payload[:1][0] {
			t.Errorf("AppendChecksum(%s) appended in place", kind)
		}
	}
}

func TestChecksumRoundTrip(t *testing.T) {
	payloads := [][]byte{nil, {0}, []byte("a"), []byte("T=21.5;H=40"), bytes.Repeat([]byte{0xFF, 0x00, '*', '$'}, 64)}
	for _, kind := range checksumKinds() {
		check, err := NewChecksum(kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range payloads {
			frame, err := AppendChecksum(kind, p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := check(frame)
			if err != nil || !bytes.Equal(got, p) {
				t.Errorf("%s: %q → %q → %q, %v", kind, p, frame, got, err)
			}
			if kind == "none" || len(frame) == 0 {
				continue
			}
			// Any single-bit error is caught (except in NMEA's "$").
			for i := range frame {
				if kind == "nmea" && i == 0 {
					continue
				}
				for bit := range 8 {
					bad := bytes.Clone(frame)
					bad[i] ^= 1 << bit
					if got, err := check(bad); err == nil {
						// NMEA: flipping the case of a hex digit, or making
						// trailing whitespace of it, is no error.
						if kind == "nmea" && i >= len(frame)-2 && bytes.EqualFold(bad, frame) {
							continue
						}
						t.Errorf("%s: corrupted frame %q accepted as %q", kind, bad, got)
					}
				}
			}
		}
	}
}

func TestNewChecksumErrors(t *testing.T) {
	for _, kind := range []string{"", "NMEA", "crc16", "crc32"} {
		if c, err := NewChecksum(kind); err == nil || c != nil {
			t.Errorf("NewChecksum(%q) = %v, %v; want an error", kind, c, err)
		}
		if f, err := AppendChecksum(kind, []byte("x")); err == nil || f != nil {
			t.Errorf("AppendChecksum(%q) = %q, %v; want an error", kind, f, err)
		}
	}
}

func TestChecksumNoAllocs(t *testing.T) {
	for _, kind := range checksumKinds() {
		check, _ := NewChecksum(kind)
		frame, _ := AppendChecksum(kind, []byte("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
		if a := testing.AllocsPerRun(100, func() {
			if _, err := check(frame); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: %v allocations per good frame", kind, a)
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 16)
	for _, kind := range checksumKinds() {
		b.Run(kind, func(b *testing.B) {
			check, _ := NewChecksum(kind)
			frame, _ := AppendChecksum(kind, payload)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := check(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
