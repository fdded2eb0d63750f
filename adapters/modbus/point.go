package modbus

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// Protocol limits of one read request (Modbus Application Protocol
// v1.1b3, §6.1–6.4): the quantity a single read may ask for.
const (
	MaxReadBits      = 2000 // read coils (1) and read discrete inputs (2)
	MaxReadRegisters = 125  // read holding (3) and read input registers (4)
)

// MaxStringRegisters is the longest string point, in registers: one read.
const MaxStringRegisters = MaxReadRegisters

// Errors of Decode and Encode; test with errors.Is. The messages are written
// to be published as a point's bad-quality reason or a command's result.
var (
	// ErrNotFinite: a float register holds NaN or ±Inf, or scale and offset
	// take a reading beyond float64; or a value to write is not finite.
	ErrNotFinite = errors.New("not a finite number")
	// ErrOutOfRange: a value to write does not fit the point's type.
	ErrOutOfRange = errors.New("out of range")
	// ErrWrongKind: a value to write is of the wrong kind for the point
	// (a string for a number, a number for a string, ...).
	ErrWrongKind = errors.New("wrong kind of value")
)

// Table is one of the four Modbus data tables.
type Table uint8

// The Modbus tables, in the order a plan reads them. The zero Table is
// none of them, so that a Point literal without a table fails loudly.
const (
	TableCoil     Table = iota + 1 // read/write bits (function codes 1, 5, 15)
	TableDiscrete                  // read-only bits (2)
	TableInput                     // read-only registers (4)
	TableHolding                   // read/write registers (3, 6, 16)
)

// String returns the table's name as written in gateway.toml: "coil",
// "discrete", "input" or "holding".
func (t Table) String() string {
	switch t {
	case TableCoil:
		return "coil"
	case TableDiscrete:
		return "discrete"
	case TableInput:
		return "input"
	case TableHolding:
		return "holding"
	}
	return "Table(" + strconv.Itoa(int(t)) + ")"
}

// ParseTable parses a table name as written in gateway.toml (exact,
// lower case, like the config's own check).
func ParseTable(s string) (Table, error) {
	switch s {
	case "coil":
		return TableCoil, nil
	case "discrete":
		return TableDiscrete, nil
	case "input":
		return TableInput, nil
	case "holding":
		return TableHolding, nil
	}
	return 0, fmt.Errorf(`unknown table %q: use "coil", "discrete", "input" or "holding"`, s)
}

// IsBit reports whether the table holds single bits (coil, discrete).
func (t Table) IsBit() bool { return t == TableCoil || t == TableDiscrete }

// ReadFunction returns the function code that reads the table: 1 for
// coils, 2 for discrete inputs, 3 for holding and 4 for input registers.
func (t Table) ReadFunction() uint8 {
	switch t {
	case TableCoil:
		return 1
	case TableDiscrete:
		return 2
	case TableHolding:
		return 3
	case TableInput:
		return 4
	}
	return 0
}

// MaxRead returns how many bits or registers one read of the table may
// ask for: MaxReadBits or MaxReadRegisters.
func (t Table) MaxRead() int {
	if t.IsBit() {
		return MaxReadBits
	}
	return MaxReadRegisters
}

// unit names what the table counts: "bit" or "register".
func (t Table) unit() string {
	if t.IsBit() {
		return "bit"
	}
	return "register"
}

// Type is the data type of a point.
type Type uint8

// The point types of gateway.toml. The zero Type is none of them.
const (
	TypeBool Type = iota + 1
	TypeInt16
	TypeUint16
	TypeInt32
	TypeUint32
	TypeInt64
	TypeUint64
	TypeFloat32
	TypeFloat64
	TypeString
)

// String returns the type's name as written in gateway.toml ("uint16", ...).
func (t Type) String() string {
	switch t {
	case TypeBool:
		return "bool"
	case TypeInt16:
		return "int16"
	case TypeUint16:
		return "uint16"
	case TypeInt32:
		return "int32"
	case TypeUint32:
		return "uint32"
	case TypeInt64:
		return "int64"
	case TypeUint64:
		return "uint64"
	case TypeFloat32:
		return "float32"
	case TypeFloat64:
		return "float64"
	case TypeString:
		return "string"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType parses a type name as written in gateway.toml (exact, lower
// case).
func ParseType(s string) (Type, error) {
	for t := TypeBool; t <= TypeString; t++ {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf(`unknown type %q: use "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64" or "string"`, s)
}

// Registers returns the number of registers a value of the type takes:
// 1, 2 or 4; 0 for strings (their Length says) and unknown types.
func (t Type) Registers() int {
	switch t {
	case TypeBool, TypeInt16, TypeUint16:
		return 1
	case TypeInt32, TypeUint32, TypeFloat32:
		return 2
	case TypeInt64, TypeUint64, TypeFloat64:
		return 4
	}
	return 0
}

// isInteger reports whether t is one of the eight integer types.
func (t Type) isInteger() bool { return t >= TypeInt16 && t <= TypeUint64 }

// intRange returns the range of an integer type.
func (t Type) intRange() (lo int64, hi uint64) {
	switch t {
	case TypeInt16:
		return math.MinInt16, math.MaxInt16
	case TypeUint16:
		return 0, math.MaxUint16
	case TypeInt32:
		return math.MinInt32, math.MaxInt32
	case TypeUint32:
		return 0, math.MaxUint32
	case TypeInt64:
		return math.MinInt64, math.MaxInt64
	}
	return 0, math.MaxUint64
}

// Point is one typed Modbus point of a device: where it lives, how its
// registers make a value, and how that value is scaled.
//
// Byte orders (CONFIG.md, "Byte orders") name the bytes of the value from
// most to least significant, A first, in the order they are sent:
//
//   - 32-bit types (two registers): ABCD big-endian, BADC bytes swapped
//     within each register, CDAB registers swapped, DCBA little-endian.
//   - 64-bit types (four registers): ABCDEFGH, BADCFEHG, GHEFCDAB, HGFEDCBA,
//     the same four patterns; the 32-bit names are accepted and mean the
//     64-bit pattern of the same kind (ABCD = ABCDEFGH, BADC = BADCFEHG,
//     CDAB = GHEFCDAB, DCBA = HGFEDCBA), as the config allows both.
//   - One-register types (bool, int16, uint16) and strings: the config
//     accepts the four 32-bit names. Only the swap of bytes within a register
//     can apply to one register, so ABCD and CDAB mean high byte first (as
//     sent by the Modbus standard) and BADC and DCBA mean low byte first.
//     NewPoint normalizes them to "ABCD" or "BADC". For strings that is the
//     order of the two characters in each register; registers are always
//     in address order.
//
// Coil and discrete points are single bits; their Order is ignored (NewPoint
// normalizes it like a one-register type).
//
// In a Point literal a zero Scale means 1 and an empty Order "ABCD"; the
// zero Table and Type are invalid (Width 0: Decode and Encode refuse).
type Point struct {
	Name     string
	Table    Table
	Address  uint16 // zero-based address of the first register or bit
	Type     Type
	Order    string  // normalized by NewPoint, see above
	Length   int     // registers, for TypeString (1..MaxStringRegisters)
	Scale    float64 // value = raw * Scale + Offset (numeric types only)
	Offset   float64
	Unit     string // e.g. "degC"
	Writable bool   // commands may write it (coil and holding only)
}

// NewPoint makes a Point from a config point. It expects the checks of
// config.Load to have passed and repeats them, so that a point made by hand
// is refused with the same reasons. Empty table, type and order take the
// config's defaults (holding; uint16, or bool on coil and discrete; ABCD);
// a zero scale means 1. Scale and offset must be finite.
func NewPoint(c config.ModbusPoint) (Point, error) {
	p := Point{Name: c.Name, Length: c.Length, Scale: c.Scale, Offset: c.Offset, Unit: c.Unit, Writable: c.Writable}
	fail := func(format string, args ...any) (Point, error) {
		return Point{}, fmt.Errorf("point %q: %s", c.Name, fmt.Sprintf(format, args...))
	}
	var err error
	p.Table = TableHolding
	if c.Table != "" {
		if p.Table, err = ParseTable(c.Table); err != nil {
			return fail("%v", err)
		}
	}
	p.Type = TypeUint16
	if p.Table.IsBit() {
		p.Type = TypeBool
	}
	if c.Type != "" {
		if p.Type, err = ParseType(c.Type); err != nil {
			return fail("%v", err)
		}
	}
	if p.Table.IsBit() && p.Type != TypeBool {
		return fail("a %s is a single bit: its type is \"bool\", not %q", p.Table, p.Type)
	}
	order := c.Order
	if order == "" {
		order = "ABCD"
	}
	if _, ok := ptWirePattern(p.Type, order); !ok {
		if p.Type.Registers() == 4 {
			return fail(`unknown byte order %q for %s: use "ABCD", "BADC", "CDAB", "DCBA", "ABCDEFGH", "BADCFEHG", "GHEFCDAB" or "HGFEDCBA"`, c.Order, p.Type)
		}
		return fail(`unknown byte order %q for %s: use "ABCD", "BADC", "CDAB" or "DCBA"`, c.Order, p.Type)
	}
	p.Order = ptNormalOrder(p.Type, order)
	if p.Type == TypeString {
		if p.Length < 1 || p.Length > MaxStringRegisters {
			return fail("a string point needs length = 1..%d (registers), not %d", MaxStringRegisters, p.Length)
		}
	} else if p.Length != 0 {
		return fail("length is only for type = \"string\"")
	}
	if c.Address < 0 || c.Address > math.MaxUint16 {
		return fail("address %d is out of range 0..65535", c.Address)
	}
	p.Address = uint16(c.Address)
	if w := p.Width(); c.Address+w-1 > math.MaxUint16 {
		return fail("address %d: the %d registers of this point run past address 65535", c.Address, w)
	}
	if p.Scale == 0 {
		p.Scale = 1
	}
	if math.IsNaN(p.Scale) || math.IsInf(p.Scale, 0) {
		return fail("scale must be a finite number, not %v", p.Scale)
	}
	if math.IsNaN(p.Offset) || math.IsInf(p.Offset, 0) {
		return fail("offset must be a finite number, not %v", p.Offset)
	}
	if p.Writable && p.Table != TableCoil && p.Table != TableHolding {
		return fail("%s is a read-only table; only coil and holding points can be written", p.Table)
	}
	return p, nil
}

// ptWirePattern returns, for a numeric or bool type and a config byte order,
// the letters of the value's bytes (A most significant) in the order they
// are sent: 2, 4 or 8 letters. For strings it returns "AB" or "BA", the
// order of the two characters in a register. ok is false for an order the
// config refuses for the type (and for an unknown type).
func ptWirePattern(t Type, order string) (pattern string, ok bool) {
	if order == "" {
		order = "ABCD"
	}
	switch t.Registers() {
	case 1:
		return ptWirePattern1(order)
	case 2:
		switch order {
		case "ABCD", "BADC", "CDAB", "DCBA":
			return order, true
		}
	case 4:
		switch order {
		case "ABCD", "ABCDEFGH":
			return "ABCDEFGH", true
		case "BADC", "BADCFEHG":
			return "BADCFEHG", true
		case "CDAB", "GHEFCDAB":
			return "GHEFCDAB", true
		case "DCBA", "HGFEDCBA":
			return "HGFEDCBA", true
		}
	case 0:
		if t == TypeString {
			return ptWirePattern1(order)
		}
	}
	return "", false
}

func ptWirePattern1(order string) (string, bool) {
	switch order {
	case "ABCD", "CDAB":
		return "AB", true
	case "BADC", "DCBA":
		return "BA", true
	}
	return "", false
}

// ptNormalOrder returns the name NewPoint stores for a valid order.
func ptNormalOrder(t Type, order string) string {
	pat, _ := ptWirePattern(t, order)
	switch pat {
	case "AB":
		return "ABCD"
	case "BA":
		return "BADC"
	}
	return pat
}

// IsBit reports whether the point is a single bit (a coil or discrete
// input). Such points are read with DecodeBit and written with EncodeBit.
func (p *Point) IsBit() bool { return p.Table.IsBit() }

// Width returns how many registers the point occupies, or 1 for a bit: 1 for
// bool, int16 and uint16, 2 for the 32-bit and 4 for the 64-bit types, Length
// for strings. It is 0 for an unknown table or type.
func (p *Point) Width() int {
	switch {
	case p.Table.IsBit():
		return 1
	case p.Table != TableInput && p.Table != TableHolding:
		return 0
	case p.Type == TypeString:
		return max(p.Length, 0)
	}
	return p.Type.Registers()
}

// scale returns the point's scale, 1 for a zero Scale.
func (p *Point) scale() float64 {
	if p.Scale == 0 {
		return 1
	}
	return p.Scale
}

// unscaledInts reports whether integer points yield exact integers: scale 1
// and no offset.
func (p *Point) unscaledInts() bool { return p.scale() == 1 && p.Offset == 0 }

// divisor returns n when scale is exactly 1/n for an integer n ≥ 2 (0.1,
// 0.01, 0.5, ...). Dividing by n is correctly rounded where multiplying by
// 0.1 is not (215 * 0.1 = 21.500000000000004, 215 / 10 = 21.5), so a
// reading shows the decimal the device meant.
func (p *Point) divisor() float64 { return bridge.ScaleDivisor(p.scale()) }

// scaled returns raw * scale + offset.
func (p *Point) scaled(raw float64) float64 {
	if n := p.divisor(); n != 0 {
		return raw/n + p.Offset
	}
	return raw*p.scale() + p.Offset
}

// roundDecimal rounds v, a scaled integer reading, to the decimal places of
// scale and offset: an integer times 0.1 plus -273.15 has at most two, so
// 2981 gives 24.95, not 24.950000000000045. It leaves v alone when those
// places are too many for float64 to hold v exactly to them.
func (p *Point) roundDecimal(v float64) float64 {
	return bridge.RoundDecimals(v, max(bridge.Decimals(p.scale()), bridge.Decimals(p.Offset)))
}

// unscaled returns (v - offset) / scale, the inverse of scaled.
func (p *Point) unscaled(v float64) float64 {
	if n := p.divisor(); n != 0 {
		return (v - p.Offset) * n
	}
	return (v - p.Offset) / p.scale()
}

func ptFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Decode turns the point's Width() registers, as read, into its value:
//
//   - bool (on a register): Bool(register != 0); scale and offset do not
//     apply. On a coil or discrete point, Decode reads regs[0] != 0 the same
//     way (DecodeBit is the usual path).
//   - integer types with scale 1 and offset 0: Int. A uint64 above
//     math.MaxInt64 does not fit an Int and becomes a Number, rounded to
//     float64 (53 bits of precision).
//   - integer types with another scale or offset: Number(raw*scale+offset).
//   - float32 and float64: Number(raw*scale+offset). A float32 is first
//     widened to the shortest decimal that reads back as the same float32
//     (21.3, not 21.299999237060547). NaN and ±Inf in the register, or a
//     result beyond float64, are ErrNotFinite.
//   - string: two characters per register, in the point's byte order;
//     trailing NULs and spaces are trimmed and each byte that is not part of
//     valid UTF-8 becomes U+FFFD.
//
// A scale of the form 1/n (0.1, 0.01, ...) divides by n rather than
// multiplying, and a scaled integer reading is rounded to the decimal places
// of scale and offset, so that 215 with scale 0.1 is 21.5 (not
// 21.500000000000004) and 2981 with offset -273.15 more is 24.95. Decode of
// a non-string point does not allocate.
func (p *Point) Decode(regs []uint16) (bridge.Value, error) {
	if w := p.Width(); len(regs) != w || w == 0 {
		return bridge.Value{}, p.widthError(len(regs))
	}
	if p.Table.IsBit() || p.Type == TypeBool {
		return bridge.Bool(regs[0] != 0), nil
	}
	pat, ok := ptWirePattern(p.Type, p.Order)
	if !ok {
		return bridge.Value{}, fmt.Errorf("byte order %q is not valid for %s", p.Order, p.Type)
	}
	if p.Type == TypeString {
		return bridge.String(ptDecodeString(regs, pat == "BA")), nil
	}
	u := ptGather(regs, pat)
	var raw float64
	switch p.Type {
	case TypeFloat32:
		f := math.Float32frombits(uint32(u))
		if f != f || math.IsInf(float64(f), 0) {
			return bridge.Value{}, ErrNotFinite
		}
		raw = bridge.ShortestFloat32(f)
	case TypeFloat64:
		raw = math.Float64frombits(u)
		if !ptFinite(raw) {
			return bridge.Value{}, ErrNotFinite
		}
	default:
		i, big := p.Type.signExtend(u)
		if p.unscaledInts() && !big {
			return bridge.Int(i), nil
		}
		if big {
			raw = float64(u)
		} else {
			raw = float64(i)
		}
	}
	v := p.scaled(raw)
	if p.Type.isInteger() {
		v = p.roundDecimal(v)
	}
	if !ptFinite(v) {
		return bridge.Value{}, ErrNotFinite
	}
	return bridge.Number(v), nil
}

// signExtend returns the integer an integer type's raw bits mean. big is
// true for a uint64 above math.MaxInt64, which i cannot hold.
func (t Type) signExtend(u uint64) (i int64, big bool) {
	switch t {
	case TypeInt16:
		return int64(int16(u)), false
	case TypeUint16:
		return int64(uint16(u)), false
	case TypeInt32:
		return int64(int32(u)), false
	case TypeUint32:
		return int64(uint32(u)), false
	case TypeInt64:
		return int64(u), false
	}
	return int64(u), u > math.MaxInt64
}

func (p *Point) widthError(n int) error {
	w := p.Width()
	if w == 0 {
		return fmt.Errorf("point %q has no width (table %s, type %s, length %d)", p.Name, p.Table, p.Type, p.Length)
	}
	return fmt.Errorf("point %q takes %d %s(s), got %d", p.Name, w, p.Table.unit(), n)
}

// ptGather assembles the bytes of regs, sent in the order pattern names, into
// the big-endian value they stand for.
func ptGather(regs []uint16, pattern string) uint64 {
	var b [8]byte
	n := len(pattern)
	for i := 0; i < n; i++ {
		r := regs[i>>1]
		if i&1 == 0 {
			r >>= 8
		}
		b[pattern[i]-'A'] = byte(r)
	}
	var u uint64
	for i := 0; i < n; i++ {
		u = u<<8 | uint64(b[i])
	}
	return u
}

// ptScatter is the inverse of ptGather: it spreads the len(pattern) low bytes
// of u over regs in the order pattern names.
func ptScatter(u uint64, pattern string, regs []uint16) {
	var b [8]byte
	n := len(pattern)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte(u)
		u >>= 8
	}
	for i := 0; i < n; i++ {
		c := uint16(b[pattern[i]-'A'])
		if i&1 == 0 {
			regs[i>>1] = c << 8
		} else {
			regs[i>>1] |= c
		}
	}
}

// ptDecodeString reads two characters per register, high byte first unless
// swap, trims trailing NULs and spaces and replaces invalid UTF-8.
func ptDecodeString(regs []uint16, swap bool) string {
	b := make([]byte, 2*len(regs))
	for i, r := range regs {
		hi, lo := byte(r>>8), byte(r)
		if swap {
			hi, lo = lo, hi
		}
		b[2*i], b[2*i+1] = hi, lo
	}
	n := len(b)
	for n > 0 && (b[n-1] == 0 || b[n-1] == ' ') {
		n--
	}
	b = b[:n]
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return string(out)
}

// DecodeBit returns the value of a coil or discrete input: Bool(b).
func (p *Point) DecodeBit(b bool) bridge.Value { return bridge.Bool(b) }

// Encode turns a value to write into the point's Width() registers, the
// inverse of Decode:
//
//   - bool: Bool, or the numbers 0 and 1; written as 1 or 0.
//   - integer types: a Number or Int v becomes round((v - offset) / scale),
//     rounding half away from zero. A raw value outside the type's range is
//     ErrOutOfRange ("value 70000 out of range for uint16 (0..65535)"). An
//     Int with scale 1 and offset 0 is converted exactly. A Number reaches a
//     64-bit type through float64, which cannot tell 2^63-1 from 2^63 (nor
//     2^64-1 from 2^64): the float64 nearest the maximum writes the maximum.
//   - float32 and float64: (v - offset) / scale, rounded to the type; beyond
//     the type's range is ErrOutOfRange.
//   - string: a String, two bytes per register in the point's byte order,
//     padded with NULs to Length registers; longer is ErrOutOfRange.
//
// A non-finite number is ErrNotFinite; a value of another kind (a bool or a
// string for a number, ...) is ErrWrongKind.
func (p *Point) Encode(v bridge.Value) ([]uint16, error) {
	if p.Width() == 0 {
		return nil, p.widthError(0)
	}
	if p.Table.IsBit() || p.Type == TypeBool {
		b, err := p.EncodeBit(v)
		if err != nil {
			return nil, err
		}
		if b {
			return []uint16{1}, nil
		}
		return []uint16{0}, nil
	}
	pat, ok := ptWirePattern(p.Type, p.Order)
	if !ok {
		return nil, fmt.Errorf("byte order %q is not valid for %s", p.Order, p.Type)
	}
	if p.Type == TypeString {
		if v.Kind != bridge.KindString {
			return nil, fmt.Errorf("%w: a string point takes a string, not a %s", ErrWrongKind, v.Kind)
		}
		if len(v.Str) > 2*p.Length {
			return nil, fmt.Errorf("%w: a string of %d bytes does not fit %d register(s) (%d bytes)", ErrOutOfRange, len(v.Str), p.Length, 2*p.Length)
		}
		return ptEncodeString(v.Str, p.Length, pat == "BA"), nil
	}
	u, err := p.encodeNumber(v)
	if err != nil {
		return nil, err
	}
	regs := make([]uint16, p.Type.Registers())
	ptScatter(u, pat, regs)
	return regs, nil
}

// encodeNumber returns the raw bits of a numeric type for v.
func (p *Point) encodeNumber(v bridge.Value) (uint64, error) {
	if v.Kind == bridge.KindInt && p.Type.isInteger() && p.unscaledInts() {
		lo, hi := p.Type.intRange()
		if v.Int < lo || (v.Int > 0 && uint64(v.Int) > hi) {
			return 0, p.rangeError(float64(v.Int), strconv.FormatInt(v.Int, 10))
		}
		return uint64(v.Int), nil
	}
	var f float64
	switch v.Kind {
	case bridge.KindNumber:
		f = v.Num
	case bridge.KindInt:
		f = float64(v.Int)
	default:
		return 0, fmt.Errorf("%w: a %s point takes a number, not a %s", ErrWrongKind, p.Type, v.Kind)
	}
	if !ptFinite(f) {
		return 0, fmt.Errorf("value %v: %w", f, ErrNotFinite)
	}
	raw := p.unscaled(f)
	switch p.Type {
	case TypeFloat32:
		x := float32(raw)
		if math.IsInf(float64(x), 0) || math.IsNaN(raw) {
			return 0, p.rangeError(f, "")
		}
		return uint64(math.Float32bits(x)), nil
	case TypeFloat64:
		if !ptFinite(raw) {
			return 0, p.rangeError(f, "")
		}
		return math.Float64bits(raw), nil
	}
	r := math.Round(raw)
	lo, hi := p.Type.intRange()
	switch {
	case math.IsNaN(r) || r < float64(lo) || r > float64(hi):
		return 0, p.rangeError(f, "")
	case r == float64(hi) && hi > 1<<53:
		// float64(MaxInt64) is 2^63 and float64(MaxUint64) is 2^64: the
		// nearest a float64 gets to the maximum means the maximum.
		return hi, nil
	case r < 0:
		return uint64(int64(r)), nil
	}
	return uint64(r), nil
}

// rangeError reports a value the point's type cannot hold, with the range
// in the units the value was given in. text, when set, is the value's exact
// decimal form.
func (p *Point) rangeError(f float64, text string) error {
	if text == "" {
		text = ptFormatFloat(f)
	}
	var lo, hi float64
	var los, his string
	switch p.Type {
	case TypeFloat32:
		lo, hi = -math.MaxFloat32, math.MaxFloat32
	case TypeFloat64:
		lo, hi = -math.MaxFloat64, math.MaxFloat64
	default:
		l, h := p.Type.intRange()
		lo, hi = float64(l), float64(h)
		los, his = strconv.FormatInt(l, 10), strconv.FormatUint(h, 10)
	}
	if p.scale() == 1 && p.Offset == 0 {
		if los == "" {
			los, his = ptFormatFloat(lo), ptFormatFloat(hi)
		}
		return fmt.Errorf("value %s %w for %s (%s..%s)", text, ErrOutOfRange, p.Type, los, his)
	}
	lo, hi = p.scaled(lo), p.scaled(hi)
	if lo > hi {
		lo, hi = hi, lo
	}
	return fmt.Errorf("value %s %w for %s with scale %s and offset %s (%s..%s)", text, ErrOutOfRange, p.Type,
		ptFormatFloat(p.scale()), ptFormatFloat(p.Offset), ptFormatFloat(lo), ptFormatFloat(hi))
}

// ptFormatFloat formats f for a message the way it would appear in JSON
// (2147483648, not 2.147483648e+09).
func ptFormatFloat(f float64) string {
	if !ptFinite(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	var buf [32]byte
	return string(bridge.AppendFloat(buf[:0], f))
}

// ptEncodeString writes s into n registers, two bytes each (low byte first
// if swap), padded with NULs.
func ptEncodeString(s string, n int, swap bool) []uint16 {
	regs := make([]uint16, n)
	for i := 0; i < n; i++ {
		var hi, lo byte
		if 2*i < len(s) {
			hi = s[2*i]
		}
		if 2*i+1 < len(s) {
			lo = s[2*i+1]
		}
		if swap {
			hi, lo = lo, hi
		}
		regs[i] = uint16(hi)<<8 | uint16(lo)
	}
	return regs
}

// EncodeBit returns the state to write to a coil: a Bool, or the numbers 0
// and 1 (Int or Number). Anything else is ErrWrongKind. It is also how a
// bool point on a register reads its value to write.
func (p *Point) EncodeBit(v bridge.Value) (bool, error) {
	switch v.Kind {
	case bridge.KindBool:
		return v.Bool, nil
	case bridge.KindInt:
		if v.Int == 0 || v.Int == 1 {
			return v.Int == 1, nil
		}
		return false, fmt.Errorf("%w: value %d is not a bool (true, false, 0 or 1)", ErrWrongKind, v.Int)
	case bridge.KindNumber:
		if v.Num == 0 || v.Num == 1 {
			return v.Num == 1, nil
		}
		return false, fmt.Errorf("%w: value %s is not a bool (true, false, 0 or 1)", ErrWrongKind, ptFormatFloat(v.Num))
	}
	return false, fmt.Errorf("%w: a bool point takes true, false, 0 or 1, not a %s", ErrWrongKind, v.Kind)
}
