package uart

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/causeway/causeway/adapters/modbus/wire"
)

// Checksum verifies and strips a frame's checksum. kind: "none", "nmea",
// "crc16-modbus", "crc8", "sum8", "xor8".
//
// The payload is a sub-slice of frame (no copy), with its capacity cut to
// its length. A frame whose checksum does not match gives an error that wraps
// ErrChecksum; a frame too short to hold a checksum (or an NMEA sentence
// without "*hh") gives one that wraps ErrNoChecksum. Either way the caller
// drops the frame.
type Checksum func(frame []byte) (payload []byte, err error)

// ErrChecksum is wrapped by the error of a frame whose checksum does not
// match, which gives both values in hex:
// "bad checksum: crc16-modbus 0x1234, frame says 0xABCD" (computed first).
var ErrChecksum = errors.New("bad checksum")

// ErrNoChecksum is wrapped by the error of a frame too short to hold its
// checksum, or of an NMEA sentence without "$" or "*hh".
var ErrNoChecksum = errors.New("no checksum")

// NewChecksum returns the Checksum of a kind (the [[uart]] checksum key):
//
//   - "none": the frame is the payload.
//   - "nmea": the frame is an NMEA 0183 sentence "$...*hh" (or "!...*hh"),
//     where hh (two hex digits, either case) is the XOR of the bytes between
//     the '$' or '!' and the '*', both excluded. Whitespace after hh is
//     tolerated. The payload is the sentence without the leading '$' or '!'
//     and without "*hh": "GPGGA,123519,...". Check: the sentence
//     "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47".
//   - "crc16-modbus": the last two bytes, little-endian (low byte first, as
//     on a Modbus RTU line), are the CRC-16/MODBUS of the bytes before them:
//     width 16, poly 0x8005 (0xA001 reflected), init 0xFFFF, refin and
//     refout, xorout 0x0000; catalogue check value ("123456789") 0x4B37.
//   - "crc8": the last byte is the CRC-8/SMBUS of the bytes before it:
//     width 8, poly 0x07, init 0x00, no reflection, xorout 0x00; catalogue
//     check value ("123456789") 0xF4.
//   - "sum8": the last byte is the sum of the bytes before it, modulo 256
//     (not a CRC, so not in the catalogue; "123456789" gives 0xDD).
//   - "xor8": the last byte is the XOR of the bytes before it ("123456789"
//     gives 0x31).
func NewChecksum(kind string) (Checksum, error) {
	switch kind {
	case "none":
		return checkNone, nil
	case "nmea":
		return checkNMEA, nil
	case "crc16-modbus":
		return checkCRC16Modbus, nil
	case "crc8":
		return checkCRC8, nil
	case "sum8":
		return checkSum8, nil
	case "xor8":
		return checkXOR8, nil
	}
	return nil, unknownChecksum(kind)
}

func unknownChecksum(kind string) error {
	return fmt.Errorf("unknown checksum %q (none | nmea | crc16-modbus | crc8 | sum8 | xor8)", kind)
}

// AppendChecksum returns a new frame: payload followed by its checksum of the
// given kind, as NewChecksum(kind) verifies it (for "nmea": "$" + payload +
// "*HH", upper-case hex). payload is not modified. It builds frames for tests
// and for devices that expect checksummed commands.
func AppendChecksum(kind string, payload []byte) ([]byte, error) {
	out := make([]byte, 0, len(payload)+4)
	switch kind {
	case "none":
		return append(out, payload...), nil
	case "nmea":
		const hex = "0123456789ABCDEF"
		x := checksumXOR8(payload)
		out = append(out, '$')
		out = append(out, payload...)
		return append(out, '*', hex[x>>4], hex[x&0x0F]), nil
	case "crc16-modbus":
		c := wire.CRC16(payload)
		return append(append(out, payload...), byte(c), byte(c>>8)), nil
	case "crc8":
		return append(append(out, payload...), crc8SMBus(payload)), nil
	case "sum8":
		return append(append(out, payload...), checksumSum8(payload)), nil
	case "xor8":
		return append(append(out, payload...), checksumXOR8(payload)), nil
	}
	return nil, unknownChecksum(kind)
}

func checkNone(frame []byte) ([]byte, error) { return frame[:len(frame):len(frame)], nil }

func checkNMEA(frame []byte) ([]byte, error) {
	s := bytes.TrimRight(frame, " \t\r\n")
	if len(s) == 0 || s[0] != '$' && s[0] != '!' {
		return nil, fmt.Errorf("%w: nmea sentence does not start with '$' or '!'", ErrNoChecksum)
	}
	n := len(s) - 3 // the '*'
	if n < 1 || s[n] != '*' {
		return nil, fmt.Errorf("%w: nmea sentence does not end with *hh", ErrNoChecksum)
	}
	hi, ok1 := nmeaHexDigit(s[n+1])
	lo, ok2 := nmeaHexDigit(s[n+2])
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: nmea sentence ends with %q, not *hh", ErrNoChecksum, s[n:])
	}
	body := s[1:n:n]
	if want, got := checksumXOR8(body), hi<<4|lo; want != got {
		return nil, fmt.Errorf("%w: nmea 0x%02X, frame says 0x%02X", ErrChecksum, want, got)
	}
	return body, nil
}

func nmeaHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func checkCRC16Modbus(frame []byte) ([]byte, error) {
	n := len(frame) - 2
	if n < 0 {
		return nil, checksumTooShort("crc16-modbus", 2, len(frame))
	}
	body := frame[:n:n]
	want, got := wire.CRC16(body), uint16(frame[n])|uint16(frame[n+1])<<8
	if want != got {
		return nil, fmt.Errorf("%w: crc16-modbus 0x%04X, frame says 0x%04X", ErrChecksum, want, got)
	}
	return body, nil
}

func checkCRC8(frame []byte) ([]byte, error) { return checkTrailer8("crc8", crc8SMBus, frame) }
func checkSum8(frame []byte) ([]byte, error) { return checkTrailer8("sum8", checksumSum8, frame) }
func checkXOR8(frame []byte) ([]byte, error) { return checkTrailer8("xor8", checksumXOR8, frame) }

// checksumTooShort is the error of a frame shorter than its checksum.
func checksumTooShort(kind string, need, got int) error {
	return fmt.Errorf("%w: %s needs %d bytes, frame has %d", ErrNoChecksum, kind, need, got)
}

// checkTrailer8 verifies a checksum held in the last byte of frame.
func checkTrailer8(kind string, sum func([]byte) byte, frame []byte) ([]byte, error) {
	n := len(frame) - 1
	if n < 0 {
		return nil, checksumTooShort(kind, 1, 0)
	}
	body := frame[:n:n]
	if want, got := sum(body), frame[n]; want != got {
		return nil, fmt.Errorf("%w: %s 0x%02X, frame says 0x%02X", ErrChecksum, kind, want, got)
	}
	return body, nil
}

// crc8SMBus is CRC-8/SMBUS: poly 0x07, init 0, no reflection, xorout 0;
// check ("123456789") 0xF4.
func crc8SMBus(p []byte) byte {
	var crc byte
	for _, b := range p {
		crc ^= b
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x07
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// checksumSum8 is the sum of the bytes modulo 256 ("123456789": 0xDD).
func checksumSum8(p []byte) byte {
	var s byte
	for _, b := range p {
		s += b
	}
	return s
}

// checksumXOR8 is the XOR of the bytes ("123456789": 0x31); NMEA's checksum.
func checksumXOR8(p []byte) byte {
	var x byte
	for _, b := range p {
		x ^= b
	}
	return x
}
