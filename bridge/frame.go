package bridge

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Kind is the type of a point value.
type Kind uint8

// The kinds of value a point can carry.
const (
	KindNone   Kind = iota // no value (a point with bad quality)
	KindNumber             // float64
	KindInt                // int64
	KindBool
	KindString
	KindBytes
)

func (k Kind) String() string {
	switch k {
	case KindNumber:
		return "number"
	case KindInt:
		return "integer"
	case KindBool:
		return "bool"
	case KindString:
		return "string"
	case KindBytes:
		return "bytes"
	}
	return "none"
}

// Value is a typed point value. Only the field selected by Kind is meaningful.
type Value struct {
	Kind  Kind
	Num   float64
	Int   int64
	Bool  bool
	Str   string
	Bytes []byte
}

// Number returns a floating-point value.
func Number(f float64) Value { return Value{Kind: KindNumber, Num: f} }

// Int returns an integer value.
func Int(i int64) Value { return Value{Kind: KindInt, Int: i} }

// Bool returns a boolean value.
func Bool(b bool) Value { return Value{Kind: KindBool, Bool: b} }

// String returns a string value.
func String(s string) Value { return Value{Kind: KindString, Str: s} }

// Bytes returns a raw bytes value.
func Bytes(b []byte) Value { return Value{Kind: KindBytes, Bytes: b} }

// Float returns the value as a float64 when it is numeric (number, integer
// or bool as 0/1).
func (v Value) Float() (float64, bool) {
	switch v.Kind {
	case KindNumber:
		return v.Num, true
	case KindInt:
		return float64(v.Int), true
	case KindBool:
		if v.Bool {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// AppendJSON appends the JSON encoding of v: numbers in shortest form,
// bytes as a base64 string. Non-finite numbers (NaN, ±Inf) have no JSON form
// and are encoded as null.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.Kind {
	case KindNumber:
		if math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
			return append(dst, "null"...)
		}
		return AppendFloat(dst, v.Num)
	case KindInt:
		return strconv.AppendInt(dst, v.Int, 10)
	case KindBool:
		return strconv.AppendBool(dst, v.Bool)
	case KindString:
		return AppendJSONString(dst, v.Str)
	case KindBytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes)
		return append(dst, '"')
	}
	return append(dst, "null"...)
}

// AppendText appends the bare form of v used by payload = "value": numbers in
// shortest decimal form, true/false, strings as raw UTF-8, bytes raw.
func (v Value) AppendText(dst []byte) []byte {
	switch v.Kind {
	case KindNumber:
		if math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
			return strconv.AppendFloat(dst, v.Num, 'g', -1, 64)
		}
		return AppendFloat(dst, v.Num)
	case KindInt:
		return strconv.AppendInt(dst, v.Int, 10)
	case KindBool:
		return strconv.AppendBool(dst, v.Bool)
	case KindString:
		return append(dst, v.Str...)
	case KindBytes:
		return append(dst, v.Bytes...)
	}
	return dst
}

// AppendFloat appends a finite f in the shortest form that round-trips, the
// way encoding/json writes it: no exponent for 1e-6 <= |f| < 1e21, and a
// one-digit negative exponent where possible (1e-7, not 1e-07).
func AppendFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	n0 := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Like encoding/json: 1e-07 becomes 1e-7.
		b := dst[n0:]
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 is
// replaced by U+FFFD so the output is always valid JSON.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// Point is one named reading of a frame. A point whose Bad reason is not
// empty has bad quality: its value is not to be published, its reason is.
type Point struct {
	Name  string
	Value Value
	Unit  string // optional, e.g. "degC"
	Bad   string // quality: "" is good, else the reason ("timeout", "crc error", ...)
}

// Good reports whether the point has good quality.
func (p Point) Good() bool { return p.Bad == "" }

// AckFunc is called exactly once by the consumer of a frame: with nil when
// the frame has been accepted downstream (published locally and queued for
// the uplink), or with the reason it was refused.
type AckFunc func(err error)

// Frame is one reading event from one device.
type Frame struct {
	Adapter string    // the adapter block's name, the {adapter} in topics
	Device  string    // the {device} in topics
	Time    time.Time // when the reading was taken
	Points  []Point
	Raw     []byte // optional raw bytes, for debugging only
	// Received is when the frame entered the bus (set by the bus): the
	// start of the end-to-end latency the gateway measures, independent of
	// the device's clock.
	Received time.Time

	// Ack, when set, is called exactly once with the outcome. Producers that
	// must not report success to a device before the reading is safe (a CoAP
	// confirmable request) wait for it.
	Ack AckFunc
}

// Resolve reports the frame's outcome to its producer, if it asked.
func (f *Frame) Resolve(err error) {
	if f.Ack != nil {
		f.Ack(err)
	}
}

// Message is one outbound MQTT message produced by the mapping engine.
type Message struct {
	Topic   string // without the uplink topic_prefix
	Payload []byte
	QoS     byte
	Retain  bool
	Uplink  bool // also send it to the uplink broker
}
