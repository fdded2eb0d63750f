package config

import (
	"strconv"
	"strings"
)

// Key paths name a value the way error messages show it: table keys joined
// by ".", array elements (of [[tables]] and of inline arrays) as "[i]" with
// a 0-based index, keys that are not bare TOML keys quoted:
//
//	coap[1].max_payload   route[0].qos   broker.user[2].publish[0]

// joinKey appends key to path.
func joinKey(path, key string) string {
	k := key
	if !isBareKey(key) {
		k = strconv.Quote(key)
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// indexPath appends an array index to path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parentPath strips the last component (".key" or "[i]") of path; it
// returns "" for a top-level key.
func parentPath(path string) string {
	cut, inQuote := 0, false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '.' || c == '['):
			cut = i
		}
	}
	return path[:cut]
}

// headerName turns a path into the table name a header would use:
// "coap[0].device" → "coap.device".
func headerName(path string) string {
	var b strings.Builder
	inQuote, skip := false, false
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case skip:
			if c == ']' {
				skip = false
			}
			continue
		case inQuote && c == '\\':
			b.WriteByte(c)
			i++
			if i < len(path) {
				b.WriteByte(path[i])
			}
			continue
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '[':
			skip = true
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// lineScanner finds the line of every key path in a TOML document that the
// TOML parser has already accepted. It tracks [table] and [[array]] headers
// (with their indexes), dotted keys, inline tables and arrays, strings of
// every kind and comments. On input that is not valid TOML it still ends
// and never panics; its answers are then only approximate.
type lineScanner struct {
	src    []byte
	pos    int
	line   int
	lines  map[string]int // key path → 1-based line of its first appearance
	arrays map[string]int // [[array]] path → number of elements so far
}

// indexLines returns the line of every key path defined in src.
func indexLines(src []byte) map[string]int {
	s := &lineScanner{src: src, line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	if strings.HasPrefix(string(src[:min(3, len(src))]), "\uFEFF") {
		s.pos = 3 // byte order mark
	}
	table := ""
	for {
		s.skipBlank(true)
		if s.eof() {
			break
		}
		before := s.pos
		if s.src[s.pos] == '[' {
			table = s.header()
		} else {
			s.keyval(table)
		}
		if s.pos == before {
			s.pos++ // never loop on unexpected input
		}
	}
	return s.lines
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *lineScanner) record(path string, line int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

// skipBlank skips spaces and tabs, comments, and newlines too when nl is
// set.
func (s *lineScanner) skipBlank(nl bool) {
	for !s.eof() {
		switch s.src[s.pos] {
		case ' ', '\t', '\r':
			s.pos++
		case '\n':
			if !nl {
				return
			}
			s.line++
			s.pos++
		case '#':
			for !s.eof() && s.src[s.pos] != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

// header reads a [table] or [[array]] header and returns its path.
func (s *lineScanner) header() string {
	line := s.line
	s.pos++
	array := s.peek() == '['
	if array {
		s.pos++
	}
	pieces := s.keyPieces()
	for s.peek() == ']' {
		s.pos++
	}
	cur := ""
	for i, p := range pieces {
		cur = joinKey(cur, p)
		if i == len(pieces)-1 && array {
			s.record(cur, line) // the array itself: its first element's line
			n := s.arrays[cur]
			s.arrays[cur] = n + 1
			cur = indexPath(cur, n)
		} else if n, ok := s.arrays[cur]; ok && n > 0 {
			cur = indexPath(cur, n-1)
		}
		s.record(cur, line)
	}
	return cur
}

// keyval reads `key = value` under prefix.
func (s *lineScanner) keyval(prefix string) {
	line := s.line
	pieces := s.keyPieces()
	if s.peek() != '=' {
		// Not a key/value pair: skip the rest of the line.
		for !s.eof() && s.src[s.pos] != '\n' {
			s.pos++
		}
		return
	}
	s.pos++
	cur := prefix
	for _, p := range pieces {
		cur = joinKey(cur, p)
		s.record(cur, line)
	}
	s.value(cur)
}

// keyPieces reads a dotted key and stops before "=", "]" or a newline.
func (s *lineScanner) keyPieces() []string {
	var pieces []string
	for {
		s.skipBlank(false)
		if s.eof() {
			return pieces
		}
		switch c := s.src[s.pos]; c {
		case '"', '\'':
			start := s.pos
			s.str()
			raw := string(s.src[start:s.pos])
			raw = strings.TrimPrefix(raw, string(c))
			raw = strings.TrimSuffix(raw, string(c))
			if c == '"' {
				raw = unescapeBasic(raw)
			}
			pieces = append(pieces, raw)
		default:
			start := s.pos
			for !s.eof() && !strings.ContainsRune(" \t\r\n.=[]#,{}\"'", rune(s.src[s.pos])) {
				s.pos++
			}
			if s.pos == start {
				return pieces
			}
			pieces = append(pieces, string(s.src[start:s.pos]))
		}
		s.skipBlank(false)
		if s.peek() != '.' {
			return pieces
		}
		s.pos++
	}
}

// value skips one value, recording the paths of inline array elements and
// inline table keys.
func (s *lineScanner) value(path string) {
	s.skipBlank(false)
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.pos++
		i := 0
		for {
			s.skipBlank(true)
			if s.eof() {
				return
			}
			switch s.src[s.pos] {
			case ']':
				s.pos++
				return
			case ',':
				s.pos++
				i++
				continue
			}
			before := s.pos
			elem := indexPath(path, i)
			s.record(elem, s.line)
			s.value(elem)
			if s.pos == before {
				s.pos++
			}
		}
	case '{':
		s.pos++
		for {
			s.skipBlank(true)
			if s.eof() {
				return
			}
			switch s.src[s.pos] {
			case '}':
				s.pos++
				return
			case ',':
				s.pos++
				continue
			}
			before := s.pos
			s.keyval(path)
			if s.pos == before {
				s.pos++
			}
		}
	default:
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.src[s.pos])) {
			s.pos++
		}
	}
}

// str skips a string of any of the four kinds, counting newlines.
func (s *lineScanner) str() {
	q := s.src[s.pos]
	triple := string([]byte{q, q, q})
	if strings.HasPrefix(string(s.src[s.pos:min(s.pos+3, len(s.src))]), triple) {
		s.pos += 3
		for !s.eof() {
			c := s.src[s.pos]
			switch {
			case c == '\\' && q == '"':
				s.pos++
				if !s.eof() && s.src[s.pos] == '\n' {
					s.line++
				}
			case c == '\n':
				s.line++
			case c == q && strings.HasPrefix(string(s.src[s.pos:min(s.pos+3, len(s.src))]), triple):
				s.pos += 3
				for n := 0; n < 2 && s.peek() == q; n++ {
					s.pos++
				}
				return
			}
			s.pos++
		}
		return
	}
	s.pos++
	for !s.eof() {
		c := s.src[s.pos]
		switch {
		case c == '\\' && q == '"':
			s.pos++
		case c == q:
			s.pos++
			return
		case c == '\n':
			return
		}
		s.pos++
	}
}

// lineOf returns the line of path, or of its nearest ancestor that has one.
func lineOf(lines map[string]int, path string) int {
	for {
		if l, ok := lines[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// unescapeBasic decodes the escapes of a TOML basic string (TOML 1.0 and
// 1.1: \b \t \n \f \r \e \" \\ \xHH \uHHHH \UHHHHHHHH); an invalid escape
// is kept as it is.
func unescapeBasic(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(c)
		case 'x', 'u', 'U':
			n := 2
			switch c {
			case 'u':
				n = 4
			case 'U':
				n = 8
			}
			if i+1+n > len(s) {
				b.WriteByte('\\')
				b.WriteByte(c)
				continue
			}
			r, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil {
				b.WriteByte('\\')
				b.WriteByte(c)
				continue
			}
			b.WriteRune(rune(r))
			i += n
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}
