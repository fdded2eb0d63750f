package coap

import (
	"bytes"
	"encoding/base64"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/causeway/causeway/bridge"
)

// The CBOR fuzz targets check checkDecode's properties, then compare with
// JSON: a payload that decodes as CBOR is transcoded to JSON independently
// (the library's generic decoding into any, then hand-written JSON) and must
// decode as JSON to the same points. Seeds: testdata/fuzz/FuzzDecodeCBOR*/.

func FuzzDecodeCBOR(f *testing.F) {
	f.Add("/dev1", []byte("\xa2\x6btemperature\xf9\x4d\x60\x61n\x03"))
	f.Fuzz(func(t *testing.T, path string, payload []byte) {
		checkDecode(t, path, FormatCBOR, payload)
		device, readings, err := DecodeAll(path, FormatCBOR, payload, "", testNow)
		if err != nil {
			return
		}
		js, ok := cborToJSON(t, payload, false)
		if !ok {
			return
		}
		jd, jr, err := DecodeAll(path, FormatJSON, js, "", testNow)
		if err != nil {
			t.Fatalf("CBOR %q decodes, its JSON %s does not: %v", payload, js, err)
		}
		if jd != device || len(jr) != 1 || len(readings) != 1 || !samePoints(readings[0].Points, jr[0].Points) {
			t.Fatalf("CBOR %q: %q %+v\nJSON %s: %q %+v", payload, device, readings, js, jd, jr)
		}
	})
}

func FuzzDecodeSenMLCBOR(f *testing.F) {
	f.Add("/dev1", []byte("\x81\xa4\x21\x65dev1/\x22\x1a\x65\x53\xf1\x00\x00\x61t\x02\x01"))
	f.Fuzz(func(t *testing.T, path string, payload []byte) {
		checkDecode(t, path, FormatSenMLCBOR, payload)
		device, readings, err := DecodeAll(path, FormatSenMLCBOR, payload, "", testNow)
		if err != nil {
			return
		}
		js, ok := cborToJSON(t, payload, true)
		if !ok {
			return
		}
		jd, jr, err := DecodeAll(path, FormatSenMLJSON, js, "", testNow)
		if err != nil {
			t.Fatalf("SenML CBOR %q decodes, its JSON %s does not: %v", payload, js, err)
		}
		if jd != device || !reflect.DeepEqual(jr, readings) {
			t.Fatalf("SenML CBOR %q: %q %+v\nJSON %s: %q %+v", payload, device, readings, js, jd, jr)
		}
	})
}

// samePoints compares points by name (the library's maps lose the order);
// bytes, which JSON cannot carry, are compared as their base64 text.
func samePoints(a, b []bridge.Point) bool {
	norm := func(ps []bridge.Point) []bridge.Point {
		out := slices.Clone(ps)
		for i, p := range out {
			if p.Value.Kind == bridge.KindBytes {
				out[i].Value = bridge.String(base64.StdEncoding.EncodeToString(p.Value.Bytes))
			}
		}
		slices.SortFunc(out, func(x, y bridge.Point) int { return strings.Compare(x.Name, y.Name) })
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// cborToJSON transcodes a CBOR payload that this package accepted into the
// JSON (senml: SenML JSON) with the same content, by way of the library's
// generic decoding into any. ok is false when the content has no JSON
// equivalent to compare with.
func cborToJSON(t *testing.T, payload []byte, senml bool) (js []byte, ok bool) {
	var v any
	if err := cbor.Unmarshal(payload, &v); err != nil {
		if senml {
			// An ignored field may hold what the generic decoding cannot
			// (a map with byte-string or array keys).
			return nil, false
		}
		t.Fatalf("%q: accepted, but the library's generic decoding fails: %v", payload, err)
	}
	if !senml {
		return appendJSONValue(nil, v, true, false)
	}
	recs, isArray := v.([]any)
	if !isArray {
		t.Fatalf("%q: accepted as SenML, but not an array: %T", payload, v)
	}
	js = append(js, '[')
	for i, r := range recs {
		m, isMap := r.(map[any]any)
		if !isMap {
			t.Fatalf("%q: accepted as SenML, but record %d is a %T", payload, i+1, r)
		}
		if i > 0 {
			js = append(js, ',')
		}
		js = append(js, '{')
		first := true
		for label, val := range m {
			name := senmlLabelName(label)
			if name == "" {
				continue // ignored by both decoders
			}
			if !first {
				js = append(js, ',')
			}
			first = false
			js = bridge.AppendJSONString(js, name)
			js = append(js, ':')
			if name == "vd" {
				b, isBytes := val.([]byte)
				if !isBytes {
					t.Fatalf("%q: vd accepted as a %T", payload, val)
				}
				js = bridge.AppendJSONString(js, base64.RawURLEncoding.EncodeToString(b))
				continue
			}
			if js, ok = appendJSONValue(js, val, false, true); !ok {
				return nil, false
			}
		}
		js = append(js, '}')
	}
	return append(js, ']'), true
}

// senmlLabelName is the JSON name of a SenML CBOR label, or "" for a label
// both decoders ignore.
func senmlLabelName(label any) string {
	switch l := label.(type) {
	case uint64:
		if l <= 8 {
			return senmlCBORLabels[l+6]
		}
	case int64:
		if l >= -6 && l <= -1 {
			return senmlCBORLabels[l+6]
		}
	case string:
		if slices.Contains(senmlCBORLabels[:], l) {
			return l
		}
	}
	return ""
}

// appendJSONValue appends the JSON form of a value decoded by the library:
// a map only at the top (keys sorted: the comparison ignores order), bytes
// as base64 text (not in SenML, where vd is handled apart). Floats keep a
// fraction or an exponent so that they stay floats in JSON.
func appendJSONValue(js []byte, v any, top, senml bool) ([]byte, bool) {
	switch x := v.(type) {
	case uint64:
		return strconv.AppendUint(js, x, 10), true
	case int64:
		return strconv.AppendInt(js, x, 10), true
	case big.Int:
		return x.Append(js, 10), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return append(js, s...), true
	case bool:
		return strconv.AppendBool(js, x), true
	case string:
		return bridge.AppendJSONString(js, x), true
	case []byte:
		if senml {
			return nil, false
		}
		return bridge.AppendJSONString(js, base64.StdEncoding.EncodeToString(x)), true
	case map[any]any:
		if !top || senml {
			return nil, false
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			s, isString := k.(string)
			if !isString {
				return nil, false
			}
			keys = append(keys, s)
		}
		slices.Sort(keys)
		js = append(js, '{')
		for i, k := range keys {
			if i > 0 {
				js = append(js, ',')
			}
			js = bridge.AppendJSONString(js, k)
			js = append(js, ':')
			var ok bool
			if js, ok = appendJSONValue(js, x[k], false, false); !ok {
				return nil, false
			}
		}
		return append(js, '}'), true
	}
	return nil, false
}

// TestCBORToJSON pins the transcoder the fuzz targets rely on.
func TestCBORToJSON(t *testing.T) {
	for _, tc := range []struct {
		in    string
		senml bool
		want  string
	}{
		{"\xa3\x61b\xf9\x40\x00\x61a\x3b\xff\xff\xff\xff\xff\xff\xff\xff\x61c\x43abc", false, `{"a":-18446744073709551616,"b":2.0,"c":"YWJj"}`},
		{"\x81\xa3\x00\x61t\x08\x43hi?\x09\x01", true, `[{"n":"t","vd":"aGk_"}]`},
	} {
		js, ok := cborToJSON(t, []byte(tc.in), tc.senml)
		// SenML maps come out in any order: compare sorted bytes for the
		// one-field-pair case, the whole text otherwise.
		if !ok || (!tc.senml && string(js) != tc.want) || (tc.senml && !sameBytes(js, []byte(tc.want))) {
			t.Errorf("%q: %s, %v; want %s", tc.in, js, ok, tc.want)
		}
	}
}

func sameBytes(a, b []byte) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return bytes.Equal(a, b)
}
