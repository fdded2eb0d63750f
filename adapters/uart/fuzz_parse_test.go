package uart

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// The fuzz targets of the parsers; their seeds are in
// testdata/fuzz/FuzzParse*/. Each checks the promises every parser keeps
// (psCheck): no panic; on success at least one point, every point name
// passes bridge.CheckPointName, the device is "" or passes
// bridge.CheckDeviceName, no name twice, numbers finite, strings valid
// UTF-8, dst kept, and the same result when parsed again; on error no
// device and dst unchanged.

// psCheck parses payload after a point already in dst and checks the
// promises above. It returns the frame's points and error.
func psCheck(t *testing.T, p Parser, payload []byte) ([]bridge.Point, string, error) {
	t.Helper()
	prev := bridge.Point{Name: "previous", Value: bridge.Int(7)}
	in := append(make([]bridge.Point, 0, 4), prev)
	device, points, err := p.Parse(payload, in)
	if err != nil {
		if device != "" || len(points) != 1 || !reflect.DeepEqual(points[0], prev) {
			t.Fatalf("Parse(%q) failed (%v) but returned %q, %v", payload, err, device, points)
		}
		if err.Error() == "" {
			t.Fatalf("Parse(%q): empty error text", payload)
		}
		return nil, "", err
	}
	if len(points) < 2 || !reflect.DeepEqual(points[0], prev) {
		t.Fatalf("Parse(%q) = %v: want dst kept and at least one point", payload, points)
	}
	points = points[1:]
	if device != "" {
		if err := bridge.CheckDeviceName(device); err != nil {
			t.Fatalf("Parse(%q) device %q: %v", payload, device, err)
		}
	}
	seen := map[string]bool{}
	for _, pt := range points {
		if err := bridge.CheckPointName(pt.Name); err != nil {
			t.Fatalf("Parse(%q) point %q: %v", payload, pt.Name, err)
		}
		if seen[pt.Name] {
			t.Fatalf("Parse(%q): point %q twice in %v", payload, pt.Name, points)
		}
		seen[pt.Name] = true
		if !pt.Good() || pt.Unit != "" {
			t.Fatalf("Parse(%q): point %+v", payload, pt)
		}
		switch v := pt.Value; v.Kind {
		case bridge.KindNumber:
			if math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
				t.Fatalf("Parse(%q): point %q = %v", payload, pt.Name, v.Num)
			}
		case bridge.KindString:
			if !utf8.ValidString(v.Str) {
				t.Fatalf("Parse(%q): point %q = invalid UTF-8 %q", payload, pt.Name, v.Str)
			}
		case bridge.KindInt, bridge.KindBool:
		default:
			t.Fatalf("Parse(%q): point %q of kind %s", payload, pt.Name, v.Kind)
		}
	}
	again, points2, err := p.Parse(payload, nil)
	if err != nil || again != device || !reflect.DeepEqual(points2, points) {
		t.Fatalf("Parse(%q) again = %q, %v, %v; first %q, %v", payload, again, points2, err, device, points)
	}
	return points, device, nil
}

func FuzzParseRegex(f *testing.F) {
	f.Fuzz(func(t *testing.T, pattern string, payload []byte) {
		p, err := NewParser(config.UART{Parser: "regex", Pattern: pattern})
		if err != nil {
			return
		}
		points, device, err := psCheck(t, p, payload)
		if err != nil {
			return
		}
		// Every point is a group of the pattern, every value a text value.
		re := p.(*psRegex).re
		for _, pt := range points {
			if re.SubexpIndex(pt.Name) < 0 || pt.Name == "device" {
				t.Fatalf("point %q is not a group of %q", pt.Name, pattern)
			}
		}
		if device != "" && re.SubexpIndex("device") < 0 {
			t.Fatalf("device %q without a device group in %q", device, pattern)
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	p := psMust(f, config.UART{Parser: "json"})
	f.Fuzz(func(t *testing.T, payload []byte) {
		points, device, err := psCheck(t, p, payload)
		if err != nil {
			return
		}
		// Against encoding/json: what this parser accepts is a valid JSON
		// object, and the points are its non-null members.
		if !json.Valid(payload) {
			t.Fatalf("Parse(%q) succeeded on invalid JSON", payload)
		}
		d := json.NewDecoder(bytes.NewReader(payload))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("Parse(%q) succeeded; encoding/json: %v", payload, err)
		}
		if dv, ok := m["device"]; ok && dv != nil && dv != device {
			t.Fatalf("Parse(%q) device %q; encoding/json %v", payload, device, dv)
		}
		for _, pt := range points {
			want, ok := m[pt.Name]
			if !ok {
				t.Fatalf("Parse(%q): point %q is not a key", payload, pt.Name)
			}
			if want == nil {
				continue // {"a":1,"a":null}: encoding/json keeps the last
			}
			if !psSameJSON(pt.Value, want) {
				t.Fatalf("Parse(%q): point %q = %+v; encoding/json %#v", payload, pt.Name, pt.Value, want)
			}
		}
	})
}

// psSameJSON reports whether v is the value encoding/json decoded as want
// (with UseNumber).
func psSameJSON(v bridge.Value, want any) bool {
	switch w := want.(type) {
	case bool:
		return v.Kind == bridge.KindBool && v.Bool == w
	case string:
		return v.Kind == bridge.KindString && v.Str == w
	case json.Number:
		if v.Kind == bridge.KindInt {
			i, err := strconv.ParseInt(string(w), 10, 64)
			return err == nil && i == v.Int
		}
		f, err := strconv.ParseFloat(string(w), 64)
		return v.Kind == bridge.KindNumber && err == nil && f == v.Num
	}
	return false
}

func FuzzParseKV(f *testing.F) {
	p := psMust(f, config.UART{Parser: "kv"})
	f.Fuzz(func(t *testing.T, payload []byte) {
		points, _, err := psCheck(t, p, payload)
		if err != nil {
			return
		}
		// Every point name is in the frame, followed by '='.
		for _, pt := range points {
			if !bytes.Contains(payload, []byte(pt.Name+"=")) {
				t.Fatalf("Parse(%q): point %q is not a key", payload, pt.Name)
			}
		}
	})
}

func FuzzParseCSV(f *testing.F) {
	columns := []string{"device", "temperature", "humidity", "state"}
	p := psMust(f, config.UART{Parser: "csv", Columns: columns})
	f.Fuzz(func(t *testing.T, payload []byte) {
		points, _, err := psCheck(t, p, payload)
		if err != nil {
			return
		}
		// Points are columns, in column order.
		next := 1
		for _, pt := range points {
			for next < len(columns) && columns[next] != pt.Name {
				next++
			}
			if next == len(columns) {
				t.Fatalf("Parse(%q): points %v are not columns in order", payload, points)
			}
			next++
		}
	})
}

// psFuzzScales are the scales FuzzParseBinary picks from.
func psFuzzScales() []float64 {
	return []float64{1, 0.1, 0.01, 2, -1, 0.5, 1e300, 1.0 / 3, 0, 1e-300}
}

// psFuzzFields makes binary fields from layout, 4 bytes per field: type,
// order, offset, scale.
func psFuzzFields(layout []byte) []config.UARTField {
	types := []string{"bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", ""}
	orders := []string{"big", "little", "", "middle"}
	scales := psFuzzScales()
	var fields []config.UARTField
	for i := 0; i+4 <= len(layout) && len(fields) < 16; i += 4 {
		fields = append(fields, config.UARTField{
			Name:   "f" + strconv.Itoa(len(fields)),
			Type:   types[int(layout[i])%len(types)],
			Order:  orders[int(layout[i+1])%len(orders)],
			Offset: int(layout[i+2]) % 40,
			Scale:  scales[int(layout[i+3])%len(scales)],
		})
	}
	return fields
}

func FuzzParseBinary(f *testing.F) {
	f.Fuzz(func(t *testing.T, layout, payload []byte) {
		fields := psFuzzFields(layout)
		p, err := NewParser(config.UART{Parser: "binary", Fields: fields})
		if err != nil {
			return
		}
		points, device, err := psCheck(t, p, payload)
		need := 0
		for _, fd := range p.(*psBinary).fields {
			need = max(need, fd.offset+fd.size)
		}
		if len(payload) < need {
			if err == nil {
				t.Fatalf("Parse(%x) succeeded on %d bytes; fields need %d", payload, len(payload), need)
			}
			return
		}
		if err != nil {
			return
		}
		if device != "" || len(points) != len(fields) {
			t.Fatalf("Parse(%x) = %q, %v; want one point per field", payload, device, points)
		}
		for i, pt := range points {
			fd := fields[i]
			switch {
			case pt.Name != fd.Name:
				t.Fatalf("point %d is %q, want %q", i, pt.Name, fd.Name)
			case fd.Type == "bool" && (pt.Value.Kind != bridge.KindBool || pt.Value.Bool != (payload[fd.Offset] != 0)):
				t.Fatalf("bool field %q = %+v from %x", fd.Name, pt.Value, payload[fd.Offset])
			case pt.Value.Kind == bridge.KindInt && fd.Scale != 1 && fd.Scale != 0:
				t.Fatalf("field %q with scale %v is an Int", fd.Name, fd.Scale)
			}
		}
	})
}
