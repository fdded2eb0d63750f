package coap

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

var testNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func pt(name string, v bridge.Value) bridge.Point { return bridge.Point{Name: name, Value: v} }

func ptu(name string, v bridge.Value, unit string) bridge.Point {
	return bridge.Point{Name: name, Value: v, Unit: unit}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		cf     int
		in     string
		device string
		time   time.Time
		points []bridge.Point
	}{
		{"json object", "/dev1", FormatJSON, `{"temperature":21.5,"count":3,"ok":true,"label":"a\"b","neg":-7}`, "dev1", testNow, []bridge.Point{
			pt("temperature", bridge.Number(21.5)), pt("count", bridge.Int(3)), pt("ok", bridge.Bool(true)),
			pt("label", bridge.String(`a"b`)), pt("neg", bridge.Int(-7)),
		}},
		{"json int64 precision", "/d", FormatJSON, `{"big":9007199254740993,"max":9223372036854775807,"min":-9223372036854775808}`, "d", testNow, []bridge.Point{
			pt("big", bridge.Int(9007199254740993)), pt("max", bridge.Int(math.MaxInt64)), pt("min", bridge.Int(math.MinInt64)),
		}},
		{"json beyond int64 is a number", "/d", FormatJSON, `{"x":9223372036854775808,"e":1e3,"f":2.0}`, "d", testNow, []bridge.Point{
			pt("x", bridge.Number(9223372036854775808)), pt("e", bridge.Number(1000)), pt("f", bridge.Number(2)),
		}},
		{"json bare number", "/dev1", FormatJSON, ` 21.5 `, "dev1", testNow, []bridge.Point{pt("value", bridge.Number(21.5))}},
		{"json bare string on point path", "/dev1/state", FormatJSON, `"on"`, "dev1", testNow, []bridge.Point{pt("state", bridge.String("on"))}},
		{"json escapes", "/d", FormatJSON, `{"s":"\u00e9\n\ud83d\ude00\/\\"}`, "d", testNow, []bridge.Point{pt("s", bridge.String("é\n😀/\\"))}},
		{"json lone surrogate", "/d", FormatJSON, `{"s":"\ud800x"}`, "d", testNow, []bridge.Point{pt("s", bridge.String("\uFFFDx"))}},
		{"json empty key set order kept", "/d", FormatJSON, `{"b":1,"a":2}`, "d", testNow, []bridge.Point{pt("b", bridge.Int(1)), pt("a", bridge.Int(2))}},
		{"text number", "/dev1", FormatText, "21.5\n", "dev1", testNow, []bridge.Point{pt("value", bridge.Number(21.5))}},
		{"text int", "/dev1", FormatText, "-42", "dev1", testNow, []bridge.Point{pt("value", bridge.Int(-42))}},
		{"text bool", "/dev1/on", FormatText, "true", "dev1", testNow, []bridge.Point{pt("on", bridge.Bool(true))}},
		{"text string", "/dev1", FormatText, "  hello world \r\n", "dev1", testNow, []bridge.Point{pt("value", bridge.String("hello world"))}},
		{"text not JSON number", "/dev1", FormatText, "0x10", "dev1", testNow, []bridge.Point{pt("value", bridge.String("0x10"))}},
		{"text JSON object is a string", "/dev1", FormatText, `{"a":1}`, "dev1", testNow, []bridge.Point{pt("value", bridge.String(`{"a":1}`))}},
		{"text null is a string", "/dev1", FormatText, "null", "dev1", testNow, []bridge.Point{pt("value", bridge.String("null"))}},
		{"text empty is an empty string", "/dev1", FormatText, "", "dev1", testNow, []bridge.Point{pt("value", bridge.String(""))}},
		{"none sniffs JSON", "/dev1", FormatNone, ` {"a":1}`, "dev1", testNow, []bridge.Point{pt("a", bridge.Int(1))}},
		{"none sniffs text", "/dev1", FormatNone, `21`, "dev1", testNow, []bridge.Point{pt("value", bridge.Int(21))}},
		{"no leading slash", "dev1", FormatNone, `21`, "dev1", testNow, []bridge.Point{pt("value", bridge.Int(21))}},
		{"senml bn device/", "/dev1", FormatSenMLJSON,
			`[{"bn":"dev1/","bt":1.7e9,"bu":"Cel","n":"temp","v":21.5},{"n":"hum","u":"%RH","v":40},{"n":"door","vb":false},{"n":"fw","vs":"1.2"}]`,
			"dev1", time.Unix(1.7e9, 0).UTC(), []bridge.Point{
				ptu("temp", bridge.Number(21.5), "Cel"), ptu("hum", bridge.Int(40), "%RH"), ptu("door", bridge.Bool(false), "Cel"), ptu("fw", bridge.String("1.2"), "Cel"),
			}},
		{"senml urn bn is the sensor", "/dev1", FormatSenMLJSON,
			`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","v":23.1,"u":"Cel"}]`,
			"dev1", testNow, []bridge.Point{ptu("temp", bridge.Number(23.1), "Cel")}},
		{"senml device colon prefix", "/urn:dev:ow:10e2", FormatSenMLJSON,
			`[{"bn":"urn:dev:ow:10e2:","n":"temp","v":1}]`,
			"urn:dev:ow:10e2", testNow, []bridge.Point{pt("temp", bridge.Int(1))}},
		{"senml leading slash bn", "/dev1", FormatSenMLJSON, `[{"bn":"/dev1/","n":"t","v":1}]`, "dev1", testNow, []bridge.Point{pt("t", bridge.Int(1))}},
		{"senml name equals device is the bare point", "/dev1", FormatSenMLJSON, `[{"n":"dev1","v":1}]`, "dev1", testNow, []bridge.Point{pt("value", bridge.Int(1))}},
		{"senml no name is the bare point", "/dev1/level", FormatSenMLJSON, `[{"v":7}]`, "dev1", testNow, []bridge.Point{pt("level", bridge.Int(7))}},
		{"senml relative time", "/dev1", FormatSenMLJSON, `[{"n":"t","v":1,"t":-60}]`, "dev1", testNow.Add(-time.Minute), []bridge.Point{pt("t", bridge.Int(1))}},
		{"senml bt+t relative", "/dev1", FormatSenMLJSON, `[{"bt":-10,"n":"t","v":1,"t":-0.5}]`, "dev1", testNow.Add(-10500 * time.Millisecond), []bridge.Point{pt("t", bridge.Int(1))}},
		{"senml base value", "/d", FormatSenMLJSON, `[{"bv":100,"n":"a","v":5},{"n":"b","v":0.5}]`, "d", testNow, []bridge.Point{pt("a", bridge.Int(105)), pt("b", bridge.Number(100.5))}},
		{"senml sum", "/d", FormatSenMLJSON, `[{"bs":10,"n":"energy","s":2,"u":"J"}]`, "d", testNow, []bridge.Point{ptu("energy", bridge.Int(12), "J")}},
		{"senml data", "/d", FormatSenMLJSON, `[{"n":"raw","vd":"aGk_"}]`, "d", testNow, []bridge.Point{pt("raw", bridge.Bytes([]byte("hi?")))}},
		{"senml base-only record and ignored fields", "/d", FormatSenMLJSON, `[{"bn":"d/","bver":10},{"n":"a","v":1,"ut":5,"x":{"y":[1,2,{"z":null}]}}]`, "d", testNow, []bridge.Point{pt("a", bridge.Int(1))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			device, tm, points, err := Decode(tc.path, tc.cf, []byte(tc.in), "", testNow)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if device != tc.device {
				t.Errorf("device = %q, want %q", device, tc.device)
			}
			if !tm.Equal(tc.time) {
				t.Errorf("time = %v, want %v", tm, tc.time)
			}
			if !reflect.DeepEqual(points, tc.points) {
				t.Errorf("points =\n%+v\nwant\n%+v", points, tc.points)
			}
		})
	}
}

func TestDecodeDefaultPoint(t *testing.T) {
	_, _, points, err := Decode("/d", FormatText, []byte("1"), "reading", testNow)
	if err != nil || len(points) != 1 || points[0].Name != "reading" {
		t.Fatalf("got %+v, %v", points, err)
	}
	if _, _, _, err := Decode("/d", FormatText, []byte("1"), "time", testNow); !errors.Is(err, ErrBadName) {
		t.Fatalf("reserved default point: err = %v", err)
	}
}

func TestDecodeAllSenMLSeries(t *testing.T) {
	in := `[{"bn":"dev1/","bt":1700000060,"n":"t","v":3},{"n":"t","v":1,"t":-60},{"n":"h","v":9,"t":-60},{"n":"t","v":2,"t":-30}]`
	device, readings, err := DecodeAll("/dev1", FormatSenMLJSON, []byte(in), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if device != "dev1" || len(readings) != 3 {
		t.Fatalf("device %q, %d readings: %+v", device, len(readings), readings)
	}
	want := []struct {
		sec    int64
		points []bridge.Point
	}{
		{1700000000, []bridge.Point{pt("t", bridge.Int(1)), pt("h", bridge.Int(9))}},
		{1700000030, []bridge.Point{pt("t", bridge.Int(2))}},
		{1700000060, []bridge.Point{pt("t", bridge.Int(3))}},
	}
	for i, w := range want {
		if readings[i].Time.Unix() != w.sec || !reflect.DeepEqual(readings[i].Points, w.points) {
			t.Errorf("reading %d = %v %+v, want %d %+v", i, readings[i].Time.Unix(), readings[i].Points, w.sec, w.points)
		}
	}
	if _, _, _, err := Decode("/dev1", FormatSenMLJSON, []byte(in), "", testNow); !errors.Is(err, ErrBadPayload) {
		t.Errorf("Decode of a series: err = %v, want ErrBadPayload", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		cf   int
		in   string
		kind error
		msg  string // substring of the diagnostic
	}{
		{"malformed JSON", "/d", FormatJSON, `{"temperature":21.5,}`, ErrBadPayload, "invalid JSON at offset 20"},
		{"truncated JSON", "/d", FormatJSON, `{"a":`, ErrBadPayload, "invalid JSON at offset 5: unexpected end of input"},
		{"trailing data", "/d", FormatJSON, `{"a":1} x`, ErrBadPayload, "unexpected data after top-level value"},
		{"empty JSON", "/d", FormatJSON, ``, ErrBadPayload, "invalid JSON at offset 0"},
		{"bad literal", "/d", FormatJSON, `{"a":tru}`, ErrBadPayload, "invalid JSON at offset 5"},
		{"leading zero", "/d", FormatJSON, `012`, ErrBadPayload, "unexpected data"},
		{"bad escape", "/d", FormatJSON, `"\x"`, ErrBadPayload, "invalid escape"},
		{"control char in string", "/d", FormatJSON, "\"a\tb\"", ErrBadPayload, "control character"},
		{"invalid UTF-8 in JSON", "/d", FormatJSON, "\"\xff\"", ErrBadPayload, "not valid UTF-8"},
		{"number out of range", "/d", FormatJSON, `{"a":1e400}`, ErrBadPayload, "out of range"},
		{"nested object", "/d", FormatJSON, `{"a":{"b":1}}`, ErrBadPayload, `point "a": nested objects`},
		{"nested array", "/d", FormatJSON, `{"a":[1]}`, ErrBadPayload, `point "a": arrays`},
		{"null value", "/d", FormatJSON, `{"a":null}`, ErrBadPayload, `point "a": null`},
		{"bare null", "/d/p", FormatJSON, `null`, ErrBadPayload, `point "p": null`},
		{"top-level array", "/d", FormatJSON, `[1,2]`, ErrBadPayload, "Content-Format 110"},
		{"empty object", "/d", FormatJSON, `{}`, ErrBadPayload, "no points"},
		{"duplicate key", "/d", FormatJSON, `{"a":1,"a":2}`, ErrBadPayload, `duplicate point "a"`},
		{"object to point path", "/d/p", FormatJSON, `{"a":1}`, ErrBadPayload, "cannot be posted to the point path"},
		{"object to point path sniffed", "/d/p", FormatNone, `{"a":1}`, ErrBadPayload, "cannot be posted"},
		{"reserved point time", "/d", FormatJSON, `{"time":1}`, ErrBadName, `point name "time" is reserved`},
		{"reserved point errors", "/d", FormatJSON, `{"errors":1}`, ErrBadName, "reserved"},
		{"reserved point set", "/d/set", FormatText, `1`, ErrBadName, "reserved"},
		{"reserved point stats", "/d", FormatJSON, `{"stats":1}`, ErrBadName, "reserved"},
		{"reserved device", "/status", FormatText, `1`, ErrBadName, `device name "status" is reserved`},
		{"reserved device availability", "/availability/x", FormatText, `1`, ErrBadName, "reserved"},
		{"plus in point", "/d", FormatJSON, `{"a+b":1}`, ErrBadName, `'+' is not allowed`},
		{"hash in device", "/d#1", FormatText, `1`, ErrBadName, `'#' is not allowed`},
		{"slash in point", "/d", FormatJSON, `{"a/b":1}`, ErrBadName, `"/" is not allowed`},
		{"empty point", "/d", FormatJSON, `{"":1}`, ErrBadName, "point name is empty"},
		{"empty path point", "/d/", FormatText, `1`, ErrBadName, "point name is empty"},
		{"control char in name", "/d", FormatJSON, `{"a\u0000":1}`, ErrBadName, "control character"},
		{"text invalid UTF-8", "/d", FormatText, "\xff", ErrBadPayload, "not valid UTF-8"},
		{"text number out of range", "/d", FormatText, "-1e999", ErrBadPayload, "out of range"},
		{"cbor empty map", "/d", FormatCBOR, "\xa0", ErrBadPayload, "no points"},
		{"senml cbor empty pack", "/d", FormatSenMLCBOR, "\x80", ErrBadPayload, "empty SenML pack"},
		{"octet-stream", "/d", 42, "\x01", ErrUnsupportedFormat, "unsupported Content-Format 42"},
		{"xml", "/d", 41, "<a/>", ErrUnsupportedFormat, "unsupported Content-Format 41"},
		{"root path", "/", FormatText, "1", ErrNotFound, "no device"},
		{"empty path", "", FormatText, "1", ErrNotFound, "no device"},
		{"three segments", "/a/b/c", FormatText, "1", ErrNotFound, "3 segments"},
		{"well-known", "/.well-known/core", FormatText, "1", ErrNotFound, "not a data path"},
		{"senml object", "/d", FormatSenMLJSON, `{"n":"a","v":1}`, ErrBadPayload, "JSON array of records"},
		{"senml empty", "/d", FormatSenMLJSON, `[]`, ErrBadPayload, "empty SenML pack"},
		{"senml not object record", "/d", FormatSenMLJSON, `[1]`, ErrBadPayload, "record 1 is not a JSON object"},
		{"senml no value", "/d", FormatSenMLJSON, `[{"n":"a"}]`, ErrBadPayload, "record 1 has no value"},
		{"senml empty record", "/d", FormatSenMLJSON, `[{}]`, ErrBadPayload, "has no value"},
		{"senml two values", "/d", FormatSenMLJSON, `[{"n":"a","v":1,"vs":"x"}]`, ErrBadPayload, "more than one"},
		{"senml wrong type", "/d", FormatSenMLJSON, `[{"n":1,"v":1}]`, ErrBadPayload, `field "n" must be a string`},
		{"senml vb null", "/d", FormatSenMLJSON, `[{"n":"a","vb":null}]`, ErrBadPayload, `must be true or false`},
		{"senml duplicate field", "/d", FormatSenMLJSON, `[{"n":"a","v":1,"v":2}]`, ErrBadPayload, `duplicate field "v"`},
		{"senml must understand", "/d", FormatSenMLJSON, `[{"n":"a","v":1,"foo_":2}]`, ErrBadPayload, `must-understand field "foo_"`},
		{"senml version", "/d", FormatSenMLJSON, `[{"bver":11,"n":"a","v":1}]`, ErrBadPayload, "version 11"},
		{"senml bad vd", "/d", FormatSenMLJSON, `[{"n":"a","vd":"!!"}]`, ErrBadPayload, "base64url"},
		{"senml reserved name", "/d", FormatSenMLJSON, `[{"bn":"d/","n":"time","v":1}]`, ErrBadName, `record 1: point name "time" is reserved`},
		{"senml slash in name", "/d", FormatSenMLJSON, `[{"n":"other/temp","v":1}]`, ErrBadName, `"/" is not allowed`},
		{"senml deeper name", "/d", FormatSenMLJSON, `[{"bn":"d/a/","n":"b","v":1}]`, ErrBadName, `"/" is not allowed`},
		{"senml wrong point on point path", "/d/p", FormatSenMLJSON, `[{"n":"q","v":1}]`, ErrBadPayload, `names point "q" but the request path names point "p"`},
		{"senml duplicate point", "/d", FormatSenMLJSON, `[{"n":"a","v":1},{"n":"a","v":2}]`, ErrBadPayload, `duplicate point "a" at time`},
		{"senml time out of range", "/d", FormatSenMLJSON, `[{"n":"a","v":1,"t":1e300}]`, ErrBadPayload, "out of range"},
		{"senml relative too far", "/d", FormatSenMLJSON, `[{"n":"a","v":1,"t":-1e9}]`, ErrBadPayload, "out of range"},
		{"senml value overflow", "/d", FormatSenMLJSON, `[{"bv":1e308,"n":"a","v":1e308}]`, ErrBadPayload, "value out of range"},
		{"senml deep unknown field", "/d", FormatSenMLJSON, `[{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `,"n":"a","v":1}]`, ErrBadPayload, "nested deeper"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, points, err := Decode(tc.path, tc.cf, []byte(tc.in), "", testNow)
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

func TestSenMLIntegerSumOverflowFallsBackToFloat(t *testing.T) {
	_, _, points, err := Decode("/d", FormatSenMLJSON, []byte(`[{"bv":9223372036854775807,"n":"a","v":1}]`), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := points[0].Value; got.Kind != bridge.KindNumber || got.Num != 9223372036854775808 {
		t.Fatalf("value = %+v", got)
	}
}

func TestValidNames(t *testing.T) {
	for _, name := range []string{"dev1", "a-b_c.d:e", "température", "time", "errors"} {
		if err := ValidDeviceName(name); err != nil {
			t.Errorf("ValidDeviceName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "set", "availability", "status", "stats", "a+b", "a#", "a/b", "\x00", "\xff", strings.Repeat("x", 256)} {
		if ValidDeviceName(name) == nil {
			t.Errorf("ValidDeviceName(%q) = nil", name)
		}
	}
	for _, name := range []string{"time", "errors", "set", "availability", "status", "stats"} {
		if ValidPointName(name) == nil {
			t.Errorf("ValidPointName(%q) = nil", name)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	payload := []byte(`{"temperature":21.5,"humidity":40,"pressure":1013.25,"battery":3.61,"door":false,"state":"idle","count":123456}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, _, _, err := Decode("/sensor-17", FormatJSON, payload, "", testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSenMLJSON(b *testing.B) {
	payload := []byte(`[{"bn":"sensor-17/","bt":1.7e9,"bu":"Cel","n":"temperature","v":21.5},{"n":"humidity","u":"%RH","v":40},{"n":"door","vb":false}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, _, _, err := Decode("/sensor-17", FormatSenMLJSON, payload, "", testNow); err != nil {
			b.Fatal(err)
		}
	}
}
