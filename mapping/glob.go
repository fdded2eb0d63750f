package mapping

import (
	"github.com/causeway/causeway/bridge"

	"errors"
	"fmt"
	"strings"
)

// subjectSegments is the number of segments of "{adapter}/{device}/{point}".
const subjectSegments = 3

// segment matches one segment of the subject.
type segment struct {
	src   string   // the pattern segment
	any   bool     // "*": matches everything
	parts []string // pattern split on "*"; nil for a literal
}

func newSegment(src string) segment {
	if src == "*" {
		return segment{src: src, any: true}
	}
	if !strings.Contains(src, "*") {
		return segment{src: src}
	}
	return segment{src: src, parts: strings.Split(src, "*")}
}

func (s *segment) match(v string) bool {
	if s.any {
		return true
	}
	if s.parts == nil {
		return v == s.src
	}
	p := s.parts
	first, last := p[0], p[len(p)-1]
	if len(v) < len(first)+len(last) || !strings.HasPrefix(v, first) || !strings.HasSuffix(v, last) {
		return false
	}
	v = v[len(first) : len(v)-len(last)]
	for _, mid := range p[1 : len(p)-1] {
		i := strings.Index(v, mid)
		if i < 0 {
			return false
		}
		v = v[i+len(mid):]
	}
	return true
}

// glob is a compiled match pattern. Because the subject always has exactly
// three segments, every "**" is expanded at compile time: a glob is a short
// list (at most three) of alternatives of three single-segment matchers.
type glob struct {
	alts [][subjectSegments]segment
}

// prefix returns the bit set of the alternatives whose first two segments
// match adapter and device; the point is checked by point.
func (g *glob) prefix(adapter, device string) uint8 {
	var m uint8
	for i := range g.alts {
		a := &g.alts[i]
		if a[0].match(adapter) && a[1].match(device) {
			m |= 1 << i
		}
	}
	return m
}

// point reports whether an alternative in mask m matches the point.
func (g *glob) point(m uint8, point string) bool {
	for i := range g.alts {
		if m&(1<<i) != 0 && g.alts[i][2].match(point) {
			return true
		}
	}
	return false
}

// match reports whether the glob matches adapter/device/point.
func (g *glob) match(adapter, device, point string) bool {
	m := g.prefix(adapter, device)
	return m != 0 && g.point(m, point)
}

// compileGlob parses a match pattern.
func compileGlob(pat string) (glob, error) {
	if pat == "" {
		return glob{}, errors.New(`missing: a glob on "{adapter}/{device}/{point}" is required`)
	}
	if err := checkGlobText(pat); err != nil {
		return glob{}, fmt.Errorf("%q: %w", pat, err)
	}
	var segs []string
	fixed := 0
	for _, s := range strings.Split(pat, "/") {
		switch {
		case s == "":
			return glob{}, fmt.Errorf("%q: empty segment", pat)
		case s == "**":
			if len(segs) > 0 && segs[len(segs)-1] == "**" {
				continue // "**/**" is "**"
			}
		case strings.Contains(s, "**"):
			return glob{}, fmt.Errorf(`%q: "**" must be a whole segment; "*" matches within one segment`, pat)
		default:
			fixed++
		}
		segs = append(segs, s)
	}
	if fixed > subjectSegments || (fixed < subjectSegments && !strings.Contains(pat, "**")) {
		return glob{}, fmt.Errorf(`%q can never match: it has %d segments and "{adapter}/{device}/{point}" has %d (use "**" to span segments)`, pat, fixed, subjectSegments)
	}
	var g glob
	var cur []string
	expand(segs, subjectSegments-fixed, cur, func(alt []string) {
		for _, a := range g.alts {
			if a[0].src == alt[0] && a[1].src == alt[1] && a[2].src == alt[2] {
				return
			}
		}
		g.alts = append(g.alts, [subjectSegments]segment{newSegment(alt[0]), newSegment(alt[1]), newSegment(alt[2])})
	})
	return g, nil
}

// expand calls emit with every way of replacing each "**" in segs by zero or
// more "*" so that spare segments are added in all. Calls are sequential and
// emit copies what it keeps, so the alternatives may share backing arrays.
func expand(segs []string, spare int, cur []string, emit func([]string)) {
	if len(segs) == 0 {
		if spare == 0 {
			emit(cur)
		}
		return
	}
	if segs[0] != "**" {
		expand(segs[1:], spare, append(cur, segs[0]), emit)
		return
	}
	for k := 0; k <= spare; k++ {
		next := cur
		for range k {
			next = append(next, "*")
		}
		expand(segs[1:], spare-k, next, emit)
	}
}

// checkGlobText refuses what is not glob syntax here, so that a pattern
// written for a shell or for MQTT fails loudly instead of never matching.
func checkGlobText(pat string) error {
	for _, c := range pat {
		switch c {
		case '+', '#':
			return fmt.Errorf(`%q is an MQTT wildcard, not glob syntax: use "*" for one segment or "**" for several`, c)
		case '?', '[', ']', '{', '}', '\\':
			return fmt.Errorf(`%q is not supported: only "*" and "**" are wildcards`, c)
		}
	}
	return bridge.CheckTopicText(pat, true)
}
