package modbus

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

// FuzzDecode decodes random registers as a random point: Decode never
// panics, and a value it returns can be written back: Encode gives
// registers that decode to the same value (exactly, or within float
// precision for scaled numbers).
func FuzzDecode(f *testing.F) {
	orders := [...]string{"ABCD", "BADC", "CDAB", "DCBA", "ABCDEFGH", "BADCFEHG", "GHEFCDAB", "HGFEDCBA", "", "XYZ"}
	f.Add([]byte{0x42, 0xF6, 0xE9, 0x79}, uint8(TypeFloat32), uint8(0), 1.0, 0.0, uint8(0))
	f.Add([]byte{0xFF, 0xFE}, uint8(TypeInt16), uint8(1), 0.1, -40.0, uint8(0))
	f.Add([]byte{0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, uint8(TypeUint64), uint8(6), 1.0, 0.0, uint8(0))
	f.Add([]byte("HELLO\x00"), uint8(TypeString), uint8(0), 1.0, 0.0, uint8(3))
	f.Add([]byte{0x7F, 0xF0, 0, 0, 0, 0, 0, 1}, uint8(TypeFloat64), uint8(4), 1.0, 0.0, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, typ, order uint8, scale, offset float64, length uint8) {
		p := Point{Name: "f", Table: TableHolding, Type: Type(typ % 12), Order: orders[int(order)%len(orders)],
			Length: int(length % 130), Scale: scale, Offset: offset}
		if typ >= 240 {
			p.Table = Table(typ % 6)
		}
		regs := make([]uint16, max(p.Width(), 0))
		for i := range regs {
			if 2*i+1 < len(data) {
				regs[i] = binary.BigEndian.Uint16(data[2*i:])
			}
		}
		v, err := p.Decode(regs)
		p.Decode(append(regs, 1)) // the wrong number of registers
		if p.Width() > 0 {
			p.Decode(regs[1:])
		}
		if err != nil {
			return
		}
		if v.Kind == bridge.KindString && !utf8.ValidString(v.Str) {
			t.Fatalf("Decode(%04X) = invalid UTF-8 %q", regs, v.Str)
		}
		if v.Kind == bridge.KindNumber && !ptFinite(v.Num) {
			t.Fatalf("Decode(%04X) = %v", regs, v.Num)
		}
		back, err := p.Encode(v)
		if !ptFinite(p.scale()) || !ptFinite(offset) {
			return // NewPoint refuses such points; no promises beyond no panic
		}
		if err != nil {
			if fzPrecisionLimited(&p, v) && errors.Is(err, ErrOutOfRange) {
				return
			}
			if v.Kind == bridge.KindString && len(v.Str) > 2*p.Length && errors.Is(err, ErrOutOfRange) {
				return // invalid bytes became U+FFFD, three bytes each
			}
			t.Fatalf("%+v: Decode(%04X) = %#v; Encode: %v", p, regs, v, err)
		}
		v2, err := p.Decode(back)
		if err != nil {
			t.Fatalf("%+v: Decode(%04X) = %#v; Encode = %04X; Decode: %v", p, regs, v, back, err)
		}
		if !fzClose(&p, v, v2) {
			t.Fatalf("%+v: Decode(%04X) = %#v; Encode = %04X; Decode = %#v", p, regs, v, back, v2)
		}
	})
}

// fzPrecisionLimited reports whether float64 cannot be trusted to carry v
// back to raw registers: the offset or v swamps a step of the raw value,
// the scale is tiny, or v is near the end of the type's range.
func fzPrecisionLimited(p *Point, v bridge.Value) bool {
	s := math.Abs(p.scale())
	if s < 1e-290 || s > 1e290 {
		return true
	}
	f, _ := v.Float()
	if (math.Abs(f)+math.Abs(p.Offset))*1e-15 > s/4 {
		return true
	}
	switch p.Type {
	case TypeFloat32:
		return math.Abs(p.unscaled(f)) > math.MaxFloat32/2
	case TypeFloat64:
		return math.Abs(f) > math.MaxFloat64/4 || math.Abs(p.Offset) > math.MaxFloat64/4
	}
	return false
}

// fzClose compares a decoded value with the decoding of its re-encoding.
func fzClose(p *Point, a, b bridge.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case bridge.KindNumber:
		if a.Num == b.Num {
			return true
		}
		if fzPrecisionLimited(p, a) {
			return true
		}
		tol := 1e-12 * (math.Abs(a.Num) + math.Abs(p.Offset))
		if p.Type == TypeFloat32 {
			tol = 2e-7 * (math.Abs(a.Num) + math.Abs(p.Offset))
		}
		if p.Type.isInteger() {
			tol += math.Abs(p.scale()) / 2
		}
		tol = max(tol, 1e-300)
		return math.Abs(a.Num-b.Num) <= tol
	case bridge.KindInt:
		return a.Int == b.Int
	case bridge.KindBool:
		return a.Bool == b.Bool
	case bridge.KindString:
		return a.Str == b.Str
	}
	return false
}

// FuzzPlan plans random points (four bytes each: table, type, address) with
// a random maxGap and checks the invariants of plCheck, including that the
// plan is as small as MinimalReads, and, for a few points, as small as the
// exhaustive search finds.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{3, 2, 0, 0, 3, 2, 0, 124, 3, 2, 0, 125}, 8)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 7, 207, 0, 0, 7, 208}, 2000)
	f.Add([]byte{3, 9, 0, 5, 3, 4, 0, 10, 3, 2, 0, 11, 2, 7, 0, 10}, 0)
	f.Add([]byte{3, 0x99, 0, 0, 3, 2, 0, 2, 3, 2, 0, 12}, 2)
	f.Fuzz(func(t *testing.T, data []byte, maxGap int) {
		var pts []Point
		for i := 0; i+4 <= len(data) && len(pts) < 64; i += 4 {
			tb := Table(1 + data[i]%4)
			ty := Type(1 + data[i+1]%10)
			if tb.IsBit() {
				ty = TypeBool
			}
			length := 0
			if ty == TypeString {
				length = 1 + int(data[i+1]>>4)*8
			}
			addr := int(data[i+2])<<8 | int(data[i+3])
			if data[i]&0x80 == 0 {
				addr %= 600 // mostly close together
			}
			p := Point{Name: "p", Table: tb, Type: ty, Length: length, Address: uint16(addr), Order: "ABCD", Scale: 1}
			if addr+p.Width() > 65536 {
				continue
			}
			pts = append(pts, p)
		}
		maxGap %= 2100
		reads := Plan(pts, nil, maxGap)
		plCheck(t, pts, nil, maxGap, reads)
		if len(pts) <= 9 {
			idx := make([]int, len(pts))
			for i := range idx {
				idx[i] = i
			}
			if bf := plBruteForce(pts, idx, maxGap); bf != len(reads) {
				t.Fatalf("%d reads, the exhaustive search finds %d: %v", len(reads), bf, reads)
			}
		}
		for _, r := range reads {
			if h := Split(r, pts); h != nil {
				if len(h[0].Points)+len(h[1].Points) != len(r.Points) {
					t.Fatalf("Split(%v) = %v", r, h)
				}
			}
		}
	})
}
