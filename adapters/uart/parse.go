package uart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// Parser turns one frame's payload (framing and checksum already removed)
// into points. The parsers of NewParser are safe for concurrent use.
//
// Rules shared by every parser:
//
//   - A point name or a device name that comes from the data (a key of a
//     JSON object or of a key=value pair, the device group of a pattern, the
//     device column of a CSV line) must pass bridge.CheckPointName or
//     bridge.CheckDeviceName: a reserved name (time, errors, set,
//     availability, status, stats), an empty one, or one with '/', '+', '#'
//     or a control character is an error, so it never reaches a topic.
//     Names from the configuration were checked once, by NewParser.
//   - Two points of one name in one frame are an error, and so is a frame
//     that names its device twice.
//   - Text payloads (every parser but binary) must be valid UTF-8. A text
//     payload of nothing but white space is ErrEmpty, as is an empty binary
//     one: the caller may skip blank lines rather than count them.
//   - A frame that parses but yields no point (every value empty or null,
//     every group of the pattern out of the match) is ErrNoPoints.
//   - Text values (regex groups, key=value values and CSV fields that are
//     not quoted) are typed the way CoAP types text/plain: a JSON number is
//     a number (an Int when the literal has neither fraction nor exponent
//     and fits int64, else a Number), true and false are bools, anything
//     else is a string. A number beyond float64 (1e999) is an error. An empty
//     text value is no reading: the point is left out. A quoted value (kv,
//     csv) is always a string, verbatim, so a device can send "007" or
//     "1.20" as text, and "" is the empty string.
//   - Points come in the order of the frame: keys and fields as sent, the
//     groups of a pattern, the fields of a binary layout as configured.
//   - String values are copies: the caller may reuse payload at once.
type Parser interface {
	// Parse appends the points of payload to dst and returns them with the
	// device named by the payload ("" when it names none: the caller uses
	// the block's `device`). An error means the frame yields nothing (the
	// caller counts and logs it); points is then dst unchanged. The error
	// text quotes at most 64 characters of any name or value from the data.
	Parse(payload []byte, dst []bridge.Point) (device string, points []bridge.Point, err error)
}

// Errors of Parse for frames that hold nothing to parse; test with
// errors.Is. Every other error describes a malformed frame.
var (
	// ErrEmpty: the payload is empty, or, for a text parser, only white
	// space (a blank line).
	ErrEmpty = errors.New("empty frame")
	// ErrNoPoints: the frame parsed but yields no point.
	ErrNoPoints = errors.New("frame has no points")
)

// NewParser returns the parser of a [[uart]] block: its parser, pattern,
// columns and fields. It expects the block to have passed config.Load and
// repeats the checks the parser relies on, so that a block made by hand is
// refused with a reason: an unknown parser, a pattern that does not compile
// or has no point group, a reserved or duplicate column or field name, an
// unknown field type or byte order, a negative offset, a non-finite scale.
// As in config defaults, an empty parser means "regex", an empty field
// order "big" and a zero field scale 1.
//
// The parsers:
//
//   - regex: the Go (RE2) pattern is matched against the payload as text
//     (leftmost match, not necessarily all of it; anchor with ^ and $). No
//     match is an error. Each named group but `device` is a point, typed as
//     text (no trimming: the pattern decides what a value is); a group that
//     did not take part in the match, or matched the empty string, is left
//     out. A group named `device` names the device (empty: none). Two groups
//     may share a name, as in (?:T=(?P<t>\d+)|temp=(?P<t>\d+)); if both take
//     part, that is a duplicate point.
//   - json: one JSON object (RFC 8259) per frame, key → value: numbers are
//     Int when the literal is an integer without exponent that fits int64,
//     else Number; true/false are bools; strings are strings; null is left
//     out. A nested object or array is an error naming its key (no
//     flattening). The key "device" names the device: its value must be a
//     string (or null, naming none). Anything after the object but white
//     space is an error.
//   - kv: key=value pairs separated by white space, ',' or ';' (runs of
//     separators count as one), e.g. `device=boiler T=21.5, H=40; ok=true`.
//     A value is everything up to the next separator (it may hold '=' and
//     '"'), or a double-quoted string ("a b") in which \" and \\ stand for "
//     and \ (any other backslash is kept); a closing quote must be followed
//     by a separator or the end. A token without '=' is an error. The key
//     `device` names the device.
//   - csv: fields separated by ',' are the configured columns in order (a
//     column named "device" names the device); a frame with another number
//     of fields is an error. An unquoted field is trimmed of white space. A
//     field may be quoted as in RFC 4180 ("a, ""b""", white space around
//     the quotes allowed); a quote inside an unquoted field is kept as is.
//   - binary: the [[uart.field]]s, each read at its byte offset in the
//     payload. bool is one byte, true when not 0 (scale does not apply);
//     the integer and float types are read big or little endian (order). An
//     integer with scale 1 is an Int (a uint64 above math.MaxInt64 becomes a
//     Number); otherwise the value is Number(raw*scale), where a scale 1/n
//     (0.1, 0.01) divides by n and a scaled integer is rounded to the
//     decimals of the scale, so 215 with scale 0.1 is 21.5, not
//     21.500000000000004. A float32 is first widened to its shortest decimal
//     (21.3, not 21.299999237060547). NaN or ±Inf, read or scaled, is an
//     error naming the field, and so is a payload too short for a field.
//     Bytes beyond the last field are ignored; fields may overlap. The
//     binary parser never names a device.
func NewParser(c config.UART) (Parser, error) {
	switch c.Parser {
	case "regex", "":
		return psNewRegex(c.Pattern)
	case "json":
		return &psJSON{names: psNewNames()}, nil
	case "kv":
		return &psKV{names: psNewNames()}, nil
	case "csv":
		return psNewCSV(c.Columns)
	case "binary":
		return psNewBinary(c.Fields)
	}
	return nil, fmt.Errorf(`unknown parser %q: use "regex", "json", "kv", "csv" or "binary"`, c.Parser)
}

// psMaxQuote is how many characters of a name or value from the data an
// error message quotes.
const psMaxQuote = 64

// psQuote quotes s for an error message, at most psMaxQuote characters.
func psQuote[T string | []byte](s T) string {
	if utf8.RuneCount([]byte(s)) <= psMaxQuote {
		return strconv.Quote(string(s))
	}
	return fmt.Sprintf("%.*q…", psMaxQuote, string(s))
}

// psIsSpace reports ASCII white space.
func psIsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func psTrim(b []byte) []byte {
	for len(b) > 0 && psIsSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && psIsSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// psCheckText checks a text payload: valid UTF-8 and not blank.
func psCheckText(payload []byte) error {
	if !utf8.Valid(payload) {
		return errors.New("payload is not valid UTF-8")
	}
	if len(psTrim(payload)) == 0 {
		return ErrEmpty
	}
	return nil
}

// psPointName checks a point name from the data, quoting at most
// psMaxQuote characters of it in the error.
func psPointName(s string) error {
	if err := bridge.CheckPointName(s); err != nil {
		return psNameError("point", s, err)
	}
	return nil
}

func psDeviceName(s string) error {
	if err := bridge.CheckDeviceName(s); err != nil {
		return psNameError("device", s, err)
	}
	return nil
}

// psNameError shortens the error of a long name (a reserved name is short,
// so a long one fails the character rules).
func psNameError(kind, s string, err error) error {
	if utf8.RuneCountInString(s) <= psMaxQuote {
		return err
	}
	if terr := bridge.CheckTopicText(s, false); terr != nil {
		return fmt.Errorf("%s name %s: %v is not allowed", kind, psQuote(s), terr)
	}
	return fmt.Errorf("%s name %s is not allowed", kind, psQuote(s))
}

// psMaxInterned bounds the names a parser remembers; past it the table
// starts over, so a device sending ever new keys costs allocations, not
// memory.
const psMaxInterned = 256

// psNames interns the point and device names found in data (JSON and kv
// keys, device names) once they have passed their check, so that a frame
// whose names were seen before allocates none and is not checked again.
type psNames struct {
	mu      sync.Mutex
	points  map[string]string
	devices map[string]string
}

func psNewNames() *psNames {
	return &psNames{points: map[string]string{}, devices: map[string]string{}}
}

// point returns the checked, interned point name b.
func (n *psNames) point(b []byte) (string, error) {
	return n.intern(n.points, b, psPointName)
}

// device returns the checked, interned device name b.
func (n *psNames) device(b []byte) (string, error) {
	return n.intern(n.devices, b, psDeviceName)
}

func (n *psNames) intern(m map[string]string, b []byte, check func(string) error) (string, error) {
	n.mu.Lock()
	s, ok := m[string(b)] // no allocation for the lookup
	n.mu.Unlock()
	if ok {
		return s, nil
	}
	s = string(b)
	if err := check(s); err != nil {
		return "", err
	}
	n.mu.Lock()
	if len(m) >= psMaxInterned {
		clear(m)
	}
	m[s] = s
	n.mu.Unlock()
	return s, nil
}

// psDupLinear is how many points a frame may have before duplicates are
// looked up in a map rather than by a linear scan.
const psDupLinear = 16

// psDups finds duplicate point names among the points of one frame.
type psDups struct{ seen map[string]struct{} }

// add checks the last of pts, the frame's points so far, against the others.
func (d *psDups) add(pts []bridge.Point) error {
	n := len(pts)
	name := pts[n-1].Name
	if n <= psDupLinear {
		for i := range n - 1 {
			if pts[i].Name == name {
				return psDupError(name)
			}
		}
		return nil
	}
	if d.seen == nil {
		d.seen = make(map[string]struct{}, 2*n)
		for _, p := range pts[:n-1] {
			d.seen[p.Name] = struct{}{}
		}
	}
	if _, dup := d.seen[name]; dup {
		return psDupError(name)
	}
	d.seen[name] = struct{}{}
	return nil
}

func psDupError(name string) error {
	return fmt.Errorf("point %s appears twice", psQuote(name))
}

func psDeviceTwice() error { return errors.New("the frame names its device twice") }

// psTextValue types a text value: a JSON number, true, false, or a string.
// b is not empty.
func psTextValue(b []byte) (bridge.Value, error) {
	switch string(b) {
	case "true":
		return bridge.Bool(true), nil
	case "false":
		return bridge.Bool(false), nil
	}
	if c := b[0]; c == '-' || (c >= '0' && c <= '9') {
		if n, isInt, ok := psScanNumber(b, 0); ok && n == len(b) {
			v, ok := psNumber(b, isInt)
			if !ok {
				return bridge.Value{}, fmt.Errorf("number %s is out of range", psQuote(b))
			}
			return v, nil
		}
	}
	return bridge.String(string(b)), nil
}

// psScanNumber scans the JSON number that starts at b[i]: it returns the
// index after it, whether it has neither fraction nor exponent, and false
// when b[i:] does not start with a JSON number (n is then where it failed).
func psScanNumber(b []byte, i int) (n int, isInt, ok bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, false, false
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, false, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, false, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i, isInt, true
}

// psNumber converts a valid JSON number literal: an Int when it is an
// integer that fits int64, else a Number. It fails only for magnitudes
// beyond float64 (an underflow is 0: a tiny number is still a number).
func psNumber(lit []byte, isInt bool) (bridge.Value, bool) {
	if isInt {
		if i, ok := psParseInt64(lit); ok {
			return bridge.Int(i), true
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return bridge.Value{}, false
	}
	return bridge.Number(f), true
}

// psParseInt64 parses an integer literal (JSON grammar already checked),
// reporting false when it does not fit int64.
func psParseInt64(lit []byte) (int64, bool) {
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

// ─── regex ──────────────────────────────────────────────────────────────────

// psRegex is the regex parser.
type psRegex struct {
	re     *regexp.Regexp
	groups []psGroup // by submatch index; [0] is the whole match
	names  *psNames  // device names
}

// psGroup is one submatch of the pattern.
type psGroup struct {
	name   string // the point name from the pattern; "" for an unnamed group
	device bool   // the group names the device
}

func psNewRegex(pattern string) (*psRegex, error) {
	if pattern == "" {
		return nil, errors.New(`parser = "regex" needs a pattern, e.g. '^(?P<device>\w+) T=(?P<temperature>-?[\d.]+)$'`)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("invalid pattern: %v", err)
	}
	p := &psRegex{re: re, names: psNewNames()}
	points := 0
	for _, name := range re.SubexpNames() {
		g := psGroup{}
		switch {
		case name == "":
		case name == "device":
			g.device = true
		default:
			if err := bridge.CheckPointName(name); err != nil {
				return nil, fmt.Errorf("pattern group (?P<%s>…): %v", name, err)
			}
			g.name = name
			points++
		}
		p.groups = append(p.groups, g)
	}
	if points == 0 {
		return nil, errors.New("pattern has no named group (?P<point>…): it would yield no points")
	}
	return p, nil
}

// Parse implements Parser.
func (p *psRegex) Parse(payload []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	start := len(dst)
	if err := psCheckText(payload); err != nil {
		return "", dst, err
	}
	m := p.re.FindSubmatchIndex(payload)
	if m == nil {
		return "", dst, errors.New("no match for pattern")
	}
	device := ""
	deviceSet := false
	var dups psDups
	for i := 1; i < len(p.groups); i++ {
		g := p.groups[i]
		lo, hi := m[2*i], m[2*i+1]
		if lo < 0 || lo == hi || (g.name == "" && !g.device) {
			continue
		}
		b := payload[lo:hi]
		if g.device {
			if deviceSet {
				return "", dst[:start], psDeviceTwice()
			}
			d, err := p.names.device(b)
			if err != nil {
				return "", dst[:start], err
			}
			device, deviceSet = d, true
			continue
		}
		v, err := psTextValue(b)
		if err != nil {
			return "", dst[:start], fmt.Errorf("group %s: %w", g.name, err)
		}
		dst = append(dst, bridge.Point{Name: g.name, Value: v})
		if err := dups.add(dst[start:]); err != nil {
			return "", dst[:start], err
		}
	}
	if len(dst) == start {
		return "", dst, ErrNoPoints
	}
	return device, dst, nil
}

// ─── json ───────────────────────────────────────────────────────────────────

// psJSON is the json parser.
type psJSON struct {
	names *psNames
}

// Parse implements Parser.
func (p *psJSON) Parse(payload []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	start := len(dst)
	if err := psCheckText(payload); err != nil {
		return "", dst, err
	}
	device, dst, err := p.parse(payload, dst)
	if err != nil {
		return "", dst[:start], err
	}
	if len(dst) == start {
		return "", dst, ErrNoPoints
	}
	return device, dst, nil
}

func (p *psJSON) parse(payload []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	start := len(dst)
	s := psScanner{data: payload}
	switch s.next() {
	case '{':
	case '[':
		return "", dst, errors.New("a JSON array, not an object: arrays are not supported")
	default:
		if _, err := s.scalar(); err != nil {
			return "", dst, err
		}
		return "", dst, errors.New("a bare JSON value, not an object of point → value")
	}
	s.pos++
	if s.next() == '}' {
		s.pos++
		return "", dst, s.end()
	}
	device := ""
	deviceSet := false
	var dups psDups
	for {
		if s.next() != '"' {
			return "", dst, s.unexpected("a string key")
		}
		key, err := s.str()
		if err != nil {
			return "", dst, err
		}
		if s.next() != ':' {
			return "", dst, s.unexpected("':'")
		}
		s.pos++
		at := s.pos
		if string(key) == "device" {
			switch s.next() {
			case '"':
				b, err := s.str()
				if err != nil {
					return "", dst, err
				}
				if deviceSet {
					return "", dst, psDeviceTwice()
				}
				if device, err = p.names.device(b); err != nil {
					return "", dst, err
				}
				deviceSet = true
			case 'n':
				if err := s.literal("null"); err != nil {
					return "", dst, err
				}
			default:
				if _, err := s.scalar(); err != nil {
					return "", dst, err
				}
				return "", dst, fmt.Errorf(`key "device" (offset %d): the device name must be a string`, at)
			}
		} else {
			name, err := p.names.point(key)
			if err != nil {
				return "", dst, err
			}
			switch s.next() {
			case '{':
				return "", dst, fmt.Errorf("key %s (offset %d): nested objects are not supported", psQuote(key), s.pos)
			case '[':
				return "", dst, fmt.Errorf("key %s (offset %d): arrays are not supported", psQuote(key), s.pos)
			}
			v, err := s.scalar()
			if err != nil {
				return "", dst, fmt.Errorf("key %s: %w", psQuote(key), err)
			}
			if v.Kind != bridge.KindNone { // null: left out
				dst = append(dst, bridge.Point{Name: name, Value: v})
				if err := dups.add(dst[start:]); err != nil {
					return "", dst, err
				}
			}
		}
		switch s.next() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return device, dst, s.end()
		default:
			return "", dst, s.unexpected("',' or '}'")
		}
	}
}

// psScanner is a small RFC 8259 scanner for an object of scalars, after the
// one of adapters/coap: integers keep their precision, errors carry byte
// offsets, and only the strings it returns are allocated. Its input is
// valid UTF-8 (checked before).
type psScanner struct {
	data []byte
	pos  int
}

func (s *psScanner) syntaxError(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

// unexpected reports the byte at pos, or the end of input, where want was
// expected.
func (s *psScanner) unexpected(want string) error {
	if s.pos >= len(s.data) {
		return s.syntaxError("unexpected end of input, expecting %s", want)
	}
	c := s.data[s.pos]
	if c >= 0x20 && c < 0x7f {
		return s.syntaxError("invalid character %q, expecting %s", c, want)
	}
	return s.syntaxError("invalid byte 0x%02x, expecting %s", c, want)
}

// next returns the byte at pos after white space, or 0 at the end.
func (s *psScanner) next() byte {
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// end checks that nothing but white space follows the object.
func (s *psScanner) end() error {
	if s.next() != 0 {
		return s.syntaxError("unexpected data after the object")
	}
	return nil
}

// str parses the string at pos (which holds '"'). The result aliases data
// when the string has no escapes.
func (s *psScanner) str() ([]byte, error) {
	s.pos++
	i := s.pos
	for i < len(s.data) {
		c := s.data[i]
		if c == '"' {
			raw := s.data[s.pos:i]
			s.pos = i + 1
			return raw, nil
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
			return nil, s.syntaxError("unterminated string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return b, nil
		case c < 0x20:
			return nil, s.syntaxError("control character 0x%02x in string", c)
		case c != '\\':
			b = append(b, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			return nil, s.syntaxError("unterminated string")
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
			r, ok := psHex4(s.data[s.pos+2:])
			if !ok {
				return nil, s.syntaxError(`invalid \u escape in string`)
			}
			s.pos += 6
			if utf16.IsSurrogate(r) {
				// A valid pair is a high then a low surrogate; anything
				// else becomes U+FFFD, as encoding/json does.
				r2 := rune(-1)
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					if v, ok := psHex4(s.data[s.pos+2:]); ok {
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
			if e >= 0x20 && e < 0x7f {
				return nil, s.syntaxError(`invalid escape "\%c" in string`, e)
			}
			return nil, s.syntaxError(`invalid escape in string`)
		}
		s.pos += 2
	}
}

func psHex4(b []byte) (rune, bool) {
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

// literal consumes the literal w (true, false or null) at pos.
func (s *psScanner) literal(w string) error {
	if len(s.data)-s.pos >= len(w) && string(s.data[s.pos:s.pos+len(w)]) == w {
		s.pos += len(w)
		return nil
	}
	return s.unexpected("a value")
}

// scalar parses the value at pos: a number, string, bool, or null (the zero
// Value). Objects and arrays are refused.
func (s *psScanner) scalar() (bridge.Value, error) {
	switch c := s.next(); {
	case c == '"':
		b, err := s.str()
		if err != nil {
			return bridge.Value{}, err
		}
		return bridge.String(string(b)), nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.pos
		end, isInt, ok := psScanNumber(s.data, start)
		if !ok {
			s.pos = end
			return bridge.Value{}, s.unexpected("a digit")
		}
		s.pos = end
		v, ok := psNumber(s.data[start:end], isInt)
		if !ok {
			s.pos = start
			return bridge.Value{}, s.syntaxError("number %s is out of range", psQuote(s.data[start:end]))
		}
		return v, nil
	case c == 't':
		return bridge.Bool(true), s.literal("true")
	case c == 'f':
		return bridge.Bool(false), s.literal("false")
	case c == 'n':
		return bridge.Value{}, s.literal("null")
	case c == '{':
		return bridge.Value{}, s.syntaxError("nested objects are not supported")
	case c == '[':
		return bridge.Value{}, s.syntaxError("arrays are not supported")
	}
	return bridge.Value{}, s.unexpected("a value")
}

// ─── kv ─────────────────────────────────────────────────────────────────────

// psKV is the key=value parser.
type psKV struct {
	names *psNames
}

// psIsKVSep reports a separator of key=value pairs.
func psIsKVSep(c byte) bool { return psIsSpace(c) || c == ',' || c == ';' }

// Parse implements Parser.
func (p *psKV) Parse(payload []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	start := len(dst)
	if err := psCheckText(payload); err != nil {
		return "", dst, err
	}
	device, dst, err := p.parse(payload, dst)
	if err != nil {
		return "", dst[:start], err
	}
	if len(dst) == start {
		return "", dst, ErrNoPoints
	}
	return device, dst, nil
}

func (p *psKV) parse(b []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	start := len(dst)
	device := ""
	deviceSet := false
	var dups psDups
	i := 0
	for {
		for i < len(b) && psIsKVSep(b[i]) {
			i++
		}
		if i >= len(b) {
			return device, dst, nil
		}
		ks := i
		for i < len(b) && b[i] != '=' && !psIsKVSep(b[i]) {
			i++
		}
		if i >= len(b) || b[i] != '=' {
			return "", dst, fmt.Errorf("%s at offset %d is not key=value", psQuote(b[ks:i]), ks)
		}
		key := b[ks:i]
		i++
		var val []byte
		quoted := false
		if i < len(b) && b[i] == '"' {
			quoted = true
			var err error
			if val, i, err = psKVQuoted(b, i); err != nil {
				return "", dst, fmt.Errorf("key %s: %w", psQuote(key), err)
			}
		} else {
			vs := i
			for i < len(b) && !psIsKVSep(b[i]) {
				i++
			}
			val = b[vs:i]
		}
		if string(key) == "device" {
			if len(val) == 0 && !quoted {
				continue
			}
			if deviceSet {
				return "", dst, psDeviceTwice()
			}
			d, err := p.names.device(val)
			if err != nil {
				return "", dst, err
			}
			device, deviceSet = d, true
			continue
		}
		name, err := p.names.point(key)
		if err != nil {
			return "", dst, err
		}
		var v bridge.Value
		switch {
		case quoted:
			v = bridge.String(string(val))
		case len(val) == 0:
			continue
		default:
			if v, err = psTextValue(val); err != nil {
				return "", dst, fmt.Errorf("key %s: %w", psQuote(key), err)
			}
		}
		dst = append(dst, bridge.Point{Name: name, Value: v})
		if err := dups.add(dst[start:]); err != nil {
			return "", dst, err
		}
	}
}

// psKVQuoted reads the quoted value whose opening quote is b[i]: it returns
// the value, unescaped, and the index after the closing quote.
func psKVQuoted(b []byte, i int) (val []byte, next int, err error) {
	open := i
	i++
	vs := i
	escaped := false
	for {
		if i >= len(b) {
			return nil, 0, fmt.Errorf("quoted value at offset %d has no closing quote", open)
		}
		c := b[i]
		if c == '"' {
			break
		}
		if c == '\\' && i+1 < len(b) && (b[i+1] == '"' || b[i+1] == '\\') {
			escaped = true
			i++
		}
		i++
	}
	val = b[vs:i]
	i++
	if i < len(b) && !psIsKVSep(b[i]) {
		return nil, 0, fmt.Errorf("text after the closing quote at offset %d", i-1)
	}
	if escaped {
		u := make([]byte, 0, len(val))
		for j := 0; j < len(val); j++ {
			if val[j] == '\\' && j+1 < len(val) && (val[j+1] == '"' || val[j+1] == '\\') {
				j++
			}
			u = append(u, val[j])
		}
		val = u
	}
	return val, i, nil
}

// ─── csv ────────────────────────────────────────────────────────────────────

// psCSV is the csv parser.
type psCSV struct {
	columns   []string // point names in order; "device" names the device
	deviceCol int      // index of the device column, -1 when none
	names     *psNames // device names
}

func psNewCSV(columns []string) (*psCSV, error) {
	if len(columns) == 0 {
		return nil, errors.New(`parser = "csv" needs columns: the point names in column order`)
	}
	p := &psCSV{columns: make([]string, len(columns)), deviceCol: -1, names: psNewNames()}
	copy(p.columns, columns)
	for i, col := range columns {
		if col == "device" {
			if p.deviceCol >= 0 {
				return nil, fmt.Errorf("column %q appears twice", col)
			}
			p.deviceCol = i
			continue
		}
		if err := bridge.CheckPointName(col); err != nil {
			return nil, fmt.Errorf("column %d: %v", i+1, err)
		}
		for _, prev := range columns[:i] {
			if prev == col {
				return nil, fmt.Errorf("column %q appears twice", col)
			}
		}
	}
	if p.deviceCol >= 0 && len(columns) == 1 {
		return nil, errors.New(`the only column is "device": it would yield no points`)
	}
	return p, nil
}

// Parse implements Parser.
func (p *psCSV) Parse(payload []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	start := len(dst)
	if err := psCheckText(payload); err != nil {
		return "", dst, err
	}
	device, dst, err := p.parse(payload, dst)
	if err != nil {
		return "", dst[:start], err
	}
	if len(dst) == start {
		return "", dst, ErrNoPoints
	}
	return device, dst, nil
}

func (p *psCSV) parse(b []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	device := ""
	n := 0 // fields so far
	i := 0
	for {
		// One field from b[i]; next is the index of the ',' after it, or
		// len(b).
		j := i
		for j < len(b) && psIsSpace(b[j]) {
			j++
		}
		var val []byte
		var next int
		quoted := j < len(b) && b[j] == '"'
		if quoted {
			k := j + 1
			escaped := false
			for {
				if k >= len(b) {
					return "", dst, fmt.Errorf("field %d: quoted field has no closing quote", n+1)
				}
				if b[k] == '"' {
					if k+1 < len(b) && b[k+1] == '"' {
						escaped = true
						k += 2
						continue
					}
					break
				}
				k++
			}
			val = b[j+1 : k]
			k++
			for k < len(b) && psIsSpace(b[k]) {
				k++
			}
			if k < len(b) && b[k] != ',' {
				return "", dst, fmt.Errorf("field %d: text after the closing quote", n+1)
			}
			next = k
			if escaped && n < len(p.columns) {
				u := make([]byte, 0, len(val))
				for x := 0; x < len(val); x++ {
					u = append(u, val[x])
					if val[x] == '"' {
						x++ // the second quote of ""
					}
				}
				val = u
			}
		} else {
			next = i
			for next < len(b) && b[next] != ',' {
				next++
			}
			val = psTrim(b[i:next])
		}
		if n < len(p.columns) {
			var err error
			if device, dst, err = p.field(n, val, quoted, device, dst); err != nil {
				return "", dst, err
			}
		}
		n++
		if next >= len(b) {
			break
		}
		i = next + 1
	}
	if n != len(p.columns) {
		return "", dst, fmt.Errorf("%d fields, but %d columns are configured", n, len(p.columns))
	}
	return device, dst, nil
}

// field adds field n (0-based) of a frame.
func (p *psCSV) field(n int, val []byte, quoted bool, device string, dst []bridge.Point) (string, []bridge.Point, error) {
	if len(val) == 0 && !quoted {
		return device, dst, nil
	}
	if n == p.deviceCol {
		d, err := p.names.device(val)
		if err != nil {
			return "", dst, fmt.Errorf("field %d (device): %w", n+1, err)
		}
		return d, dst, nil
	}
	v := bridge.String("")
	if quoted {
		if len(val) > 0 {
			v = bridge.String(string(val))
		}
	} else {
		var err error
		if v, err = psTextValue(val); err != nil {
			return "", dst, fmt.Errorf("field %d (%s): %w", n+1, p.columns[n], err)
		}
	}
	return device, append(dst, bridge.Point{Name: p.columns[n], Value: v}), nil
}

// ─── binary ─────────────────────────────────────────────────────────────────

// psBinary is the binary parser.
type psBinary struct {
	fields []psField
}

// psType is the type of a binary field.
type psType uint8

const (
	psBool psType = iota + 1
	psInt16
	psUint16
	psInt32
	psUint32
	psInt64
	psUint64
	psFloat32
	psFloat64
)

// psParseType returns the type named s as in gateway.toml, 0 if none.
func psParseType(s string) psType {
	switch s {
	case "bool":
		return psBool
	case "int16":
		return psInt16
	case "uint16":
		return psUint16
	case "int32":
		return psInt32
	case "uint32":
		return psUint32
	case "int64":
		return psInt64
	case "uint64":
		return psUint64
	case "float32":
		return psFloat32
	case "float64":
		return psFloat64
	}
	return 0
}

// size returns the bytes a value of the type takes.
func (t psType) size() int {
	switch t {
	case psBool:
		return 1
	case psInt16, psUint16:
		return 2
	case psInt32, psUint32, psFloat32:
		return 4
	}
	return 8
}

// psField is one [[uart.field]], ready to read.
type psField struct {
	name     string
	typ      psType
	typName  string
	offset   int
	size     int
	little   bool
	scale    float64
	divisor  float64 // n when scale is exactly 1/n for an integer n ≥ 2, else 0
	decimals int     // decimal places of scale, to round scaled integers; 0 or >15: none
}

func psNewBinary(fields []config.UARTField) (*psBinary, error) {
	if len(fields) == 0 {
		return nil, errors.New(`parser = "binary" needs at least one [[uart.field]]`)
	}
	p := &psBinary{fields: make([]psField, 0, len(fields))}
	for i, c := range fields {
		fail := func(format string, args ...any) (*psBinary, error) {
			return nil, fmt.Errorf("field %d (%q): %s", i+1, c.Name, fmt.Sprintf(format, args...))
		}
		if err := bridge.CheckPointName(c.Name); err != nil {
			return fail("%v", err)
		}
		for _, prev := range fields[:i] {
			if prev.Name == c.Name {
				return fail("the name is already taken by another field")
			}
		}
		f := psField{name: c.Name, offset: c.Offset, scale: c.Scale, typName: c.Type}
		if f.typ = psParseType(c.Type); f.typ == 0 {
			return fail(`unknown type %q: use "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32" or "float64"`, c.Type)
		}
		f.size = f.typ.size()
		switch c.Order {
		case "big", "":
		case "little":
			f.little = true
		default:
			return fail(`unknown byte order %q: use "big" or "little"`, c.Order)
		}
		if f.offset < 0 {
			return fail("offset %d is negative", f.offset)
		}
		if f.scale == 0 {
			f.scale = 1
		}
		if math.IsNaN(f.scale) || math.IsInf(f.scale, 0) {
			return fail("scale must be a finite number, not %v", f.scale)
		}
		f.divisor = bridge.ScaleDivisor(f.scale)
		f.decimals = bridge.Decimals(f.scale)
		p.fields = append(p.fields, f)
	}
	return p, nil
}

// Parse implements Parser.
func (p *psBinary) Parse(payload []byte, dst []bridge.Point) (string, []bridge.Point, error) {
	start := len(dst)
	if len(payload) == 0 {
		return "", dst, ErrEmpty
	}
	for i := range p.fields {
		f := &p.fields[i]
		v, err := f.decode(payload)
		if err != nil {
			return "", dst[:start], err
		}
		dst = append(dst, bridge.Point{Name: f.name, Value: v})
	}
	return "", dst, nil
}

// decode reads the field's value from payload.
func (f *psField) decode(payload []byte) (bridge.Value, error) {
	if f.offset > len(payload)-f.size {
		return bridge.Value{}, fmt.Errorf("field %q: %s at offset %d needs a frame of %d bytes, got %d",
			f.name, f.typName, f.offset, f.offset+f.size, len(payload))
	}
	b := payload[f.offset : f.offset+f.size]
	var u uint64
	switch f.size {
	case 1:
		u = uint64(b[0])
	case 2:
		if f.little {
			u = uint64(binary.LittleEndian.Uint16(b))
		} else {
			u = uint64(binary.BigEndian.Uint16(b))
		}
	case 4:
		if f.little {
			u = uint64(binary.LittleEndian.Uint32(b))
		} else {
			u = uint64(binary.BigEndian.Uint32(b))
		}
	default:
		if f.little {
			u = binary.LittleEndian.Uint64(b)
		} else {
			u = binary.BigEndian.Uint64(b)
		}
	}
	var raw float64
	switch f.typ {
	case psBool:
		return bridge.Bool(u != 0), nil
	case psFloat32:
		x := math.Float32frombits(uint32(u))
		if x != x || math.IsInf(float64(x), 0) {
			return bridge.Value{}, fmt.Errorf("field %q: float32 %v is not a finite number", f.name, x)
		}
		raw = bridge.ShortestFloat32(x)
	case psFloat64:
		raw = math.Float64frombits(u)
		if !psFinite(raw) {
			return bridge.Value{}, fmt.Errorf("field %q: float64 %v is not a finite number", f.name, raw)
		}
	default:
		var i int64
		big := false
		switch f.typ {
		case psInt16:
			i = int64(int16(u))
		case psUint16, psUint32:
			i = int64(u)
		case psInt32:
			i = int64(int32(u))
		case psInt64:
			i = int64(u)
		case psUint64:
			i, big = int64(u), u > math.MaxInt64
		}
		if f.scale == 1 && !big {
			return bridge.Int(i), nil
		}
		if big {
			raw = float64(u)
		} else {
			raw = float64(i)
		}
	}
	v := f.scaled(raw)
	if f.typ != psFloat32 && f.typ != psFloat64 {
		v = bridge.RoundDecimals(v, f.decimals)
	}
	if !psFinite(v) {
		return bridge.Value{}, fmt.Errorf("field %q: %v times scale %v is not a finite number", f.name, raw, f.scale)
	}
	return bridge.Number(v), nil
}

// scaled returns raw * scale, dividing by n for a scale 1/n: that is
// correctly rounded where multiplying by 0.1 is not (215 * 0.1 =
// 21.500000000000004, 215 / 10 = 21.5).
func (f *psField) scaled(raw float64) float64 {
	if f.divisor != 0 {
		return raw / f.divisor
	}
	return raw * f.scale
}

func psFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
