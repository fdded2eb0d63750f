package mapping

import (
	"github.com/causeway/causeway/bridge"

	"errors"
	"fmt"
	"strings"
)

// maxTopicLen is the longest topic name MQTT can carry.
const maxTopicLen = 65535

type placeholder uint8

const (
	phLiteral placeholder = iota
	phAdapter
	phDevice
	phPoint
)

type part struct {
	ph  placeholder
	lit string // for phLiteral
}

// template is a compiled topic template: literals (with {gateway} already
// substituted) and placeholders.
type template struct {
	parts    []part
	litLen   int // total length of the literals
	nAdapter int // how many times each placeholder appears
	nDevice  int
	nPoint   int
	hasPoint bool
}

// compileTemplate parses a topic template; {gateway} becomes gateway.
func compileTemplate(src, gateway string) (template, error) {
	var t template
	if src == "" {
		return t, errors.New("missing: a topic template is required")
	}
	if strings.HasPrefix(src, "$") {
		return t, fmt.Errorf("%q: must not start with $ (topics starting with $ belong to the broker)", src)
	}
	if err := bridge.CheckTopicText(src, true); err != nil {
		return t, fmt.Errorf("%q: %w is not allowed in a topic to publish to", src, err)
	}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			t.litLen += lit.Len()
			lit.Reset()
		}
	}
	for rest := src; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			lit.WriteString(rest)
			break
		}
		if rest[open] == '}' {
			return template{}, fmt.Errorf(`%q: "}" without "{"`, src)
		}
		lit.WriteString(rest[:open])
		rest = rest[open:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return template{}, fmt.Errorf(`%q: unclosed "{"`, src)
		}
		name := rest[:end+1]
		rest = rest[end+1:]
		switch name {
		case "{gateway}":
			lit.WriteString(gateway)
			continue
		case "{adapter}":
			flush()
			t.parts = append(t.parts, part{ph: phAdapter})
			t.nAdapter++
		case "{device}":
			flush()
			t.parts = append(t.parts, part{ph: phDevice})
			t.nDevice++
		case "{point}":
			flush()
			t.parts = append(t.parts, part{ph: phPoint})
			t.nPoint++
			t.hasPoint = true
		default:
			return template{}, fmt.Errorf("%q: unknown placeholder %s (known: {gateway}, {adapter}, {device}, {point})", src, name)
		}
	}
	flush()
	levels := strings.Split(src, "/")
	last := levels[len(levels)-1]
	if last == "result" && len(levels) > 1 && levels[len(levels)-2] == "set" {
		last = "set" // ".../set/result"
	}
	if bridge.ReservedDevice(last) {
		return template{}, fmt.Errorf("%q: the last level %q is reserved for the gateway's own topics (commands, availability, status, stats)", src, last)
	}
	if t.litLen > maxTopicLen {
		return template{}, fmt.Errorf("topic template longer than %d bytes", maxTopicLen)
	}
	return t, nil
}

// size is the length of the topic for these names.
func (t *template) size(adapter, device, point string) int {
	return t.litLen + t.nAdapter*len(adapter) + t.nDevice*len(device) + t.nPoint*len(point)
}

// length is size, and whether the topic can be published: not longer than
// MQTT allows, and not starting with '$' (a name at the start of the
// template could make it a broker topic).
func (t *template) length(adapter, device, point string) (int, bool) {
	n := t.size(adapter, device, point)
	if n > maxTopicLen {
		return n, false
	}
	var first string
	switch t.parts[0].ph {
	case phAdapter:
		first = adapter
	case phDevice:
		first = device
	case phPoint:
		first = point
	}
	return n, !strings.HasPrefix(first, "$")
}

// write appends the topic for these names to b.
func (t *template) write(b *strings.Builder, adapter, device, point string) {
	for i := range t.parts {
		switch p := &t.parts[i]; p.ph {
		case phLiteral:
			b.WriteString(p.lit)
		case phAdapter:
			b.WriteString(adapter)
		case phDevice:
			b.WriteString(device)
		case phPoint:
			b.WriteString(point)
		}
	}
}
