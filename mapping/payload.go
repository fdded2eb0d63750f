package mapping

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/causeway/causeway/bridge"
)

// appendTime appends t in UTC as 2006-01-02T15:04:05.000Z: always three
// fractional digits (truncated to the millisecond), no quotes.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	}
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(b,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendEpoch appends t as seconds since the Unix epoch with millisecond
// precision, shortest form: 1795600800.123, 1795600800.5, 1795600800.
func appendEpoch(b []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	u := uint64(ms)
	if ms < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1000, 10)
	frac := u % 1000
	if frac == 0 {
		return b
	}
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	for b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	return b
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendEscaped appends s as the inside of a JSON string (no quotes).
func appendEscaped(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\'
	}
	if plain {
		return append(b, s...)
	}
	n := len(b)
	b = bridge.AppendJSONString(b, s)
	copy(b[n:], b[n+1:len(b)-1])
	return b[:len(b)-2]
}

// hasValue reports whether a point has something to publish as a value.
func hasValue(p *bridge.Point) bool {
	return p.Bad == "" && p.Value.Kind != bridge.KindNone
}

// senmlOK reports whether p has a SenML record.
func senmlOK(p *bridge.Point) bool {
	return hasValue(p) && (p.Value.Kind != bridge.KindNumber || finite(p.Value.Num))
}

// frameText holds what every payload of one frame shares.
type frameText struct {
	f       *bridge.Frame
	gateway string // escaped for JSON
	ts      []byte // the JSON time, without quotes
	bt      []byte // the SenML base time
}

// appendJSONObject appends the "json" payload for the points at idx (keys
// of Map's ordering: point index in the low 32 bits).
func appendJSONObject(b []byte, ft *frameText, idx []uint64) []byte {
	pts := ft.f.Points
	b = append(b, `{"time":"`...)
	b = append(b, ft.ts...)
	b = append(b, '"')
	bad := 0
	for _, k := range idx {
		p := &pts[uint32(k)]
		if p.Bad != "" {
			bad++
			continue
		}
		b = append(b, ',', '"')
		b = appendEscaped(b, p.Name)
		b = append(b, '"', ':')
		b = p.Value.AppendJSON(b)
	}
	if bad > 0 {
		b = append(b, `,"errors":{`...)
		sep := false
		for _, k := range idx {
			p := &pts[uint32(k)]
			if p.Bad == "" {
				continue
			}
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = append(b, '"')
			b = appendEscaped(b, p.Name)
			b = append(b, '"', ':')
			b = bridge.AppendJSONString(b, p.Bad)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendSenML appends the "senml" pack for the points at idx; the caller
// checked that at least one of them has a record.
func appendSenML(b []byte, ft *frameText, idx []uint64) []byte {
	pts := ft.f.Points
	b = append(b, '[')
	first := true
	for _, k := range idx {
		p := &pts[uint32(k)]
		if !senmlOK(p) {
			continue
		}
		if first {
			first = false
			b = append(b, `{"bn":"`...)
			b = append(b, ft.gateway...)
			b = append(b, '/')
			b = appendEscaped(b, ft.f.Adapter)
			b = append(b, '/')
			b = appendEscaped(b, ft.f.Device)
			b = append(b, `/","bt":`...)
			b = append(b, ft.bt...)
			b = append(b, `,"n":"`...)
		} else {
			b = append(b, `,{"n":"`...)
		}
		b = appendEscaped(b, p.Name)
		b = append(b, '"')
		if p.Unit != "" {
			b = append(b, `,"u":`...)
			b = bridge.AppendJSONString(b, p.Unit)
		}
		v := &p.Value
		switch v.Kind {
		case bridge.KindNumber:
			b = append(b, `,"v":`...)
			b = bridge.AppendFloat(b, v.Num)
		case bridge.KindInt:
			b = append(b, `,"v":`...)
			b = strconv.AppendInt(b, v.Int, 10)
		case bridge.KindBool:
			b = append(b, `,"vb":`...)
			b = strconv.AppendBool(b, v.Bool)
		case bridge.KindString:
			b = append(b, `,"vs":`...)
			b = bridge.AppendJSONString(b, v.Str)
		case bridge.KindBytes:
			b = append(b, `,"vd":"`...)
			b = base64.RawURLEncoding.AppendEncode(b, v.Bytes)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// estimate is a guess of the bytes a point adds to a payload, used to size
// the frame's payload buffer once.
func estimate(p *bridge.Point) int {
	n := len(p.Name) + len(p.Unit) + len(p.Bad) + 16
	switch p.Value.Kind {
	case bridge.KindNumber, bridge.KindInt:
		n += 24
	case bridge.KindString:
		n += len(p.Value.Str) + len(p.Value.Str)/8
	case bridge.KindBytes:
		n += len(p.Value.Bytes)*4/3 + 4
	}
	return n
}
