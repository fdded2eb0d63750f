package uart

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// psCase is one frame for a parser: the device and points it must yield, or
// the error (a substring of its text, or a sentinel for errors.Is).
type psCase struct {
	name    string
	payload string
	device  string
	points  []bridge.Point
	err     string
	is      error
}

func psPt(name string, v bridge.Value) bridge.Point { return bridge.Point{Name: name, Value: v} }

func psN(f float64) bridge.Value { return bridge.Number(f) }
func psI(i int64) bridge.Value   { return bridge.Int(i) }
func psB(b bool) bridge.Value    { return bridge.Bool(b) }
func psS(s string) bridge.Value  { return bridge.String(s) }

// psRun parses each case after a point already in dst, which must be kept.
func psRun(t *testing.T, p Parser, cases []psCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prev := psPt("previous", psI(1))
			dst := make([]bridge.Point, 1, 8)
			dst[0] = prev
			device, points, err := p.Parse([]byte(tc.payload), dst)
			if tc.err != "" || tc.is != nil {
				if err == nil {
					t.Fatalf("Parse(%q) = %q, %v; want an error", tc.payload, device, points[1:])
				}
				if tc.err != "" && !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Parse(%q) error %q; want it to contain %q", tc.payload, err, tc.err)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("Parse(%q) error %q; want errors.Is %v", tc.payload, err, tc.is)
				}
				if device != "" || len(points) != 1 || !reflect.DeepEqual(points[0], prev) {
					t.Errorf("Parse(%q) with error %q returned %q, %v; want \"\" and dst unchanged", tc.payload, err, device, points)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.payload, err)
			}
			if device != tc.device {
				t.Errorf("Parse(%q) device = %q; want %q", tc.payload, device, tc.device)
			}
			if len(points) == 0 || !reflect.DeepEqual(points[0], prev) {
				t.Fatalf("Parse(%q) did not keep dst: %v", tc.payload, points)
			}
			if got := points[1:]; !reflect.DeepEqual(got, tc.points) {
				t.Errorf("Parse(%q) points\n got %v\nwant %v", tc.payload, got, tc.points)
			}
		})
	}
}

func psMust(t testing.TB, c config.UART) Parser {
	t.Helper()
	p, err := NewParser(c)
	if err != nil {
		t.Fatalf("NewParser(%+v): %v", c, err)
	}
	return p
}

const psBenchPattern = `^(?P<device>\w+) T=(?P<temperature>-?[\d.]+) H=(?P<humidity>\d+)$`

func TestParseRegex(t *testing.T) {
	p := psMust(t, config.UART{Parser: "regex", Pattern: psBenchPattern})
	psRun(t, p, []psCase{
		{name: "good", payload: "boiler T=21.5 H=40", device: "boiler",
			points: []bridge.Point{psPt("temperature", psN(21.5)), psPt("humidity", psI(40))}},
		{name: "negative integer", payload: "b2 T=-3 H=0", device: "b2",
			points: []bridge.Point{psPt("temperature", psI(-3)), psPt("humidity", psI(0))}},
		{name: "not a JSON number is a string", payload: "b T=21. H=40", device: "b",
			points: []bridge.Point{psPt("temperature", psS("21.")), psPt("humidity", psI(40))}},
		{name: "beyond int64 is a number", payload: "b T=1 H=99999999999999999999", device: "b",
			points: []bridge.Point{psPt("temperature", psI(1)), psPt("humidity", psN(1e20))}},
		{name: "no match", payload: "boiler T=21.5", err: "no match for pattern"},
		{name: "trailing space does not match", payload: "boiler T=21.5 H=40 ", err: "no match"},
		{name: "reserved device", payload: "stats T=1 H=2", err: `device name "stats" is reserved`},
		{name: "reserved device status", payload: "status T=1 H=2", err: "reserved"},
		{name: "invalid UTF-8", payload: "b\xff T=1 H=2", err: "not valid UTF-8"},
		{name: "blank", payload: " \r\n", is: ErrEmpty},
		{name: "empty", payload: "", is: ErrEmpty},
	})

	opt := psMust(t, config.UART{Pattern: `^T=(?P<t>\S*)(?: S=(?P<s>\S+))?(?: D=(?P<device>\S*))?$`})
	psRun(t, opt, []psCase{
		{name: "group out of the match", payload: "T=5", points: []bridge.Point{psPt("t", psI(5))}},
		{name: "bool and string", payload: "T=true S=on", points: []bridge.Point{psPt("t", psB(true)), psPt("s", psS("on"))}},
		{name: "false", payload: "T=false", points: []bridge.Point{psPt("t", psB(false))}},
		{name: "exponent", payload: "T=1e3", points: []bridge.Point{psPt("t", psN(1000))}},
		{name: "empty group left out", payload: "T= S=x", points: []bridge.Point{psPt("s", psS("x"))}},
		{name: "empty device group names none", payload: "T=1 D=", points: []bridge.Point{psPt("t", psI(1))}},
		{name: "device", payload: "T=1 D=x-1", device: "x-1", points: []bridge.Point{psPt("t", psI(1))}},
		{name: "device with slash", payload: "T=1 D=a/b", err: `"/"`},
		{name: "device with wildcard", payload: "T=1 D=a+", err: "wildcard"},
		{name: "no points", payload: "T=", is: ErrNoPoints},
		{name: "number out of range", payload: "T=1e999", err: `group t: number "1e999" is out of range`},
	})

	dup := psMust(t, config.UART{Pattern: `^(?:T=(?P<t>\d+)|temp=(?P<t>\d+))(?: again=(?P<t>\d+))?(?: (?P<device>a)(?P<device>b)?)?$`})
	psRun(t, dup, []psCase{
		{name: "one of two groups", payload: "temp=7", points: []bridge.Point{psPt("t", psI(7))}},
		{name: "both take part", payload: "T=1 again=2", err: `point "t" appears twice`},
		{name: "device twice", payload: "T=1 ab", err: "device twice"},
		{name: "device once", payload: "T=1 a", device: "a", points: []bridge.Point{psPt("t", psI(1))}},
	})
}

func TestNewParserErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    config.UART
		err  string
	}{
		{"unknown parser", config.UART{Parser: "xml"}, `unknown parser "xml"`},
		{"no pattern", config.UART{Parser: "regex"}, "needs a pattern"},
		{"bad pattern", config.UART{Pattern: "(?P<a>"}, "invalid pattern"},
		{"reserved group", config.UART{Pattern: `(?P<time>\d+)`}, `point name "time" is reserved`},
		{"reserved group stats", config.UART{Pattern: `(?P<a>\d)(?P<stats>\d+)`}, "reserved"},
		{"only device group", config.UART{Pattern: `(?P<device>\w+) (\d+)`}, "no named group"},
		{"no columns", config.UART{Parser: "csv"}, "needs columns"},
		{"reserved column", config.UART{Parser: "csv", Columns: []string{"a", "errors"}}, `point name "errors" is reserved`},
		{"column with slash", config.UART{Parser: "csv", Columns: []string{"a/b"}}, `"/"`},
		{"empty column", config.UART{Parser: "csv", Columns: []string{"a", ""}}, "empty"},
		{"column twice", config.UART{Parser: "csv", Columns: []string{"a", "b", "a"}}, `column "a" appears twice`},
		{"device column twice", config.UART{Parser: "csv", Columns: []string{"device", "a", "device"}}, `column "device" appears twice`},
		{"only the device column", config.UART{Parser: "csv", Columns: []string{"device"}}, "no points"},
		{"no fields", config.UART{Parser: "binary"}, "at least one [[uart.field]]"},
		{"string field", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "s", Type: "string"}}}, `unknown type "string"`},
		{"no type", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "s"}}}, `unknown type ""`},
		{"bad order", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "s", Type: "int16", Order: "ABCD"}}}, `unknown byte order "ABCD"`},
		{"negative offset", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "s", Type: "int16", Offset: -1}}}, "negative"},
		{"NaN scale", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "s", Type: "int16", Scale: math.NaN()}}}, "finite"},
		{"Inf scale", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "s", Type: "int16", Scale: math.Inf(1)}}}, "finite"},
		{"reserved field", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "availability", Type: "bool"}}}, "reserved"},
		{"field twice", config.UART{Parser: "binary", Fields: []config.UARTField{{Name: "a", Type: "bool"}, {Name: "a", Type: "int16", Offset: 1}}}, `field 2 ("a"): the name is already taken`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewParser(tc.c)
			if err == nil {
				t.Fatalf("NewParser = %T; want an error containing %q", p, tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NewParser error %q; want it to contain %q", err, tc.err)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	p := psMust(t, config.UART{Parser: "json"})
	long := strings.Repeat("x", 100)
	psRun(t, p, []psCase{
		{name: "good", payload: `{"device":"boiler","t":21.5,"n":40,"ok":true,"off":false,"s":"x","z":null}`, device: "boiler",
			points: []bridge.Point{psPt("t", psN(21.5)), psPt("n", psI(40)), psPt("ok", psB(true)), psPt("off", psB(false)), psPt("s", psS("x"))}},
		{name: "white space", payload: " \t{ \"a\" : 1 , \"b\":\"\" }\r\n", points: []bridge.Point{psPt("a", psI(1)), psPt("b", psS(""))}},
		{name: "exponent is a number", payload: `{"n":1e2,"m":1.0,"k":-0}`, points: []bridge.Point{psPt("n", psN(100)), psPt("m", psN(1)), psPt("k", psI(0))}},
		{name: "int64 range", payload: `{"max":9223372036854775807,"min":-9223372036854775808,"over":9223372036854775808}`,
			points: []bridge.Point{psPt("max", psI(math.MaxInt64)), psPt("min", psI(math.MinInt64)), psPt("over", psN(9223372036854775808))}},
		{name: "escapes", payload: `{"na\u00efve":"a\"b\n\\\/","e":"\ud83d\ude00","lone":"\ud800x"}`,
			points: []bridge.Point{psPt("naïve", psS("a\"b\n\\/")), psPt("e", psS("😀")), psPt("lone", psS("\uFFFDx"))}},
		{name: "device null names none", payload: `{"device":null,"a":1}`, points: []bridge.Point{psPt("a", psI(1))}},
		{name: "device escaped", payload: `{"a":1,"device":"b\u00fcro"}`, device: "büro", points: []bridge.Point{psPt("a", psI(1))}},
		{name: "null key left out", payload: `{"a":null,"b":2}`, points: []bridge.Point{psPt("b", psI(2))}},

		{name: "nested object", payload: `{"a":1,"pos":{"x":1}}`, err: `key "pos" (offset 13): nested objects are not supported`},
		{name: "array value", payload: `{"list":[1,2]}`, err: `key "list" (offset 8): arrays are not supported`},
		{name: "array", payload: `[{"a":1}]`, err: "arrays are not supported"},
		{name: "bare value", payload: `21.5`, err: "bare JSON value"},
		{name: "bare bad value", payload: `nope`, err: "invalid JSON at offset 0"},
		{name: "unterminated", payload: `{"a":1`, err: "unexpected end of input, expecting ',' or '}'"},
		{name: "missing colon", payload: `{"a" 1}`, err: `invalid character '1', expecting ':'`},
		{name: "trailing data", payload: `{"a":1}x`, err: "unexpected data after the object"},
		{name: "trailing object", payload: `{"a":1}{"b":2}`, err: "unexpected data after the object"},
		{name: "unquoted key", payload: `{a:1}`, err: "expecting a string key"},
		{name: "leading zero", payload: `{"a":01}`, err: "expecting ',' or '}'"},
		{name: "bad literal", payload: `{"a":tru}`, err: "expecting a value"},
		{name: "bad number", payload: `{"a":-}`, err: "expecting a digit"},
		{name: "bad fraction", payload: `{"a":1.}`, err: "expecting a digit"},
		{name: "trailing comma", payload: `{"a":1,}`, err: "expecting a string key"},
		{name: "control character", payload: "{\"a\":\"x\ty\"}", err: "control character 0x09"},
		{name: "bad escape", payload: `{"a":"\x"}`, err: `invalid escape "\x"`},
		{name: "bad unicode escape", payload: `{"a":"\u12"}`, err: `invalid \u escape`},
		{name: "unterminated string", payload: `{"a":"x`, err: "unterminated string"},
		{name: "out of range", payload: `{"a":1e999}`, err: `key "a": invalid JSON at offset 5: number "1e999" is out of range`},
		{name: "reserved time", payload: `{"time":1}`, err: `point name "time" is reserved`},
		{name: "reserved errors", payload: `{"errors":1}`, err: `point name "errors" is reserved`},
		{name: "reserved set", payload: `{"set":1}`, err: "reserved"},
		{name: "reserved null", payload: `{"stats":null}`, err: "reserved"},
		{name: "slash", payload: `{"a/b":1}`, err: `"/"`},
		{name: "wildcard", payload: `{"a#":1}`, err: "wildcard"},
		{name: "control character in key", payload: `{"a\nb":1}`, err: "control character"},
		{name: "empty key", payload: `{"":1}`, err: "point name is empty"},
		{name: "long key quoted short", payload: `{"` + long + `/":1}`, err: `"` + long[:64] + `"…`},
		{name: "device not a string", payload: `{"device":5,"a":1}`, err: "device name must be a string"},
		{name: "device object", payload: `{"device":{},"a":1}`, err: "nested objects"},
		{name: "device reserved", payload: `{"device":"set","a":1}`, err: `device name "set" is reserved`},
		{name: "device empty", payload: `{"device":"","a":1}`, err: "device name is empty"},
		{name: "device twice", payload: `{"device":"a","device":"b","x":1}`, err: "device twice"},
		{name: "duplicate key", payload: `{"a":1,"b":2,"a":3}`, err: `point "a" appears twice`},
		{name: "empty object", payload: `{}`, is: ErrNoPoints},
		{name: "only nulls", payload: `{"a":null,"device":"x"}`, is: ErrNoPoints},
		{name: "blank", payload: "\r\n", is: ErrEmpty},
		{name: "invalid UTF-8", payload: "{\"a\":\"\xff\"}", err: "not valid UTF-8"},
	})
}

func TestParseKV(t *testing.T) {
	p := psMust(t, config.UART{Parser: "kv"})
	psRun(t, p, []psCase{
		{name: "good", payload: "device=boiler T=21.5 H=40", device: "boiler",
			points: []bridge.Point{psPt("T", psN(21.5)), psPt("H", psI(40))}},
		{name: "separators", payload: " T=21.5,H=40;ok=true ,; off=false\t\r\n", points: []bridge.Point{
			psPt("T", psN(21.5)), psPt("H", psI(40)), psPt("ok", psB(true)), psPt("off", psB(false))}},
		{name: "quoted", payload: `name="a b" q="say \"hi\" \\ \n" n="1.5" e=""`, points: []bridge.Point{
			psPt("name", psS("a b")), psPt("q", psS(`say "hi" \ \n`)), psPt("n", psS("1.5")), psPt("e", psS(""))}},
		{name: "quoted separators", payload: `a="x=1, y;2" b=2`, points: []bridge.Point{psPt("a", psS("x=1, y;2")), psPt("b", psI(2))}},
		{name: "equals in value", payload: "a=b=c", points: []bridge.Point{psPt("a", psS("b=c"))}},
		{name: "quote in value", payload: `a=5"`, points: []bridge.Point{psPt("a", psS(`5"`))}},
		{name: "empty value left out", payload: "T= H=1", points: []bridge.Point{psPt("H", psI(1))}},
		{name: "empty device names none", payload: "device= H=1", points: []bridge.Point{psPt("H", psI(1))}},
		{name: "quoted device", payload: `device="boiler 2" H=1`, device: "boiler 2", points: []bridge.Point{psPt("H", psI(1))}},
		{name: "unicode", payload: "température=21 état=bon", points: []bridge.Point{psPt("température", psI(21)), psPt("état", psS("bon"))}},

		{name: "no equals", payload: "T 21", err: `"T" at offset 0 is not key=value`},
		{name: "no equals later", payload: "T=1 junk", err: `"junk" at offset 4 is not key=value`},
		{name: "empty key", payload: "=5", err: "point name is empty"},
		{name: "reserved time", payload: "time=1", err: `point name "time" is reserved`},
		{name: "reserved availability", payload: "a=1 availability=2", err: "reserved"},
		{name: "slash", payload: "a/b=1", err: `"/"`},
		{name: "device reserved", payload: "device=stats T=1", err: `device name "stats" is reserved`},
		{name: "device quoted empty", payload: `device="" T=1`, err: "device name is empty"},
		{name: "device twice", payload: "device=a device=b T=1", err: "device twice"},
		{name: "duplicate", payload: "T=1 H=2 T=3", err: `point "T" appears twice`},
		{name: "unterminated quote", payload: `a="x y`, err: `key "a": quoted value at offset 2 has no closing quote`},
		{name: "escaped closing quote", payload: `a="x\"`, err: "no closing quote"},
		{name: "text after quote", payload: `a="x"y`, err: `key "a": text after the closing quote at offset 4`},
		{name: "out of range", payload: "a=-1e999", err: `key "a": number "-1e999" is out of range`},
		{name: "invalid UTF-8", payload: "a=\xc3", err: "not valid UTF-8"},
		{name: "only empty values", payload: "a= b=", is: ErrNoPoints},
		{name: "only separators", payload: ",;,", is: ErrNoPoints},
		{name: "blank", payload: "  ", is: ErrEmpty},
	})
}

func TestParseKVManyPoints(t *testing.T) {
	p := psMust(t, config.UART{Parser: "kv"})
	var b strings.Builder
	var want []bridge.Point
	for i := range 40 {
		fmt.Fprintf(&b, "p%d=%d ", i, i)
		want = append(want, psPt(fmt.Sprintf("p%d", i), psI(int64(i))))
	}
	psRun(t, p, []psCase{
		{name: "40 points", payload: b.String(), points: want},
		{name: "duplicate past the linear scan", payload: b.String() + "p39=1", err: `point "p39" appears twice`},
		{name: "duplicate early", payload: b.String() + "p0=1", err: `point "p0" appears twice`},
	})
}

func TestParseCSV(t *testing.T) {
	p := psMust(t, config.UART{Parser: "csv", Columns: []string{"device", "temperature", "humidity", "state"}})
	psRun(t, p, []psCase{
		{name: "good", payload: "boiler,21.5,40,ok", device: "boiler",
			points: []bridge.Point{psPt("temperature", psN(21.5)), psPt("humidity", psI(40)), psPt("state", psS("ok"))}},
		{name: "trimmed", payload: " boiler , 21.5 ,40,\tok \r", device: "boiler",
			points: []bridge.Point{psPt("temperature", psN(21.5)), psPt("humidity", psI(40)), psPt("state", psS("ok"))}},
		{name: "empty field left out", payload: "boiler,21.5,,true", device: "boiler",
			points: []bridge.Point{psPt("temperature", psN(21.5)), psPt("state", psB(true))}},
		{name: "no device", payload: ",21.5,40,ok",
			points: []bridge.Point{psPt("temperature", psN(21.5)), psPt("humidity", psI(40)), psPt("state", psS("ok"))}},
		{name: "quoted", payload: `"boiler 1","21.5", 40 , "a, ""b"""`, device: "boiler 1",
			points: []bridge.Point{psPt("temperature", psS("21.5")), psPt("humidity", psI(40)), psPt("state", psS(`a, "b"`))}},
		{name: "quoted empty is a string", payload: `b,1,2,""`, device: "b",
			points: []bridge.Point{psPt("temperature", psI(1)), psPt("humidity", psI(2)), psPt("state", psS(""))}},
		{name: "quoted with spaces", payload: `b, " x " ,2,3`, device: "b",
			points: []bridge.Point{psPt("temperature", psS(" x ")), psPt("humidity", psI(2)), psPt("state", psI(3))}},
		{name: "quoted newline", payload: "b,1,2,\"l1\nl2\"", device: "b",
			points: []bridge.Point{psPt("temperature", psI(1)), psPt("humidity", psI(2)), psPt("state", psS("l1\nl2"))}},
		{name: "quote in unquoted field", payload: `b,5",2,3`, device: "b",
			points: []bridge.Point{psPt("temperature", psS(`5"`)), psPt("humidity", psI(2)), psPt("state", psI(3))}},

		{name: "too few fields", payload: "boiler,21.5,40", err: "3 fields, but 4 columns are configured"},
		{name: "too many fields", payload: "boiler,21.5,40,ok,extra", err: "5 fields, but 4 columns"},
		{name: "trailing comma", payload: "boiler,21.5,40,ok,", err: "5 fields, but 4 columns"},
		{name: "quoted comma counts once", payload: `boiler,"1,2",3`, err: "3 fields, but 4 columns"},
		{name: "reserved device", payload: "stats,1,2,3", err: `field 1 (device): device name "stats" is reserved`},
		{name: "quoted empty device", payload: `"",1,2,3`, err: "device name is empty"},
		{name: "device with slash", payload: "a/b,1,2,3", err: `"/"`},
		{name: "unterminated quote", payload: `b,"x,40,ok`, err: "field 2: quoted field has no closing quote"},
		{name: "text after quote", payload: `b,"x"y,40,ok`, err: "field 2: text after the closing quote"},
		{name: "out of range", payload: "b,1e999,1,1", err: `field 2 (temperature): number "1e999" is out of range`},
		{name: "invalid UTF-8", payload: "b,\xff,1,1", err: "not valid UTF-8"},
		{name: "only empty fields", payload: ",,,", is: ErrNoPoints},
		{name: "only the device", payload: "b,,,", is: ErrNoPoints},
		{name: "blank", payload: "\r", is: ErrEmpty},
	})

	one := psMust(t, config.UART{Parser: "csv", Columns: []string{"v"}})
	psRun(t, one, []psCase{
		{name: "one column", payload: "-0.5", points: []bridge.Point{psPt("v", psN(-0.5))}},
		{name: "two fields", payload: "1,2", err: "2 fields, but 1 columns"},
	})
}

func TestParseBinary(t *testing.T) {
	fields := []config.UARTField{
		{Name: "temperature", Offset: 0, Type: "int16", Order: "big", Scale: 0.01},
		{Name: "humidity", Offset: 2, Type: "uint16", Order: "little", Scale: 1},
		{Name: "flag", Offset: 4, Type: "bool", Scale: 10},
		{Name: "f32", Offset: 5, Type: "float32", Order: "big", Scale: 1},
		{Name: "i32", Offset: 9, Type: "int32", Order: "little", Scale: 1},
		{Name: "u32", Offset: 13, Type: "uint32", Order: "big"}, // zero scale means 1
		{Name: "i64", Offset: 17, Type: "int64", Order: "little", Scale: 1},
		{Name: "u64", Offset: 25, Type: "uint64", Order: "big", Scale: 1},
		{Name: "f64", Offset: 33, Type: "float64", Order: "little", Scale: 1},
	}
	p := psMust(t, config.UART{Parser: "binary", Fields: fields})
	frame := string([]byte{
		0xF7, 0x9D, // -2147 → -21.47
		0x28, 0x00, // 40 little endian
		0x02,                   // true
		0x41, 0xAA, 0x66, 0x66, // float32 21.3
		0xFE, 0xFF, 0xFF, 0xFF, // int32 -2 little endian
		0xFF, 0xFF, 0xFF, 0xFF, // uint32 4294967295
		0x01, 0, 0, 0, 0, 0, 0, 0x80, // int64 MinInt64+1 little endian
		0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // uint64 max → Number
		0, 0, 0, 0, 0, 0, 0xF8, 0x3F, // float64 1.5 little endian
		0xAA, // ignored
	})
	all := []bridge.Point{
		psPt("temperature", psN(-21.47)), psPt("humidity", psI(40)), psPt("flag", psB(true)),
		psPt("f32", psN(21.3)), psPt("i32", psI(-2)), psPt("u32", psI(4294967295)),
		psPt("i64", psI(math.MinInt64+1)), psPt("u64", psN(18446744073709551615)), psPt("f64", psN(1.5)),
	}
	psRun(t, p, []psCase{
		{name: "all types", payload: frame, points: all},
		{name: "exact length", payload: frame[:41], points: all},
		{name: "one byte short", payload: frame[:40], err: `field "f64": float64 at offset 33 needs a frame of 41 bytes, got 40`},
		{name: "short first field", payload: "\x01", err: `field "temperature": int16 at offset 0 needs a frame of 2 bytes, got 1`},
		{name: "empty", payload: "", is: ErrEmpty},
	})

	scaled := psMust(t, config.UART{Parser: "binary", Fields: []config.UARTField{
		{Name: "tenth", Offset: 0, Type: "uint16", Scale: 0.1},
		{Name: "double", Offset: 0, Type: "uint16", Scale: 2},
		{Name: "neg", Offset: 0, Type: "uint16", Scale: -0.5},
		{Name: "f", Offset: 2, Type: "float32", Scale: 0.1},
		{Name: "b", Offset: 2, Type: "bool", Order: "little"},
	}})
	psRun(t, scaled, []psCase{
		{name: "scales", payload: "\x00\xD7\x41\xAA\x66\x66", points: []bridge.Point{
			psPt("tenth", psN(21.5)), psPt("double", psN(430)), psPt("neg", psN(-107.5)), psPt("f", psN(2.13)), psPt("b", psB(true))}},
		{name: "zero", payload: "\x00\x00\x00\x00\x00\x00", points: []bridge.Point{
			psPt("tenth", psN(0)), psPt("double", psN(0)), psPt("neg", psN(0)), psPt("f", psN(0)), psPt("b", psB(false))}},
		{name: "NaN", payload: "\x00\x00\x7F\xC0\x00\x00", err: `field "f": float32 NaN is not a finite number`},
		{name: "Inf", payload: "\x00\x00\xFF\x80\x00\x00", err: `field "f": float32 -Inf is not a finite number`},
	})

	big := psMust(t, config.UART{Parser: "binary", Fields: []config.UARTField{
		{Name: "f", Type: "float64", Order: "big", Scale: 10},
	}})
	psRun(t, big, []psCase{
		{name: "scaled beyond float64", payload: "\x7F\xEF\xFF\xFF\xFF\xFF\xFF\xFF", err: `field "f": 1.7976931348623157e+308 times scale 10 is not a finite number`},
		{name: "NaN", payload: "\x7F\xF8\x00\x00\x00\x00\x00\x01", err: `field "f": float64 NaN is not a finite number`},
		{name: "Inf", payload: "\x7F\xF0\x00\x00\x00\x00\x00\x00", err: "+Inf is not a finite number"},
		{name: "finite", payload: "\x3F\xF8\x00\x00\x00\x00\x00\x00", points: []bridge.Point{psPt("f", psN(15))}},
	})
}

func TestParseDefaultParserIsRegex(t *testing.T) {
	p := psMust(t, config.UART{Pattern: `v=(?P<v>\d+)`})
	psRun(t, p, []psCase{{name: "unanchored", payload: "x v=12 y", points: []bridge.Point{psPt("v", psI(12))}}})
}

// TestParseNamesBounded feeds more distinct keys than a parser remembers.
func TestParseNamesBounded(t *testing.T) {
	p := psMust(t, config.UART{Parser: "kv"}).(*psKV)
	for i := range 3 * psMaxInterned {
		payload := fmt.Sprintf("device=d%d k%d=1", i, i)
		if _, _, err := p.Parse([]byte(payload), nil); err != nil {
			t.Fatal(err)
		}
		if n := len(p.names.points) + len(p.names.devices); n > 2*psMaxInterned {
			t.Fatalf("after %d frames the parser remembers %d names", i+1, n)
		}
	}
	// A reserved name is never remembered as good.
	for range 2 {
		if _, _, err := p.Parse([]byte("stats=1"), nil); err == nil {
			t.Fatal("stats=1 parsed")
		}
	}
}

// TestParseConcurrent runs one parser from several goroutines (for -race).
func TestParseConcurrent(t *testing.T) {
	parsers := []struct {
		p       Parser
		payload string
	}{
		{psMust(t, config.UART{Parser: "json"}), `{"device":"d%d","t%d":21.5}`},
		{psMust(t, config.UART{Parser: "kv"}), `device=d%d t%d=21.5`},
		{psMust(t, config.UART{Parser: "regex", Pattern: `^(?P<device>\w+) (?P<t>\d+)$`}), `d%d %d`},
		{psMust(t, config.UART{Parser: "csv", Columns: []string{"device", "t"}}), `d%d,%d`},
	}
	for _, x := range parsers {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				var dst []bridge.Point
				for i := range 200 {
					n := (g*200 + i) % 300
					device, points, err := x.p.Parse(fmt.Appendf(nil, x.payload, n, n), dst[:0])
					if err != nil || device != fmt.Sprintf("d%d", n) || len(points) != 1 {
						t.Errorf("%T: %q, %v, %v", x.p, device, points, err)
						return
					}
					dst = points
				}
			})
		}
		wg.Wait()
	}
}

// TestParseAllocs holds the hot paths to their allocations once names are
// known: none for json, kv, csv and binary frames of numbers, and the one
// result slice of regexp for regex.
func TestParseAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, b := range psBenchCases() {
		dst := make([]bridge.Point, 0, 16)
		if _, _, err := b.p.Parse(b.payload, dst); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		got := testing.AllocsPerRun(100, func() { b.p.Parse(b.payload, dst) })
		if got > b.allocs {
			t.Errorf("%s: %v allocations per frame; want at most %v", b.name, got, b.allocs)
		}
	}
}

type psBench struct {
	name    string
	p       Parser
	payload []byte
	allocs  float64
}

func psBenchCases() []psBench {
	must := func(c config.UART) Parser {
		p, err := NewParser(c)
		if err != nil {
			panic(err)
		}
		return p
	}
	return []psBench{
		{"Regex", must(config.UART{Parser: "regex", Pattern: psBenchPattern}), []byte("boiler T=21.5 H=40"), 1},
		{"JSON", must(config.UART{Parser: "json"}), []byte(`{"device":"boiler","temperature":21.5,"humidity":40,"ok":true}`), 0},
		{"KV", must(config.UART{Parser: "kv"}), []byte("device=boiler temperature=21.5 humidity=40 ok=true"), 0},
		{"CSV", must(config.UART{Parser: "csv", Columns: []string{"device", "temperature", "humidity", "ok"}}), []byte("boiler,21.5,40,true"), 0},
		{"Binary", must(config.UART{Parser: "binary", Fields: []config.UARTField{
			{Name: "temperature", Offset: 0, Type: "int16", Order: "big", Scale: 0.01},
			{Name: "humidity", Offset: 2, Type: "uint16", Order: "little", Scale: 1},
			{Name: "pressure", Offset: 4, Type: "float32", Order: "big", Scale: 1},
			{Name: "ok", Offset: 8, Type: "bool", Scale: 1},
		}}), []byte{0x08, 0x63, 0x28, 0x00, 0x44, 0x7D, 0x40, 0x00, 0x01}, 0},
	}
}

func psBenchmark(b *testing.B, name string) {
	for _, c := range psBenchCases() {
		if c.name != name {
			continue
		}
		dst := make([]bridge.Point, 0, 16)
		b.ReportAllocs()
		b.SetBytes(int64(len(c.payload)))
		for b.Loop() {
			_, points, err := c.p.Parse(c.payload, dst[:0])
			if err != nil {
				b.Fatal(err)
			}
			dst = points
		}
	}
}

func BenchmarkParseRegex(b *testing.B)  { psBenchmark(b, "Regex") }
func BenchmarkParseJSON(b *testing.B)   { psBenchmark(b, "JSON") }
func BenchmarkParseKV(b *testing.B)     { psBenchmark(b, "KV") }
func BenchmarkParseCSV(b *testing.B)    { psBenchmark(b, "CSV") }
func BenchmarkParseBinary(b *testing.B) { psBenchmark(b, "Binary") }
