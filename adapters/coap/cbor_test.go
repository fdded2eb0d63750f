package coap

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

// CBOR test vectors are written as Go strings: heads as \x escapes, text
// as tx("...") (a definite text string: head 0x60+len, or 0x78 len), and
// floats that have no short exact form as f64(x). Vectors marked A come
// from RFC 8949 Appendix A.

// tx encodes s as a definite-length CBOR text string (len < 256).
func tx(s string) string {
	if len(s) < 24 {
		return string([]byte{0x60 + byte(len(s))}) + s
	}
	return string([]byte{0x78, byte(len(s))}) + s
}

// f64 encodes x as a CBOR double (0xfb, then the IEEE 754 bits big-endian).
func f64(x float64) string {
	return "\xfb" + string(binary.BigEndian.AppendUint64(nil, math.Float64bits(x)))
}

func unhex(t testing.TB, s string) string {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeCBOR(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		in     string
		points []bridge.Point
	}{
		{"map", "/dev1",
			"\xa5" + tx("temperature") + "\xf9\x4d\x60" + // 21.5 as a half
				tx("count") + "\x03" + tx("ok") + "\xf5" + tx("label") + tx(`a"b`) + tx("neg") + "\x26", // -7
			[]bridge.Point{pt("temperature", bridge.Number(21.5)), pt("count", bridge.Int(3)), pt("ok", bridge.Bool(true)),
				pt("label", bridge.String(`a"b`)), pt("neg", bridge.Int(-7))}},
		{"int64 precision", "/d",
			"\xa3" + tx("big") + "\x1b\x00\x20\x00\x00\x00\x00\x00\x01" + // 2^53+1
				tx("max") + "\x1b\x7f\xff\xff\xff\xff\xff\xff\xff" + tx("min") + "\x3b\x7f\xff\xff\xff\xff\xff\xff\xff", // -1-(2^63-1)
			[]bridge.Point{pt("big", bridge.Int(9007199254740993)), pt("max", bridge.Int(math.MaxInt64)), pt("min", bridge.Int(math.MinInt64))}},
		{"beyond int64 is a number", "/d",
			"\xa3" + tx("x") + "\x1b\x80\x00\x00\x00\x00\x00\x00\x00" +
				tx("umax") + "\x1b\xff\xff\xff\xff\xff\xff\xff\xff" + // A: 18446744073709551615
				tx("nmin") + "\x3b\xff\xff\xff\xff\xff\xff\xff\xff", // A: -18446744073709551616
			[]bridge.Point{pt("x", bridge.Number(9223372036854775808)), pt("umax", bridge.Number(18446744073709551615)),
				pt("nmin", bridge.Number(-18446744073709551616))}},
		{"integers of every width", "/d",
			"\xa7" + tx("a") + "\x17" + tx("b") + "\x18\x18" + tx("c") + "\x19\x03\xe8" + tx("d") + "\x1a\x00\x0f\x42\x40" + // A: 23, 24, 1000, 1000000
				tx("e") + "\x1b\x00\x00\x00\xe8\xd4\xa5\x10\x00" + tx("f") + "\x38\x63" + tx("g") + "\x39\x03\xe7", // A: 1000000000000, -100, -1000
			[]bridge.Point{pt("a", bridge.Int(23)), pt("b", bridge.Int(24)), pt("c", bridge.Int(1000)), pt("d", bridge.Int(1000000)),
				pt("e", bridge.Int(1000000000000)), pt("f", bridge.Int(-100)), pt("g", bridge.Int(-1000))}},
		{"non-shortest heads", "/d", "\xb8\x01" + "\x78\x01a" + "\x18\x05", []bridge.Point{pt("a", bridge.Int(5))}},
		{"floats of every width", "/d",
			"\xa8" + tx("h") + "\xf9\x3e\x00" + // A: 1.5
				tx("s") + "\xfa\x47\xc3\x50\x00" + // A: 100000.0
				tx("d") + "\xfb\x3f\xf1\x99\x99\x99\x99\x99\x9a" + // A: 1.1
				tx("two") + "\xf9\x40\x00" + // 2.0 stays a number, as JSON's 2.0
				tx("sub") + "\xf9\x00\x01" + // A: 5.960464477539063e-8
				tx("max") + "\xf9\x7b\xff" + // A: 65504.0
				tx("neg") + "\xfb\xc0\x10\x66\x66\x66\x66\x66\x66" + // A: -4.1
				tx("big") + "\xfb\x7e\x37\xe4\x3c\x88\x00\x75\x9c", // A: 1.0e+300
			[]bridge.Point{pt("h", bridge.Number(1.5)), pt("s", bridge.Number(100000)), pt("d", bridge.Number(1.1)),
				pt("two", bridge.Number(2)), pt("sub", bridge.Number(5.960464477539063e-8)), pt("max", bridge.Number(65504)),
				pt("neg", bridge.Number(-4.1)), pt("big", bridge.Number(1e300))}},
		{"byte strings", "/d",
			"\xa2" + tx("raw") + "\x44\x01\x02\x03\x04" + tx("empty") + "\x40", // A: h'01020304', h''
			[]bridge.Point{pt("raw", bridge.Bytes([]byte{1, 2, 3, 4})), pt("empty", bridge.Bytes([]byte{}))}},
		{"UTF-8 text", "/d",
			"\xa3" + tx("u") + "\x62\xc3\xbc" + tx("z") + "\x63\xe6\xb0\xb4" + tx("g") + "\x64\xf0\x90\x85\x91", // A: "ü", "水", "𐅑"
			[]bridge.Point{pt("u", bridge.String("ü")), pt("z", bridge.String("水")), pt("g", bridge.String("𐅑"))}},
		{"key order kept", "/d", "\xa2" + tx("b") + "\x01" + tx("a") + "\x02", []bridge.Point{pt("b", bridge.Int(1)), pt("a", bridge.Int(2))}},
		{"indefinite lengths", "/d",
			"\xbf" + tx("s") + "\x7f\x65strea\x64ming\xff" + // A: (_ "strea", "ming")
				tx("b") + "\x5f\x42\x01\x02\x43\x03\x04\x05\xff" + // A: (_ h'0102', h'030405')
				"\x7f\x61k\x61y\xff" + "\xf4\xff",
			[]bridge.Point{pt("s", bridge.String("streaming")), pt("b", bridge.Bytes([]byte{1, 2, 3, 4, 5})), pt("ky", bridge.Bool(false))}},
		{"self-described CBOR", "/d", "\xd9\xd9\xf7\xa1" + tx("a") + "\x01", []bridge.Point{pt("a", bridge.Int(1))}},
		{"bare number", "/dev1", "\xfb\x40\x35\x80\x00\x00\x00\x00\x00", []bridge.Point{pt("value", bridge.Number(21.5))}},
		{"bare int", "/dev1", "\x29", []bridge.Point{pt("value", bridge.Int(-10))}}, // A: -10
		{"bare text on point path", "/dev1/state", tx("on"), []bridge.Point{pt("state", bridge.String("on"))}},
		{"bare empty text", "/dev1/state", "\x60", []bridge.Point{pt("state", bridge.String(""))}},
		{"bare bool", "/dev1/door", "\xf4", []bridge.Point{pt("door", bridge.Bool(false))}},
		{"bare bytes", "/dev1/raw", "\x43abc", []bridge.Point{pt("raw", bridge.Bytes([]byte("abc")))}},
		{"bare self-described", "/dev1", "\xd9\xd9\xf7\x01", []bridge.Point{pt("value", bridge.Int(1))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			device, tm, points, err := Decode(tc.path, FormatCBOR, []byte(tc.in), "", testNow)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := strings.Split(strings.TrimPrefix(tc.path, "/"), "/")[0]; device != want {
				t.Errorf("device = %q, want %q", device, want)
			}
			if !tm.Equal(testNow) {
				t.Errorf("time = %v, want now", tm)
			}
			if !reflect.DeepEqual(points, tc.points) {
				t.Errorf("points =\n%+v\nwant\n%+v", points, tc.points)
			}
		})
	}
}

// TestDecodeCBORCopiesBytes: the payload buffer may be reused once Decode
// returns; nothing decoded may alias it.
func TestDecodeCBORCopiesBytes(t *testing.T) {
	payload := []byte("\xa2" + tx("raw") + "\x43abc" + tx("s") + tx("xyz"))
	_, _, points, err := Decode("/d", FormatCBOR, payload, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	for i := range payload {
		payload[i] = 0
	}
	if string(points[0].Value.Bytes) != "abc" || points[1].Value.Str != "xyz" || points[0].Name != "raw" {
		t.Fatalf("decoded values alias the payload: %+v", points)
	}
}

// TestDecodeCBORMatchesJSON: a CBOR payload and the JSON with the same
// content decode alike, errors included (same kind, same diagnostic where
// it carries no offset).
func TestDecodeCBORMatchesJSON(t *testing.T) {
	tests := []struct {
		name, path, json, cbor string
		msg                    string // when an error: a substring of both diagnostics
	}{
		{"object", "/dev1", `{"temperature":21.5,"count":3,"ok":true,"label":"a\"b","neg":-7}`,
			"\xa5" + tx("temperature") + "\xf9\x4d\x60" + tx("count") + "\x03" + tx("ok") + "\xf5" + tx("label") + tx(`a"b`) + tx("neg") + "\x26", ""},
		{"bare value", "/dev1", `21.5`, "\xf9\x4d\x60", ""},
		{"bare value to point", "/dev1/temp", `-7`, "\x26", ""},
		{"bare value, default point", "/dev1", `"on"`, tx("on"), ""},
		{"float with no fraction", "/d", `{"f":2.0}`, "\xa1" + tx("f") + "\xf9\x40\x00", ""},
		{"beyond int64", "/d", `{"x":9223372036854775808}`, "\xa1" + tx("x") + "\x1b\x80\x00\x00\x00\x00\x00\x00\x00", ""},
		// -1-(2^63+3071) = -(2^63+3072), halfway between two doubles: rounded
		// once (to even), as strconv rounds the JSON literal.
		{"below int64, rounded once", "/d", `{"x":-9223372036854778880}`, "\xa1" + tx("x") + "\x3b\x80\x00\x00\x00\x00\x00\x0b\xff", ""},
		{"lowest CBOR integer", "/d", `{"x":-18446744073709551616}`, "\xa1" + tx("x") + "\x3b\xff\xff\xff\xff\xff\xff\xff\xff", ""},
		{"reserved point time", "/d", `{"time":1}`, "\xa1" + tx("time") + "\x01", `point name "time" is reserved`},
		{"reserved point errors", "/d", `{"errors":1}`, "\xa1" + tx("errors") + "\x01", "reserved"},
		{"reserved point stats", "/d", `{"stats":1}`, "\xa1" + tx("stats") + "\x01", "reserved"},
		{"reserved point in path", "/d/set", `1`, "\x01", "reserved"},
		{"reserved device", "/status", `1`, "\x01", `device name "status" is reserved`},
		{"plus in point", "/d", `{"a+b":1}`, "\xa1" + tx("a+b") + "\x01", `'+' is not allowed`},
		{"slash in point", "/d", `{"a/b":1}`, "\xa1" + tx("a/b") + "\x01", `"/" is not allowed`},
		{"empty point", "/d", `{"":1}`, "\xa1\x60\x01", "point name is empty"},
		{"control char in name", "/d", `{"a\u0000":1}`, "\xa1\x62a\x00\x01", "control character"},
		{"long name", "/d", `{"` + strings.Repeat("x", 256) + `":1}`, "\xa1\x79\x01\x00" + strings.Repeat("x", 256) + "\x01", "longer than 255"},
		{"duplicate key", "/d", `{"a":1,"a":2}`, "\xa2" + tx("a") + "\x01" + tx("a") + "\x02", `duplicate point "a"`},
		{"empty object", "/d", `{}`, "\xa0", "empty object: no points"},
		{"object to point path", "/d/p", `{"a":1}`, "\xa1" + tx("a") + "\x01", "cannot be posted to the point path /d/p"},
		{"nested object", "/d", `{"a":{"b":1}}`, "\xa1" + tx("a") + "\xa1" + tx("b") + "\x01", `point "a": nested`},
		{"nested array", "/d", `{"a":[1]}`, "\xa1" + tx("a") + "\x81\x01", `point "a": arrays are not supported`},
		{"null value", "/d", `{"a":null}`, "\xa1" + tx("a") + "\xf6", `point "a": null is not a value`},
		{"bare null", "/d/p", `null`, "\xf6", `point "p": null is not a value`},
		{"top-level array", "/d", `[1,2]`, "\x82\x01\x02", `point "value": arrays are not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jd, jr, jerr := DecodeAll(tc.path, FormatJSON, []byte(tc.json), "", testNow)
			cd, cr, cerr := DecodeAll(tc.path, FormatCBOR, []byte(tc.cbor), "", testNow)
			if tc.msg == "" {
				if jerr != nil || cerr != nil {
					t.Fatalf("json err %v, cbor err %v", jerr, cerr)
				}
				if cd != jd || !reflect.DeepEqual(cr, jr) {
					t.Fatalf("cbor %q %+v\njson %q %+v", cd, cr, jd, jr)
				}
				return
			}
			if jerr == nil || cerr == nil {
				t.Fatalf("json err %v, cbor err %v: want both to fail", jerr, cerr)
			}
			for _, kind := range []error{ErrBadName, ErrBadPayload, ErrNotFound} {
				if errors.Is(jerr, kind) != errors.Is(cerr, kind) {
					t.Errorf("json err %v and cbor err %v differ in kind", jerr, cerr)
				}
			}
			for _, err := range []error{jerr, cerr} {
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("diagnostic %q does not contain %q", err, tc.msg)
				}
			}
		})
	}
}

func TestDecodeCBORErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		in   string
		kind error
		msg  string
	}{
		{"empty payload", "/d", "", ErrBadPayload, "invalid CBOR: empty payload"},
		{"self-describe only", "/d", "\xd9\xd9\xf7", ErrBadPayload, "invalid CBOR: empty payload"},
		{"truncated map", "/d", "\xa1\x61", ErrBadPayload, "invalid CBOR: unexpected end of input"},
		{"truncated int", "/d", "\x1b\x00\x00", ErrBadPayload, "unexpected end of input"},
		{"truncated indefinite map", "/d", "\xbf" + tx("a") + "\x01", ErrBadPayload, "unexpected end of input"},
		{"huge declared string", "/d", "\x7b\x7f\xff\xff\xff\xff\xff\xff\xff", ErrBadPayload, "invalid CBOR"},
		{"huge declared map", "/d", "\xbb\x00\x00\x00\x01\x00\x00\x00\x00", ErrBadPayload, "exceeded max number of key-value pairs 4096"},
		{"huge declared array", "/d", "\x9b\xff\xff\xff\xff\xff\xff\xff\xff", ErrBadPayload, "invalid CBOR"},
		{"trailing data", "/d", "\x01\x02", ErrBadPayload, "unexpected data after top-level value"},
		{"lone break", "/d", "\xff", ErrBadPayload, "invalid CBOR"},
		{"reserved additional information", "/d", "\x1c", ErrBadPayload, "invalid CBOR"},
		{"odd indefinite map", "/d", "\xbf" + tx("a") + "\xff", ErrBadPayload, "invalid CBOR"},
		{"indefinite text with a byte chunk", "/d", "\x7f\x41a\xff", ErrBadPayload, "invalid CBOR"},
		{"two-byte simple below 32", "/d", "\xf8\x18", ErrBadPayload, "invalid CBOR"},
		{"tag epoch time", "/d", "\xc1\x1a\x51\x4b\x67\xb0", ErrBadPayload, "tags are not supported"},                 // A: 1(1363896240)
		{"tag bignum", "/d", "\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00", ErrBadPayload, "tags are not supported"}, // A: 18446744073709551616
		{"tag in a map value", "/d", "\xa1" + tx("a") + "\xc0" + tx("2013-03-21T20:04:00Z"), ErrBadPayload, "tags are not supported"},
		{"self-describe twice", "/d", "\xd9\xd9\xf7\xd9\xd9\xf7\x01", ErrBadPayload, "tags are not supported"},
		{"invalid UTF-8 text", "/d", "\xa1" + tx("a") + "\x62a\xff", ErrBadPayload, "invalid UTF-8"},
		{"invalid UTF-8 key", "/d", "\xa1\x61\xff\x01", ErrBadPayload, "invalid UTF-8"},
		{"integer key", "/d", "\xa1\x01\x02", ErrBadPayload, "a map key must be a text string"}, // A: {1: 2, ...}
		{"byte string key", "/d", "\xa1\x41a\x01", ErrBadPayload, "a map key must be a text string"},
		{"undefined", "/d", "\xa1" + tx("a") + "\xf7", ErrBadPayload, `point "a": undefined is not a value`},
		{"simple value 16", "/d", "\xf0", ErrBadPayload, "simple value 16"},                                                        // A: simple(16)
		{"simple value 255", "/d", "\xf8\xff", ErrBadPayload, "simple value 255"},                                                  // A: simple(255)
		{"NaN", "/d", "\xa1" + tx("a") + "\xf9\x7e\x00", ErrBadPayload, `point "a": NaN is not a number`},                          // A
		{"Infinity", "/d/p", "\xf9\x7c\x00", ErrBadPayload, `point "p": +Inf is not a number`},                                     // A
		{"-Infinity", "/d", "\xa1" + tx("a") + "\xf9\xfc\x00", ErrBadPayload, "-Inf is not a number"},                              // A
		{"single NaN", "/d", "\xfa\x7f\xc0\x00\x00", ErrBadPayload, "NaN is not a number"},                                         // A
		{"double Infinity", "/d", "\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00", ErrBadPayload, "+Inf is not a number"},                   // A
		{"nested beyond the limit", "/d", "\xa1" + tx("a") + "\x81\x81\x81\x81\x01", ErrBadPayload, "exceeded max nested level 4"}, // refused before it is looked at
		{"top-level indefinite array", "/d", "\x9f\x01\xff", ErrBadPayload, "Content-Format 112"},
		{"top-level map to a point", "/d/p", "\xbf" + tx("a") + "\x01\xff", ErrBadPayload, "cannot be posted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, points, err := Decode(tc.path, FormatCBOR, []byte(tc.in), "", testNow)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", points)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("err = %v, want kind %v", err, tc.kind)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("err %T is not a *DecodeError", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("diagnostic %q does not contain %q", err.Error(), tc.msg)
			}
		})
	}
}

func TestDecodeCBORLimits(t *testing.T) {
	// 4096 points decode; 4097 are refused (definite and indefinite).
	mapOf := func(n int, indef bool) []byte {
		var b []byte
		if indef {
			b = append(b, 0xbf)
		} else {
			b = append(b, 0xb9, byte(n>>8), byte(n))
		}
		for i := range n {
			b = append(b, 0x65, 'p', byte('0'+i/1000%10), byte('0'+i/100%10), byte('0'+i/10%10), byte('0'+i%10), 0x01)
		}
		if indef {
			b = append(b, 0xff)
		}
		return b
	}
	for _, indef := range []bool{false, true} {
		_, _, points, err := Decode("/d", FormatCBOR, mapOf(cborMaxItems, indef), "", testNow)
		if err != nil || len(points) != cborMaxItems {
			t.Fatalf("indefinite %v: %d points, %v", indef, len(points), err)
		}
		if _, _, _, err := Decode("/d", FormatCBOR, mapOf(cborMaxItems+1, indef), "", testNow); !errors.Is(err, ErrBadPayload) ||
			!strings.Contains(err.Error(), "exceeded max number of key-value pairs 4096") {
			t.Fatalf("indefinite %v: 4097 points: err = %v", indef, err)
		}
	}
}

// TestDecodeCBORMemoryBounded: a few bytes declaring huge items cost no
// more than a few kilobytes to refuse.
func TestDecodeCBORMemoryBounded(t *testing.T) {
	hostile := []string{
		"\x5b\x00\x00\x00\x01\x00\x00\x00\x00",                           // a 4 GiB byte string
		"\x7a\xff\xff\xff\xff",                                           // a 4 GiB text string
		"\x9a\x00\x00\x10\x00",                                           // 4096 elements, none present
		"\xb9\x10\x00",                                                   // 4096 pairs, none present
		"\x81\xb9\x10\x00",                                               // SenML: a record of 4096 fields
		"\xa1" + tx("a") + "\x5f\x5a\xff\xff\xff\xff",                    // an indefinite string's huge chunk
		"\x9a\x00\x00\x10\x00" + strings.Repeat("\xa0", 100),             // SenML: 4096 records declared, 100 sent
		"\x9f" + strings.Repeat("\x9f", 3) + strings.Repeat("\xff", 100), // breaks beyond the items
	}
	for _, in := range hostile {
		for _, cf := range []int{FormatCBOR, FormatSenMLCBOR} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := DecodeAll("/d", cf, []byte(in), "", testNow)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Errorf("%q (cf %d) decoded", in, cf)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
				t.Errorf("%q (cf %d): %d bytes allocated to refuse it", in, cf, d)
			}
		}
	}
}

// senmlPair is one SenML pack in JSON and in CBOR.
type senmlPair struct {
	name, path, json, cbor string
}

var senmlPairs = []senmlPair{
	{"bn device/", "/dev1",
		`[{"bn":"dev1/","bt":1.7e9,"bu":"Cel","n":"temp","v":21.5},{"n":"hum","u":"%RH","v":40},{"n":"door","vb":false},{"n":"fw","vs":"1.2"}]`,
		"\x84" +
			"\xa5\x21" + tx("dev1/") + "\x22\x1a\x65\x53\xf1\x00" + "\x23" + tx("Cel") + "\x00" + tx("temp") + "\x02\xf9\x4d\x60" + // bn, bt 1700000000, bu, n, v 21.5
			"\xa3\x00" + tx("hum") + "\x01" + tx("%RH") + "\x02\x18\x28" + // n, u, v 40
			"\xa2\x00" + tx("door") + "\x04\xf4" + // n, vb false
			"\xa2\x00" + tx("fw") + "\x03" + tx("1.2")}, // n, vs
	{"urn bn is the sensor", "/dev1",
		`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","v":23.1,"u":"Cel"}]`,
		"\x81\xa4\x21" + tx("urn:dev:ow:10e2073a01080063:") + "\x00" + tx("temp") + "\x02" + f64(23.1) + "\x01" + tx("Cel")},
	{"device colon prefix", "/urn:dev:ow:10e2", `[{"bn":"urn:dev:ow:10e2:","n":"temp","v":1}]`,
		"\x81\xa3\x21" + tx("urn:dev:ow:10e2:") + "\x00" + tx("temp") + "\x02\x01"},
	{"leading slash bn", "/dev1", `[{"bn":"/dev1/","n":"t","v":1}]`, "\x81\xa3\x21" + tx("/dev1/") + "\x00" + tx("t") + "\x02\x01"},
	{"name equals device", "/dev1", `[{"n":"dev1","v":1}]`, "\x81\xa2\x00" + tx("dev1") + "\x02\x01"},
	{"no name on a point path", "/dev1/level", `[{"v":7}]`, "\x81\xa1\x02\x07"},
	{"relative time", "/dev1", `[{"n":"t","v":1,"t":-60}]`, "\x81\xa3\x00" + tx("t") + "\x02\x01\x06\x38\x3b"}, // t -60
	{"bt+t relative", "/dev1", `[{"bt":-10,"n":"t","v":1,"t":-0.5}]`,
		"\x81\xa4\x22\x29\x00" + tx("t") + "\x02\x01\x06\xf9\xb8\x00"}, // bt -10, t -0.5 as a half
	{"base value", "/d", `[{"bv":100,"n":"a","v":5},{"n":"b","v":0.5}]`,
		"\x82\xa3\x24\x18\x64\x00" + tx("a") + "\x02\x05" + "\xa2\x00" + tx("b") + "\x02\xf9\x38\x00"}, // bv 100; v 0.5 as a half
	{"base value int64 overflow", "/d", `[{"bv":9223372036854775807,"n":"a","v":1}]`,
		"\x81\xa3\x24\x1b\x7f\xff\xff\xff\xff\xff\xff\xff\x00" + tx("a") + "\x02\x01"},
	{"sum", "/d", `[{"bs":10,"n":"energy","s":2,"u":"J"}]`, "\x81\xa4\x25\x0a\x00" + tx("energy") + "\x05\x02\x01" + tx("J")},
	{"data", "/d", `[{"n":"raw","vd":"aGk_"}]`, "\x81\xa2\x00" + tx("raw") + "\x08\x43hi?"},
	{"base-only record, ignored fields", "/d",
		`[{"bn":"d/","bver":10},{"n":"a","v":1,"ut":5,"x":{"y":[1,2]}}]`,
		"\x82\xa2\x21" + tx("d/") + "\x20\x0a" + // bn, bver 10
			"\xa6\x00" + tx("a") + "\x02\x01\x07\x05" + tx("x") + "\xa1" + tx("y") + "\x82\x01\x02" + // n, v, ut, "x"
			"\x09" + tx("unknown label 9") + "\x26\x80"}, // labels 9 and -7 are not SenML's: ignored
	{"text labels", "/d", `[{"bn":"d/","n":"a","v":1,"u":"Cel"}]`,
		"\x81\xa4" + tx("bn") + tx("d/") + tx("n") + tx("a") + tx("v") + "\x01" + tx("u") + tx("Cel")},
	{"indefinite lengths", "/d", `[{"n":"a","v":1},{"n":"b","vs":"xy"}]`,
		"\x9f\xbf\x00" + tx("a") + "\x02\x01\xff" + "\xa2\x00\x7f\x61b\xff\x03\x7f\x61x\x61y\xff\xff"},
	{"self-described", "/d", `[{"n":"a","v":1}]`, "\xd9\xd9\xf7\x81\xa2\x00" + tx("a") + "\x02\x01"},
	{"series", "/dev1",
		`[{"bn":"dev1/","bt":1700000060,"n":"t","v":3},{"n":"t","v":1,"t":-60},{"n":"h","v":9,"t":-60},{"n":"t","v":2,"t":-30}]`,
		"\x84" +
			"\xa4\x21" + tx("dev1/") + "\x22\x1a\x65\x53\xf1\x3c\x00" + tx("t") + "\x02\x03" + // bt 1700000060
			"\xa3\x00" + tx("t") + "\x02\x01\x06\x38\x3b" +
			"\xa3\x00" + tx("h") + "\x02\x09\x06\x38\x3b" +
			"\xa3\x00" + tx("t") + "\x02\x02\x06\x38\x1d"}, // t -30
	// Errors: both refuse, with the same kind.
	{"reserved name", "/d", `[{"bn":"d/","n":"time","v":1}]`, "\x81\xa3\x21" + tx("d/") + "\x00" + tx("time") + "\x02\x01"},
	{"slash in name", "/d", `[{"n":"other/temp","v":1}]`, "\x81\xa2\x00" + tx("other/temp") + "\x02\x01"},
	{"deeper name", "/d", `[{"bn":"d/a/","n":"b","v":1}]`, "\x81\xa3\x21" + tx("d/a/") + "\x00" + tx("b") + "\x02\x01"},
	{"wrong point on point path", "/d/p", `[{"n":"q","v":1}]`, "\x81\xa2\x00" + tx("q") + "\x02\x01"},
	{"duplicate point at one time", "/d", `[{"n":"a","v":1},{"n":"a","v":2}]`, "\x82\xa2\x00" + tx("a") + "\x02\x01\xa2\x00" + tx("a") + "\x02\x02"},
	{"no value", "/d", `[{"n":"a"}]`, "\x81\xa1\x00" + tx("a")},
	{"two values", "/d", `[{"n":"a","v":1,"vs":"x"}]`, "\x81\xa3\x00" + tx("a") + "\x02\x01\x03" + tx("x")},
	{"version", "/d", `[{"bver":11,"n":"a","v":1}]`, "\x81\xa3\x20\x0b\x00" + tx("a") + "\x02\x01"},
	{"bver 0", "/d", `[{"bver":0,"n":"a","v":1}]`, "\x81\xa3\x20\x00\x00" + tx("a") + "\x02\x01"},
	{"time out of range", "/d", `[{"n":"a","v":1,"t":1e300}]`, "\x81\xa3\x00" + tx("a") + "\x02\x01\x06\xfb\x7e\x37\xe4\x3c\x88\x00\x75\x9c"},
	{"relative time too far", "/d", `[{"n":"a","v":1,"t":-1e9}]`, "\x81\xa3\x00" + tx("a") + "\x02\x01\x06\x3a\x3b\x9a\xc9\xff"}, // -1-999999999
	{"value overflow", "/d", `[{"bv":1e308,"n":"a","v":1e308}]`, "\x81\xa3\x24" + f64(1e308) + "\x00" + tx("a") + "\x02" + f64(1e308)},
	{"must understand", "/d", `[{"n":"a","v":1,"foo_":2}]`, "\x81\xa3\x00" + tx("a") + "\x02\x01" + tx("foo_") + "\x02"},
	{"duplicate field", "/d", `[{"n":"a","v":1,"v":2}]`, "\x81\xa3\x00" + tx("a") + "\x02\x01\x02\x02"},
	{"wrong type", "/d", `[{"n":1,"v":1}]`, "\x81\xa2\x00\x01\x02\x01"},
	{"empty pack", "/d", `[]`, "\x80"},
	{"empty record", "/d", `[{}]`, "\x81\xa0"},
	{"record not a map", "/d", `[1]`, "\x81\x01"},
	{"object not pack", "/d", `{"n":"a","v":1}`, "\xa2\x00" + tx("a") + "\x02\x01"},
}

// TestDecodeSenMLCBORMatchesJSON: each pack decodes alike in SenML CBOR and
// SenML JSON (the resolution is shared; this checks the parsers agree).
func TestDecodeSenMLCBORMatchesJSON(t *testing.T) {
	for _, tc := range senmlPairs {
		t.Run(tc.name, func(t *testing.T) {
			jd, jr, jerr := DecodeAll(tc.path, FormatSenMLJSON, []byte(tc.json), "", testNow)
			cd, cr, cerr := DecodeAll(tc.path, FormatSenMLCBOR, []byte(tc.cbor), "", testNow)
			if (jerr == nil) != (cerr == nil) {
				t.Fatalf("json err %v, cbor err %v", jerr, cerr)
			}
			if jerr != nil {
				for _, kind := range []error{ErrBadName, ErrBadPayload} {
					if errors.Is(jerr, kind) != errors.Is(cerr, kind) {
						t.Errorf("json err %v and cbor err %v differ in kind", jerr, cerr)
					}
				}
				t.Logf("json: %v\ncbor: %v", jerr, cerr)
				return
			}
			if cd != jd || !reflect.DeepEqual(cr, jr) {
				t.Fatalf("cbor %q %+v\njson %q %+v", cd, cr, jd, jr)
			}
		})
	}
}

func TestDecodeSenMLCBOR(t *testing.T) {
	in := "\x84" +
		"\xa5\x21" + tx("dev1/") + "\x22\x1a\x65\x53\xf1\x00" + "\x23" + tx("Cel") + "\x00" + tx("temp") + "\x02\xf9\x4d\x60" +
		"\xa3\x00" + tx("hum") + "\x01" + tx("%RH") + "\x02\x18\x28" +
		"\xa2\x00" + tx("door") + "\x04\xf4" +
		"\xa2\x00" + tx("raw") + "\x08\x43hi?"
	device, tm, points, err := Decode("/dev1", FormatSenMLCBOR, []byte(in), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := []bridge.Point{
		ptu("temp", bridge.Number(21.5), "Cel"), ptu("hum", bridge.Int(40), "%RH"),
		ptu("door", bridge.Bool(false), "Cel"), ptu("raw", bridge.Bytes([]byte("hi?")), "Cel"),
	}
	if device != "dev1" || !tm.Equal(time.Unix(1700000000, 0)) || !reflect.DeepEqual(points, want) {
		t.Fatalf("got %q %v %+v\nwant %+v", device, tm, points, want)
	}
}

// TestDecodeSenMLCBORRFC8428Example decodes the CBOR example of RFC 8428 §6,
// which is the JSON pack of §5.1.4 (multiple measurements): seven records,
// voltage and six currents over six seconds.
func TestDecodeSenMLCBORRFC8428Example(t *testing.T) {
	in := unhex(t, "87a721781b75726e3a6465763a6f773a3130653230373361303130383030363a22fb41d303a15b00106223614120050067766f6c7461676501615602fb405e066666666666a3006763757272656e74062402fb3ff3333333333333a3006763757272656e74062302fb3ff4cccccccccccda3006763757272656e74062202fb3ff6666666666666a3006763757272656e74062102f93e00a3006763757272656e74062002fb3ff999999999999aa3006763757272656e74060002fb3ffb333333333333")
	js := `[
     {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
      "bu":"A","bver":5,
      "n":"voltage","u":"V","v":120.1},
     {"n":"current","t":-5,"v":1.2},
     {"n":"current","t":-4,"v":1.3},
     {"n":"current","t":-3,"v":1.4},
     {"n":"current","t":-2,"v":1.5},
     {"n":"current","t":-1,"v":1.6},
     {"n":"current","v":1.7}
   ]`
	device, readings, err := DecodeAll("/meter", FormatSenMLCBOR, []byte(in), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, jr, err := DecodeAll("/meter", FormatSenMLJSON, []byte(js), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(readings, jr) {
		t.Fatalf("cbor %+v\njson %+v", readings, jr)
	}
	if device != "meter" || len(readings) != 6 {
		t.Fatalf("device %q, %d readings", device, len(readings))
	}
	base := time.Unix(1276020076, 1e6).UTC()
	for i, r := range readings {
		if d := r.Time.Sub(base.Add(time.Duration(i-5) * time.Second)); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("reading %d at %v", i, r.Time)
		}
	}
	last := readings[5].Points
	want := []bridge.Point{ptu("voltage", bridge.Number(120.1), "V"), ptu("current", bridge.Number(1.7), "A")}
	if !reflect.DeepEqual(last, want) {
		t.Fatalf("last reading %+v, want %+v", last, want)
	}
	if p := readings[3].Points; !reflect.DeepEqual(p, []bridge.Point{ptu("current", bridge.Number(1.5), "A")}) {
		t.Fatalf("reading at t-2 (v as a half) = %+v", p)
	}
}

func TestDecodeSenMLCBORErrors(t *testing.T) {
	rec := func(fields string, n byte) string { return "\x81" + string([]byte{0xa0 + n}) + fields }
	tests := []struct {
		name string
		path string
		in   string
		kind error
		msg  string
	}{
		{"empty", "/d", "", ErrBadPayload, "invalid CBOR: empty payload"},
		{"map not pack", "/d", "\xa2\x00" + tx("a") + "\x02\x01", ErrBadPayload, "a SenML pack is a CBOR array of records, not a map"},
		{"scalar not pack", "/d", "\x01", ErrBadPayload, "a SenML pack is a CBOR array of records"},
		{"empty pack", "/d", "\x80", ErrBadPayload, "empty SenML pack"},
		{"empty indefinite pack", "/d", "\x9f\xff", ErrBadPayload, "empty SenML pack"}, // A: [_ ]
		{"record not a map", "/d", "\x82\xa2\x00" + tx("a") + "\x02\x01\x01", ErrBadPayload, "SenML record 2 is not a CBOR map"},
		{"no value", "/d", rec("\x00"+tx("a"), 1), ErrBadPayload, "SenML record 1 has no value"},
		{"empty record", "/d", "\x81\xa0", ErrBadPayload, "has no value"},
		{"two values", "/d", rec("\x00"+tx("a")+"\x02\x01\x03"+tx("x"), 3), ErrBadPayload, "more than one"},
		{"n not text", "/d", rec("\x00\x01\x02\x01", 2), ErrBadPayload, `field "n" must be a text string`},
		{"n bytes", "/d", rec("\x00\x41a\x02\x01", 2), ErrBadPayload, `field "n" must be a text string`},
		{"v text", "/d", rec("\x00"+tx("a")+"\x02"+tx("1"), 2), ErrBadPayload, `field "v" must be a number`},
		{"v null", "/d", rec("\x00"+tx("a")+"\x02\xf6", 2), ErrBadPayload, `field "v" must be a number`},
		{"v NaN", "/d", rec("\x00"+tx("a")+"\x02\xf9\x7e\x00", 2), ErrBadPayload, `field "v" must be a finite number`},
		{"t Infinity", "/d", rec("\x00"+tx("a")+"\x02\x01\x06\xf9\x7c\x00", 3), ErrBadPayload, `field "t" must be a finite number`},
		{"vb null", "/d", rec("\x00"+tx("a")+"\x04\xf6", 2), ErrBadPayload, `field "vb" must be true or false`},
		{"vb int", "/d", rec("\x00"+tx("a")+"\x04\x01", 2), ErrBadPayload, `field "vb" must be true or false`},
		{"vd text", "/d", rec("\x00"+tx("a")+"\x08"+tx("aGk_"), 2), ErrBadPayload, `field "vd" must be a byte string`},
		{"duplicate label", "/d", rec("\x00"+tx("a")+"\x02\x01\x02\x02", 3), ErrBadPayload, `SenML record 1: duplicate field "v"`},
		{"label and its text form", "/d", rec("\x00"+tx("a")+"\x02\x01"+tx("n")+tx("b"), 3), ErrBadPayload, `duplicate field "n"`},
		{"must understand", "/d", rec("\x00"+tx("a")+"\x02\x01"+tx("foo_")+"\x02", 3), ErrBadPayload, `must-understand field "foo_"`},
		{"bytes label", "/d", rec("\x41n"+tx("a")+"\x02\x01", 2), ErrBadPayload, "label at offset 2 is neither an integer nor a text string"},
		{"float label", "/d", rec("\xf9\x00\x00"+tx("a"), 1), ErrBadPayload, "neither an integer nor a text string"},
		{"version", "/d", rec("\x20\x0b\x00"+tx("a")+"\x02\x01", 3), ErrBadPayload, "version 11"},
		{"bver float", "/d", rec("\x20\xf9\x3e\x00\x00"+tx("a")+"\x02\x01", 3), ErrBadPayload, "invalid bver"},
		{"reserved name", "/d", rec("\x21"+tx("d/")+"\x00"+tx("time")+"\x02\x01", 3), ErrBadName, `SenML record 1: point name "time" is reserved`},
		{"wrong point on point path", "/d/p", rec("\x00"+tx("q")+"\x02\x01", 2), ErrBadPayload, `names point "q" but the request path names point "p"`},
		{"duplicate point", "/d", "\x82\xa2\x00" + tx("a") + "\x02\x01\xa2\x00" + tx("a") + "\x02\x02", ErrBadPayload, `duplicate point "a" at time`},
		{"tag", "/d", rec("\x00"+tx("a")+"\x02\xc1\x01", 2), ErrBadPayload, "tags are not supported"},
		{"deep unknown field", "/d", rec("\x00"+tx("a")+"\x02\x01"+tx("x")+"\x81\x81\x81\x01", 3), ErrBadPayload, "exceeded max nested level 4"},
		{"trailing data", "/d", rec("\x00"+tx("a")+"\x02\x01", 2) + "\x00", ErrBadPayload, "unexpected data after top-level value"},
		{"truncated", "/d", "\x81\xa2\x00" + tx("a") + "\x02", ErrBadPayload, "unexpected end of input"},
		{"invalid UTF-8 name", "/d", rec("\x00\x61\xfe\x02\x01", 2), ErrBadPayload, "invalid UTF-8"},
		{"too many records", "/d", "\x99\x10\x01" + strings.Repeat("\xa1\x02\x01", 4097), ErrBadPayload, "exceeded max number of elements 4096"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeAll(tc.path, FormatSenMLCBOR, []byte(tc.in), "", testNow)
			if err == nil {
				t.Fatal("DecodeAll succeeded")
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("err = %v, want kind %v", err, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("diagnostic %q does not contain %q", err.Error(), tc.msg)
			}
		})
	}
}

func TestLookupFormatMessages(t *testing.T) {
	_, _, _, err := Decode("/d", 42, []byte("x"), "", testNow)
	if !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{"unsupported Content-Format 42", "50 (application/json)", "60 (application/cbor)", "112 (application/senml+cbor)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("diagnostic %q does not mention %q", err, s)
		}
	}
}

func BenchmarkDecodeCBOR(b *testing.B) {
	// The payload of BenchmarkDecodeJSON, in CBOR: 86 bytes against 111.
	payload := []byte("\xa7" +
		tx("temperature") + "\xf9\x4d\x60" + // 21.5
		tx("humidity") + "\x18\x28" + // 40
		tx("pressure") + "\xfa\x44\x7d\x50\x00" + // 1013.25
		tx("battery") + f64(3.61) +
		tx("door") + "\xf4" +
		tx("state") + tx("idle") +
		tx("count") + "\x1a\x00\x01\xe2\x40") // 123456
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, _, _, err := Decode("/sensor-17", FormatCBOR, payload, "", testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSenMLCBOR(b *testing.B) {
	// The pack of BenchmarkDecodeSenMLJSON, in CBOR.
	payload := []byte("\x83" +
		"\xa5\x21" + tx("sensor-17/") + "\x22\x1a\x65\x53\xf1\x00" + "\x23" + tx("Cel") + "\x00" + tx("temperature") + "\x02\xf9\x4d\x60" +
		"\xa3\x00" + tx("humidity") + "\x01" + tx("%RH") + "\x02\x18\x28" +
		"\xa2\x00" + tx("door") + "\x04\xf4")
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, _, _, err := Decode("/sensor-17", FormatSenMLCBOR, payload, "", testNow); err != nil {
			b.Fatal(err)
		}
	}
}
