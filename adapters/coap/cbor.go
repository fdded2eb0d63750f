package coap

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"

	"github.com/causeway/causeway/bridge"
)

// CBOR (RFC 8949) support: application/cbor (60) and application/senml+cbor
// (112, RFC 8428 §6).
//
// application/cbor mirrors application/json exactly: a map of text keys →
// values (the points, in the order sent), or one bare value (the point named
// by the path, else the default point). Values are integers (major types 0
// and 1: an integer when it fits in int64, else a number, as JSON does for
// big integer literals), floats of any width (half, single, double: always
// a number, even 2.0, as JSON's 2.0), booleans, text strings and byte
// strings (bridge.Bytes). Null and undefined are refused like JSON's null;
// NaN and ±Infinity, which JSON cannot express, are refused; nested maps and
// arrays are refused with JSON's diagnostics; so are non-text map keys, an
// empty map, and duplicate keys (the duplicate point check shared with
// JSON). A top-level array is refused with a hint to use Content-Format 112.
//
// application/senml+cbor is a CBOR array of maps with the integer labels of
// RFC 8428 Table 4 (bver -1, bn -2, bt -3, bu -4, bv -5, bs -6, n 0, u 1,
// v 2, vs 3, vb 4, s 5, t 6, ut 7, vd 8). The records are then resolved by
// resolveSenML exactly as SenML JSON records are. Differences from JSON: vd
// is a byte string (not base64url text); a text label is the string form
// of a label (RFC 8428 §12.2: new labels are text in CBOR), so "n" is n
// (giving both 0 and "n" in one record is a duplicate field), an unknown
// text label ending in '_' is a must-understand error, other unknown text
// or integer labels are ignored; a label that is neither an integer nor a
// text string is an error.
//
// Decisions on the CBOR encoding itself, for both formats:
//   - The whole payload is checked for well-formedness first (by the
//     library), then walked item by item; max_payload bounds the input and
//     everything decoded is a copy of part of it, so memory is bounded by
//     the payload size.
//   - Nesting is at most cborMaxNested levels of arrays and maps (a SenML
//     pack uses 2, leaving 2 for the values of ignored fields); arrays and
//     maps hold at most cborMaxItems elements or pairs.
//   - Indefinite-length strings, arrays and maps are accepted: RFC 8949
//     allows them, streaming encoders on small devices emit them, and they
//     cost no more memory than definite lengths.
//   - Tags are refused (4.00), bignums (tags 2 and 3) included, except one
//     leading self-described CBOR tag 55799 (d9 d9 f7, RFC 8949 §3.4.6),
//     which is skipped.
//   - Text strings must be valid UTF-8. Simple values other than false,
//     true, null and undefined are refused.
//   - Trailing data after the top-level item is refused.

const (
	cborMaxNested = 4
	cborMaxItems  = 4096
)

// CBOR major types (RFC 8949 §3.1).
const (
	cborUint   = 0
	cborNegInt = 1
	cborBytes  = 2
	cborText   = 3
	cborArray  = 4
	cborMap    = 5
	cborTag    = 6
	cborSimple = 7 // simple values and floats
)

// cborDecMode is the one decoding mode of this package, built on first use;
// a cbor.DecMode is immutable and safe for concurrent use. DupMapKey only
// matters where the library decodes a whole map, which this package does
// not do today: duplicate points and SenML fields are caught with JSON's
// diagnostics (checkDuplicates, the field bits), and duplicate keys inside
// the value of an ignored SenML field are ignored, as in JSON.
var cborDecMode = sync.OnceValue(func() cbor.DecMode {
	unassigned := make([]func(*cbor.SimpleValueRegistry) error, 0, 256)
	for sv := range 256 {
		if sv < 20 || sv > 31 { // keep false, true, null, undefined; 24-31 are reserved
			unassigned = append(unassigned, cbor.WithRejectedSimpleValue(cbor.SimpleValue(sv)))
		}
	}
	simple, err := cbor.NewSimpleValueRegistryFromDefaults(unassigned...)
	if err != nil {
		panic("coap: CBOR simple values: " + err.Error())
	}
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  cborMaxNested,
		MaxArrayElements: cborMaxItems,
		MaxMapPairs:      cborMaxItems,
		IndefLength:      cbor.IndefLengthAllowed,
		TagsMd:           cbor.TagsForbidden,
		BignumTag:        cbor.BignumTagForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
		SimpleValues:     simple,
	}.DecMode()
	if err != nil {
		panic("coap: CBOR decoding mode: " + err.Error())
	}
	return dm
})

// cborSelfDescribe is tag 55799 as a prefix: "this is CBOR".
const cborSelfDescribe = "\xd9\xd9\xf7"

// cborReader walks a well-formed CBOR payload. Containers are walked here
// (to keep map order and to refuse unwanted shapes before decoding them),
// and so are integers and simple values (all in their head); text, byte
// strings, floats and skipped items are decoded by the library.
type cborReader struct {
	dm   cbor.DecMode
	data []byte
	pos  int

	// Reused destinations: passing their addresses to the library costs
	// one allocation per payload rather than one per item.
	str  string
	b    []byte // the library stores a new slice each time, never reusing it
	f    float64
	skip cbor.RawMessage
}

// newCBORReader checks that payload is one well-formed CBOR item within
// this package's limits.
func newCBORReader(payload []byte) (*cborReader, error) {
	r := &cborReader{dm: cborDecMode(), data: payload}
	if bytes.HasPrefix(payload, []byte(cborSelfDescribe)) {
		r.pos = len(cborSelfDescribe)
	}
	if err := r.dm.Wellformed(payload[r.pos:]); err != nil {
		return nil, cborWellformedError(err)
	}
	return r, nil
}

func cborWellformedError(err error) error {
	var (
		extra *cbor.ExtraneousDataError
		tags  *cbor.TagsMdError
	)
	switch {
	case errors.Is(err, io.EOF):
		return payloadErrorf("invalid CBOR: empty payload")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return payloadErrorf("invalid CBOR: unexpected end of input")
	case errors.As(err, &extra):
		return payloadErrorf("invalid CBOR: unexpected data after top-level value")
	case errors.As(err, &tags):
		return payloadErrorf("invalid CBOR: tags are not supported")
	}
	return payloadErrorf("invalid CBOR: %s", cborMessage(err))
}

// cborMessage is the library's diagnostic without its "cbor: " prefix.
func cborMessage(err error) string {
	return strings.ToValidUTF8(strings.TrimPrefix(err.Error(), "cbor: "), "\uFFFD")
}

// major returns the major type of the item at pos (the walk stays within
// well-formed data, so pos is in range).
func (r *cborReader) major() byte {
	if r.pos >= len(r.data) {
		return 0xff
	}
	return r.data[r.pos] >> 5
}

// head consumes the initial byte and argument of the item at pos. indef
// reports an indefinite length (additional information 31).
func (r *cborReader) head() (major byte, arg uint64, indef bool, ok bool) {
	if r.pos >= len(r.data) {
		return 0, 0, false, false
	}
	ib := r.data[r.pos]
	major, ai := ib>>5, ib&0x1f
	n := 0
	switch {
	case ai < 24:
		arg = uint64(ai)
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	case ai == 31:
		indef = true
	default:
		return 0, 0, false, false
	}
	if len(r.data)-r.pos-1 < n {
		return 0, 0, false, false
	}
	for _, b := range r.data[r.pos+1 : r.pos+1+n] {
		arg = arg<<8 | uint64(b)
	}
	r.pos += 1 + n
	return major, arg, indef, true
}

// each consumes the array or map at pos and calls item for each element
// (for a map: each pair, item consuming key and value) until item fails.
func (r *cborReader) each(item func(i int) error) error {
	at := r.pos
	_, n, indef, ok := r.head()
	if !ok || (!indef && n > cborMaxItems) {
		return payloadErrorf("invalid CBOR at offset %d: bad container head", at)
	}
	for i := 0; indef || uint64(i) < n; i++ {
		if indef {
			if r.pos >= len(r.data) {
				return payloadErrorf("invalid CBOR: unexpected end of input")
			}
			if r.data[r.pos] == 0xff { // break
				r.pos++
				return nil
			}
		}
		if err := item(i); err != nil {
			return err
		}
	}
	return nil
}

// decode decodes the item at pos into v and moves past it.
func (r *cborReader) decode(v any) error {
	at := r.pos
	rest, err := r.dm.UnmarshalFirst(r.data[r.pos:], v)
	if err != nil {
		return payloadErrorf("invalid CBOR at offset %d: %s", at, cborMessage(err))
	}
	r.pos = len(r.data) - len(rest)
	return nil
}

// skipItem moves past the item at pos.
func (r *cborReader) skipItem() error { return r.decode(&r.skip) }

// isFloat reports a float (half, single or double) at pos.
func (r *cborReader) isFloat() bool {
	if r.pos >= len(r.data) {
		return false
	}
	ib := r.data[r.pos]
	return ib == 0xf9 || ib == 0xfa || ib == 0xfb
}

// number decodes the integer or float at pos (isNum false, nothing
// consumed, for anything else): an exact int64 when the item is an integer
// that fits, else a float64, as makeNumber does for JSON literals. An
// integer is all in its head; floats of every width are the library's.
// NaN and infinities are returned as such.
func (r *cborReader) number() (n number, isNum bool, err error) {
	at := r.pos
	switch m := r.major(); {
	case m == cborUint || m == cborNegInt:
		major, arg, _, ok := r.head()
		if !ok {
			return number{}, false, payloadErrorf("invalid CBOR at offset %d: bad integer", at)
		}
		switch {
		case major == cborUint && arg <= math.MaxInt64:
			return number{f: float64(arg), i: int64(arg), isInt: true}, true, nil
		case major == cborUint:
			return number{f: float64(arg)}, true, nil
		case arg <= math.MaxInt64: // -1-arg
			i := -1 - int64(arg)
			return number{f: float64(i), i: i, isInt: true}, true, nil
		case arg == math.MaxUint64:
			return number{f: -0x1p64}, true, nil
		}
		return number{f: -float64(arg + 1)}, true, nil // rounded once, as strconv rounds the literal
	case r.isFloat():
		if err := r.decode(&r.f); err != nil {
			return number{}, false, err
		}
		return number{f: r.f}, true, nil
	}
	return number{}, false, nil
}

// scalar decodes the value of point name: a number, text, bytes or bool,
// with the diagnostics of jsonScanner.parseScalar.
func (r *cborReader) scalar(name string) (bridge.Value, error) {
	at := r.pos
	switch r.major() {
	case cborMap:
		return bridge.Value{}, payloadErrorf("point %.64q: nested maps are not supported (offset %d)", name, at)
	case cborArray:
		return bridge.Value{}, payloadErrorf("point %.64q: arrays are not supported (offset %d)", name, at)
	case cborText:
		if err := r.decode(&r.str); err != nil {
			return bridge.Value{}, err
		}
		return bridge.String(r.str), nil
	case cborBytes:
		r.b = nil
		if err := r.decode(&r.b); err != nil {
			return bridge.Value{}, err
		}
		return bridge.Bytes(r.b), nil
	case cborSimple:
		switch r.data[at] {
		case 0xf4, 0xf5:
			r.pos++
			return bridge.Bool(r.data[at] == 0xf5), nil
		case 0xf6:
			return bridge.Value{}, payloadErrorf("point %.64q: null is not a value (offset %d)", name, at)
		case 0xf7:
			return bridge.Value{}, payloadErrorf("point %.64q: undefined is not a value (offset %d)", name, at)
		}
	}
	n, isNum, err := r.number()
	switch {
	case err != nil:
		return bridge.Value{}, err
	case !isNum:
		return bridge.Value{}, payloadErrorf("point %.64q: unsupported CBOR value (offset %d)", name, at)
	case math.IsNaN(n.f) || math.IsInf(n.f, 0):
		return bridge.Value{}, payloadErrorf("point %.64q: %v is not a number (offset %d)", name, n.f, at)
	}
	return n.value(), nil
}

// decodeCBORValues decodes application/cbor: a map of text key → scalar,
// or one bare scalar (the point named bare). See decodeJSONValues.
func decodeCBORValues(payload []byte, bare string) (points []bridge.Point, object bool, err error) {
	r, err := newCBORReader(payload)
	if err != nil {
		return nil, false, err
	}
	switch r.major() {
	case cborMap:
		object = true
		points = make([]bridge.Point, 0, 8)
		err = r.each(func(int) error {
			at := r.pos
			if r.major() != cborText {
				return payloadErrorf("invalid CBOR at offset %d: a map key must be a text string", at)
			}
			if err := r.decode(&r.str); err != nil {
				return err
			}
			name := r.str
			v, err := r.scalar(name)
			if err != nil {
				return err
			}
			points = append(points, bridge.Point{Name: name, Value: v})
			return nil
		})
	case cborArray:
		return nil, false, payloadErrorf("point %.64q: arrays are not supported (offset %d); a SenML pack needs Content-Format 112", bare, r.pos)
	default:
		var v bridge.Value
		v, err = r.scalar(bare)
		points = []bridge.Point{{Name: bare, Value: v}}
	}
	if err != nil {
		return nil, false, err
	}
	return points, object, nil
}

// senmlCBORLabels maps the integer labels of RFC 8428 Table 4 (offset by 6:
// -6 is index 0) to the JSON names.
var senmlCBORLabels = [...]string{"bs", "bv", "bu", "bt", "bn", "bver", "n", "u", "v", "vs", "vb", "s", "t", "ut", "vd"}

// decodeSenMLCBOR parses application/senml+cbor into records.
func decodeSenMLCBOR(payload []byte) ([]senmlRecord, error) {
	r, err := newCBORReader(payload)
	if err != nil {
		return nil, err
	}
	switch r.major() {
	case cborArray:
	case cborMap:
		return nil, payloadErrorf("a SenML pack is a CBOR array of records, not a map (offset %d)", r.pos)
	default:
		return nil, payloadErrorf("a SenML pack is a CBOR array of records (offset %d)", r.pos)
	}
	var records []senmlRecord
	err = r.each(func(i int) error {
		idx := i + 1
		if r.major() != cborMap {
			return payloadErrorf("SenML record %d is not a CBOR map (offset %d)", idx, r.pos)
		}
		var rec senmlRecord
		err := r.each(func(int) error { return r.senmlField(&rec, idx) })
		if err != nil {
			return err
		}
		records = append(records, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(records) == 0 {
		return nil, payloadErrorf("empty SenML pack: no records")
	}
	return records, nil
}

// senmlField decodes one label and its value of record idx into rec, with
// the rules and diagnostics of jsonScanner.senmlField.
func (r *cborReader) senmlField(rec *senmlRecord, idx int) error {
	at := r.pos
	var key string
	switch r.major() {
	case cborUint, cborNegInt:
		major, arg, _, ok := r.head()
		if !ok {
			return payloadErrorf("invalid CBOR at offset %d: bad label", at)
		}
		switch {
		case major == cborUint && arg <= 8:
			key = senmlCBORLabels[arg+6]
		case major == cborNegInt && arg <= 5: // -1 - arg
			key = senmlCBORLabels[5-arg]
		default:
			return r.skipItem() // an unknown label
		}
	case cborText:
		if err := r.decode(&r.str); err != nil {
			return err
		}
		key = r.str
	default:
		return payloadErrorf("SenML record %d: label at offset %d is neither an integer nor a text string", idx, at)
	}

	var bit senmlField
	var str *string
	var num *number
	vd := false
	switch key {
	case "bn":
		bit, str = fBN, &rec.bn
	case "bt":
		bit, num = fBT, &rec.bt
	case "bu":
		bit, str = fBU, &rec.bu
	case "bv":
		bit, num = fBV, &rec.bv
	case "bs":
		bit, num = fBS, &rec.bs
	case "bver":
		bit, num = fBVer, &rec.bver
	case "n":
		bit, str = fN, &rec.n
	case "u":
		bit, str = fU, &rec.u
	case "v":
		bit, num = fV, &rec.v
	case "vs":
		bit, str = fVS, &rec.vs
	case "vd":
		bit, vd = fVD, true
	case "s":
		bit, num = fS, &rec.s
	case "t":
		bit, num = fT, &rec.t
	case "ut":
		bit, num = fUT, new(number)
	case "vb":
		bit = fVB
	default:
		if strings.HasSuffix(key, "_") {
			return payloadErrorf("SenML record %d: unsupported must-understand field %.64q (offset %d)", idx, key, at)
		}
		return r.skipItem()
	}
	if rec.has&bit != 0 {
		return payloadErrorf("SenML record %d: duplicate field %q (offset %d)", idx, key, at)
	}
	rec.has |= bit

	at = r.pos
	switch m := r.major(); {
	case str != nil:
		if m != cborText {
			return payloadErrorf("SenML record %d: field %q must be a text string (offset %d)", idx, key, at)
		}
		if err := r.decode(&r.str); err != nil {
			return err
		}
		*str = r.str
	case num != nil:
		n, isNum, err := r.number()
		switch {
		case err != nil:
			return err
		case !isNum:
			return payloadErrorf("SenML record %d: field %q must be a number (offset %d)", idx, key, at)
		case math.IsNaN(n.f) || math.IsInf(n.f, 0):
			return payloadErrorf("SenML record %d: field %q must be a finite number (offset %d)", idx, key, at)
		}
		*num = n
	case vd:
		if m != cborBytes {
			return payloadErrorf("SenML record %d: field %q must be a byte string (offset %d)", idx, key, at)
		}
		r.b = nil
		if err := r.decode(&r.b); err != nil {
			return err
		}
		// resolveSenML decodes vd as base64url, as sent in SenML JSON.
		rec.vd = base64.RawURLEncoding.EncodeToString(r.b)
	default: // vb
		switch r.data[at] {
		case 0xf4:
			rec.vb = false
		case 0xf5:
			rec.vb = true
		default:
			return payloadErrorf("SenML record %d: field %q must be true or false (offset %d)", idx, key, at)
		}
		r.pos++
	}
	return nil
}
