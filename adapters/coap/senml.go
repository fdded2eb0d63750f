package coap

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"

	"github.com/causeway/causeway/bridge"
)

// SenML (RFC 8428) support.
//
// A pack is decoded in two steps: a format-specific parser turns the payload
// into senmlRecords (decodeSenMLJSON; SenML CBOR will be a second parser),
// then resolveSenML applies the base fields, maps names to points and groups
// records by time into readings.
//
// Names. The SenML name of a record is bn+n (base name, then name). The
// gateway names the device by the request path, so the point is that name
// with the device removed:
//
//  1. A leading "/" is ignored (some devices use their URI path as bn).
//  2. A name that is empty or equals the device is the bare point: the path's
//     point on /{device}/{point}, else the default point ("value").
//  3. A name starting with the device followed by '/' or ':' is the rest:
//     bn "dev1/" (or "dev1:", or "/dev1/") and n "temp" on /dev1 is "temp".
//  4. Otherwise bn is taken to identify the sensor itself (an RFC 8428
//     style "urn:dev:ow:10e2073a01080063:"), not a gateway device: the point
//     is n, or the bare point when n is empty.
//
// The result must be a valid point name (no '/', not reserved, ...), else
// 4.00. On /{device}/{point} every record must map to that point.
//
// Values. v (plus bv when present) is a number: an integer when both are
// integer literals and the sum fits in int64. vs is a string, vb a bool, vd
// base64url data (bytes). A record with a sum s (plus bs) and no value field
// is a number. More than one of v, vs, vb, vd is an error; a record with no
// value and no sum is an error unless it carries only base fields (then it
// only sets them). u, else bu, is the unit. ut is ignored.
//
// Times. The time is bt+t. Below 2^28 it is relative to now, in seconds
// (RFC 8428 §4.5.3: 0 is now, -60 a minute ago); from 2^28 it is absolute,
// seconds since 1970. Records are grouped by resolved time: one reading
// (frame) per time, oldest first; two records for one point at one time are
// an error.
//
// Versions up to bver 10 are accepted. Unknown fields are ignored, unknown
// fields ending in '_' (must-understand) are an error.

type senmlField uint16

const (
	fBN senmlField = 1 << iota
	fBT
	fBU
	fBV
	fBS
	fBVer
	fN
	fU
	fV
	fVS
	fVB
	fVD
	fS
	fT
	fUT

	baseFields  = fBN | fBT | fBU | fBV | fBS | fBVer
	valueFields = fV | fVS | fVB | fVD
)

// senmlRecord is one SenML record as sent, base fields unresolved.
type senmlRecord struct {
	has                  senmlField
	bn, bu, n, u, vs, vd string
	bt, bv, bs, v, s, t  number
	bver                 number
	vb                   bool
}

const (
	senmlVersion    = 10
	senmlRelative   = 1 << 28 // times below are relative to now
	senmlMaxAbsTime = 1 << 33 // seconds since 1970 (year 2242): beyond is refused
)

// decodeSenMLJSON parses application/senml+json into records.
func decodeSenMLJSON(payload []byte) ([]senmlRecord, error) {
	s := jsonScanner{data: payload}
	switch s.next() {
	case '[':
	case '{':
		return nil, payloadErrorf("a SenML pack is a JSON array of records, not an object (offset %d)", s.pos)
	default:
		return nil, s.unexpected("'[' starting a SenML pack")
	}
	s.pos++
	var records []senmlRecord
	if s.next() == ']' {
		s.pos++
	} else {
		for idx := 1; ; idx++ {
			if s.next() != '{' {
				if s.pos >= len(s.data) {
					return nil, s.unexpected("a SenML record")
				}
				return nil, payloadErrorf("SenML record %d is not a JSON object (offset %d)", idx, s.pos)
			}
			var rec senmlRecord
			err := s.objectFields(func(key string, at int) error {
				return s.senmlField(&rec, idx, key, at)
			})
			if err != nil {
				return nil, err
			}
			records = append(records, rec)
			switch s.next() {
			case ',':
				s.pos++
				continue
			case ']':
				s.pos++
			default:
				return nil, s.unexpected("',' or ']'")
			}
			break
		}
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if len(records) == 0 {
		return nil, payloadErrorf("empty SenML pack: no records")
	}
	return records, nil
}

// senmlField decodes the value of field key of record idx into rec.
func (s *jsonScanner) senmlField(rec *senmlRecord, idx int, key string, at int) error {
	var bit senmlField
	var str *string
	var num *number
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
		bit, str = fVD, &rec.vd
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
		return s.skipValue(0)
	}
	if rec.has&bit != 0 {
		return payloadErrorf("SenML record %d: duplicate field %q (offset %d)", idx, key, at)
	}
	rec.has |= bit
	c := s.next()
	switch {
	case str != nil:
		if c != '"' {
			return payloadErrorf("SenML record %d: field %q must be a string (offset %d)", idx, key, s.pos)
		}
		v, err := s.parseString()
		if err != nil {
			return err
		}
		*str = v
	case num != nil:
		if c != '-' && (c < '0' || c > '9') {
			return payloadErrorf("SenML record %d: field %q must be a number (offset %d)", idx, key, s.pos)
		}
		n, err := s.parseNumberValue()
		if err != nil {
			return err
		}
		*num = n
	default: // vb
		if c != 't' && c != 'f' {
			return payloadErrorf("SenML record %d: field %q must be true or false (offset %d)", idx, key, s.pos)
		}
		lit, err := s.parseLiteral()
		if err != nil {
			return err
		}
		if lit == "null" {
			return payloadErrorf("SenML record %d: field %q must be true or false (offset %d)", idx, key, s.pos-4)
		}
		rec.vb = lit == "true"
	}
	return nil
}

// resolveSenML applies base fields and maps records to readings (see the
// rules at the top of this file).
func resolveSenML(records []senmlRecord, device, pathPoint, bare string, now time.Time) ([]Reading, error) {
	var (
		bn, bu       string
		bt           float64
		bv, bs       number
		hasBV, hasBS bool
		readings     []Reading
		byTime       = make(map[int64]int)
	)
	for i := range records {
		r := &records[i]
		idx := i + 1
		if r.has&fBVer != 0 {
			if !r.bver.isInt || r.bver.i < 1 {
				return nil, payloadErrorf("SenML record %d: invalid bver %v", idx, r.bver.f)
			}
			if r.bver.i > senmlVersion {
				return nil, payloadErrorf("SenML record %d: SenML version %d is not supported (up to %d)", idx, r.bver.i, senmlVersion)
			}
		}
		if r.has&fBN != 0 {
			bn = r.bn
		}
		if r.has&fBT != 0 {
			bt = r.bt.f
		}
		if r.has&fBU != 0 {
			bu = r.bu
		}
		if r.has&fBV != 0 {
			bv, hasBV = r.bv, true
		}
		if r.has&fBS != 0 {
			bs, hasBS = r.bs, true
		}
		nValues := bits.OnesCount16(uint16(r.has & valueFields))
		if nValues > 1 {
			return nil, payloadErrorf("SenML record %d has more than one of v, vs, vb, vd", idx)
		}
		if nValues == 0 && r.has&fS == 0 {
			if r.has != 0 && r.has&^baseFields == 0 {
				continue // base fields only
			}
			return nil, payloadErrorf("SenML record %d has no value (v, vs, vb, vd or s)", idx)
		}

		name := senmlPointName(bn, r.n, device, bare)
		if err := ValidPointName(name); err != nil {
			return nil, nameError(fmt.Errorf("SenML record %d: %w", idx, err))
		}
		if pathPoint != "" && name != pathPoint {
			return nil, payloadErrorf("SenML record %d names point %q but the request path names point %q", idx, name, pathPoint)
		}

		var v bridge.Value
		switch {
		case r.has&fV != 0:
			n, ok := addNumbers(bv, hasBV, r.v)
			if !ok {
				return nil, payloadErrorf("SenML record %d: value out of range", idx)
			}
			v = n.value()
		case r.has&fVS != 0:
			v = bridge.String(r.vs)
		case r.has&fVB != 0:
			v = bridge.Bool(r.vb)
		case r.has&fVD != 0:
			data, err := decodeBase64URL(r.vd)
			if err != nil {
				return nil, payloadErrorf("SenML record %d: vd is not base64url: %v", idx, err)
			}
			v = bridge.Bytes(data)
		default: // sum only
			n, ok := addNumbers(bs, hasBS, r.s)
			if !ok {
				return nil, payloadErrorf("SenML record %d: sum out of range", idx)
			}
			v = n.value()
		}
		unit := bu
		if r.has&fU != 0 {
			unit = r.u
		}
		rt := bt
		if r.has&fT != 0 {
			rt += r.t.f
		}
		t, err := senmlTime(rt, now)
		if err != nil {
			return nil, payloadErrorf("SenML record %d: %v", idx, err)
		}
		key := t.UnixNano()
		ri, ok := byTime[key]
		if !ok {
			ri = len(readings)
			byTime[key] = ri
			readings = append(readings, Reading{Time: t})
		}
		readings[ri].Points = append(readings[ri].Points, bridge.Point{Name: name, Value: v, Unit: unit})
	}
	if len(readings) == 0 {
		return nil, payloadErrorf("SenML pack has no record with a value")
	}
	for _, r := range readings {
		if err := checkDuplicates(r.Points); err != nil {
			return nil, &DecodeError{Kind: ErrBadPayload, Msg: fmt.Sprintf("%v at time %s", err, r.Time.UTC().Format(time.RFC3339Nano))}
		}
	}
	sortReadings(readings)
	return readings, nil
}

// senmlPointName maps the SenML name bn+n of a record to a point name.
func senmlPointName(bn, n, device, bare string) string {
	name := strings.TrimPrefix(bn+n, "/")
	switch {
	case name == "" || name == device:
		return bare
	case len(name) > len(device) && strings.HasPrefix(name, device) && (name[len(device)] == '/' || name[len(device)] == ':'):
		if rest := name[len(device)+1:]; rest != "" {
			return rest
		}
		return bare
	case n != "":
		return n
	}
	return bare
}

// addNumbers returns base+v (v alone without a base), exact when both are
// integers and the sum fits in int64.
func addNumbers(base number, hasBase bool, v number) (number, bool) {
	if !hasBase {
		return v, true
	}
	if base.isInt && v.isInt {
		sum := base.i + v.i
		// Overflow iff both operands have the sign the sum lacks.
		if (base.i >= 0) != (sum >= 0) && (v.i >= 0) != (sum >= 0) {
			return addNumbers(number{f: base.f}, true, number{f: v.f})
		}
		return number{f: float64(sum), i: sum, isInt: true}, true
	}
	f := base.f + v.f
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return number{}, false
	}
	return number{f: f}, true
}

// senmlTime resolves a SenML time (bt+t) against now.
func senmlTime(rt float64, now time.Time) (time.Time, error) {
	switch {
	case math.IsNaN(rt) || math.IsInf(rt, 0):
		return time.Time{}, fmt.Errorf("time out of range")
	case rt < senmlRelative:
		if rt <= -senmlRelative {
			return time.Time{}, fmt.Errorf("relative time %v s is out of range", rt)
		}
		return now.Add(time.Duration(math.Round(rt * float64(time.Second)))), nil
	case rt >= senmlMaxAbsTime:
		return time.Time{}, fmt.Errorf("time %v is out of range", rt)
	}
	sec := math.Floor(rt)
	return time.Unix(int64(sec), int64(math.Round((rt-sec)*1e9))).UTC(), nil
}

// decodeBase64URL decodes base64url (RFC 4648 §5) with or without padding,
// as RFC 8428 prescribes for vd.
func decodeBase64URL(s string) ([]byte, error) {
	enc := base64.RawURLEncoding
	if strings.HasSuffix(s, "=") {
		enc = base64.URLEncoding
	}
	return enc.DecodeString(s)
}
