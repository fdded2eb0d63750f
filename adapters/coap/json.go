package coap

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

// jsonScanner is a small RFC 8259 parser for the few shapes this package
// accepts: a scalar, an object of scalars, an array of objects of scalars.
// It is hand-written rather than encoding/json so that integers keep their
// precision, duplicate keys are seen, errors carry byte offsets, and the hot
// path allocates only the names and strings it returns.
type jsonScanner struct {
	data []byte
	pos  int
}

// maxSkipDepth bounds the nesting of values this package skips (unknown
// SenML fields): deeper input is refused, never recursed into.
const maxSkipDepth = 32

func (s *jsonScanner) syntaxError(format string, args ...any) error {
	return payloadErrorf("invalid JSON at offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

// unexpected reports the byte at pos, or the end of input, where want was
// expected.
func (s *jsonScanner) unexpected(want string) error {
	if s.pos >= len(s.data) {
		return s.syntaxError("unexpected end of input, expecting %s", want)
	}
	return s.syntaxError("invalid character %s, expecting %s", quoteByte(s.data[s.pos]), want)
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (s *jsonScanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// next returns the byte at pos after whitespace, or 0 at the end.
func (s *jsonScanner) next() byte {
	s.skipWS()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// end checks that nothing but whitespace follows the top-level value.
func (s *jsonScanner) end() error {
	if s.next() != 0 {
		return s.syntaxError("unexpected data after top-level value")
	}
	return nil
}

// parseString parses the string starting at pos (which holds '"').
func (s *jsonScanner) parseString() (string, error) {
	start := s.pos
	s.pos++
	i := s.pos
	for i < len(s.data) {
		c := s.data[i]
		if c == '"' {
			raw := s.data[s.pos:i]
			if !utf8.Valid(raw) {
				s.pos = start
				return "", s.syntaxError("string is not valid UTF-8")
			}
			s.pos = i + 1
			return string(raw), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		i++
	}
	b := make([]byte, 0, i-s.pos+16)
	b = append(b, s.data[s.pos:i]...)
	s.pos = i
	for {
		if s.pos >= len(s.data) {
			return "", s.syntaxError("unterminated string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			if !utf8.Valid(b) {
				s.pos = start
				return "", s.syntaxError("string is not valid UTF-8")
			}
			return string(b), nil
		case c < 0x20:
			return "", s.syntaxError("control character %s in string", quoteByte(c))
		case c != '\\':
			b = append(b, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			return "", s.syntaxError("unterminated string")
		}
		switch e := s.data[s.pos+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(s.data[s.pos+2:])
			if !ok {
				return "", s.syntaxError(`invalid \u escape in string`)
			}
			s.pos += 6
			if utf16.IsSurrogate(r) {
				// A valid pair is a high then a low surrogate; anything
				// else becomes U+FFFD, as encoding/json does.
				r2 := rune(-1)
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					if v, ok := hex4(s.data[s.pos+2:]); ok {
						r2 = v
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					s.pos += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			return "", s.syntaxError("invalid escape %s in string", quoteByte(e))
		}
		s.pos += 2
	}
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// parseNumber parses the JSON number at pos. isInt reports a literal with
// neither fraction nor exponent.
func (s *jsonScanner) parseNumber() (lit []byte, isInt bool, err error) {
	d := s.data
	start, i := s.pos, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, false, s.unexpected("a digit")
	}
	isInt = true
	if i < len(d) && d[i] == '.' {
		isInt = false
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, false, s.unexpected("a digit after the decimal point")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		isInt = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, false, s.unexpected("a digit in the exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], isInt, nil
}

// number is a parsed JSON number: an exact int64 when the literal was an
// integer that fits, else a float64.
type number struct {
	f     float64
	i     int64
	isInt bool
}

func (n number) value() bridge.Value {
	if n.isInt {
		return bridge.Int(n.i)
	}
	return bridge.Number(n.f)
}

func (s *jsonScanner) parseNumberValue() (number, error) {
	start := s.pos
	lit, isInt, err := s.parseNumber()
	if err != nil {
		return number{}, err
	}
	n, ok := makeNumber(lit, isInt)
	if !ok {
		s.pos = start
		return number{}, s.syntaxError("number %.40s is out of range", lit)
	}
	return n, nil
}

// makeNumber converts a syntactically valid JSON number literal. It fails
// only for magnitudes beyond float64.
func makeNumber(lit []byte, isInt bool) (number, bool) {
	if isInt {
		if i, ok := parseInt64(lit); ok {
			return number{f: float64(i), i: i, isInt: true}, true
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return number{}, false
	}
	// An underflow rounds to zero: a tiny number is still a number.
	return number{f: f}, true
}

// parseInt64 parses an integer literal (JSON grammar already checked),
// reporting false when it does not fit in an int64.
func parseInt64(lit []byte) (int64, bool) {
	neg := false
	if len(lit) > 0 && lit[0] == '-' {
		neg = true
		lit = lit[1:]
	}
	if len(lit) == 0 || len(lit) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range lit {
		u = u*10 + uint64(c-'0')
	}
	switch {
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	case neg && u <= 1<<63:
		return int64(-u), true // -u wraps to MinInt64 for u = 1<<63
	}
	return 0, false
}

// parseLiteral consumes true, false or null at pos.
func (s *jsonScanner) parseLiteral() (lit string, err error) {
	for _, w := range [...]string{"true", "false", "null"} {
		if len(s.data)-s.pos >= len(w) && string(s.data[s.pos:s.pos+len(w)]) == w {
			s.pos += len(w)
			return w, nil
		}
	}
	return "", s.unexpected("a value")
}

// parseScalar parses the value of point name: a number, string or bool.
// Objects, arrays and null are refused with a diagnostic naming the point.
func (s *jsonScanner) parseScalar(name string) (bridge.Value, error) {
	switch c := s.next(); {
	case c == '"':
		str, err := s.parseString()
		if err != nil {
			return bridge.Value{}, err
		}
		return bridge.String(str), nil
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := s.parseNumberValue()
		if err != nil {
			return bridge.Value{}, err
		}
		return n.value(), nil
	case c == '{':
		return bridge.Value{}, payloadErrorf("point %.64q: nested objects are not supported (offset %d)", name, s.pos)
	case c == '[':
		return bridge.Value{}, payloadErrorf("point %.64q: arrays are not supported (offset %d)", name, s.pos)
	case c == 't' || c == 'f' || c == 'n':
		at := s.pos
		lit, err := s.parseLiteral()
		if err != nil {
			return bridge.Value{}, err
		}
		switch lit {
		case "true":
			return bridge.Bool(true), nil
		case "false":
			return bridge.Bool(false), nil
		}
		return bridge.Value{}, payloadErrorf("point %.64q: null is not a value (offset %d)", name, at)
	}
	return bridge.Value{}, s.unexpected("a value")
}

// skipValue skips any JSON value, validating it, nested at most
// maxSkipDepth deep.
func (s *jsonScanner) skipValue(depth int) error {
	if depth > maxSkipDepth {
		return s.syntaxError("values nested deeper than %d", maxSkipDepth)
	}
	switch c := s.next(); {
	case c == '"':
		_, err := s.parseString()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, err := s.parseNumber()
		return err
	case c == 't' || c == 'f' || c == 'n':
		_, err := s.parseLiteral()
		return err
	case c == '[':
		s.pos++
		if s.next() == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			switch s.next() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return s.unexpected("',' or ']'")
			}
		}
	case c == '{':
		s.pos++
		if s.next() == '}' {
			s.pos++
			return nil
		}
		for {
			if s.next() != '"' {
				return s.unexpected("a string key")
			}
			if _, err := s.parseString(); err != nil {
				return err
			}
			if s.next() != ':' {
				return s.unexpected("':'")
			}
			s.pos++
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			switch s.next() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				return nil
			default:
				return s.unexpected("',' or '}'")
			}
		}
	}
	return s.unexpected("a value")
}

// objectFields iterates over the members of the object at pos (which holds
// '{'), calling member with the scanner positioned at each value. member
// must consume the value.
func (s *jsonScanner) objectFields(member func(key string, keyOffset int) error) error {
	s.pos++
	if s.next() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.next() != '"' {
			return s.unexpected("a string key")
		}
		at := s.pos
		key, err := s.parseString()
		if err != nil {
			return err
		}
		if s.next() != ':' {
			return s.unexpected("':'")
		}
		s.pos++
		if err := member(key, at); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.unexpected("',' or '}'")
		}
	}
}

// decodeJSONValues decodes application/json: an object of point → scalar,
// or one bare scalar (the point named bare).
func decodeJSONValues(payload []byte, bare string) (points []bridge.Point, object bool, err error) {
	s := jsonScanner{data: payload}
	switch s.next() {
	case '{':
		object = true
		points = make([]bridge.Point, 0, 8)
		err = s.objectFields(func(key string, _ int) error {
			v, err := s.parseScalar(key)
			if err != nil {
				return err
			}
			points = append(points, bridge.Point{Name: key, Value: v})
			return nil
		})
	case '[':
		return nil, false, payloadErrorf("point %.64q: arrays are not supported (offset %d); a SenML pack needs Content-Format 110", bare, s.pos)
	default:
		var v bridge.Value
		v, err = s.parseScalar(bare)
		points = []bridge.Point{{Name: bare, Value: v}}
	}
	if err != nil {
		return nil, false, err
	}
	if err := s.end(); err != nil {
		return nil, false, err
	}
	return points, object, nil
}
