package config

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	File string // the file name given to Load or Parse
	Path string // key path, e.g. "coap[1].max_payload" or "route[2].qos"; "" for syntax errors
	Line int    // 1-based line in the file; 0 if unknown
	Msg  string
}

// Error formats the problem as "gateway.toml:12: coap[1].max_payload: msg".
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration file. Load and Parse
// return it (as *Errors) whenever the file is not valid.
type Errors struct {
	List []Error // sorted by line; errors without a line come last
}

// Error prints one error per line, without a trailing newline.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// sortErrors orders errors by line, keeping the order of discovery within a
// line; errors without a line go last.
func sortErrors(list []Error) {
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i].Line, list[j].Line
		if (a == 0) != (b == 0) {
			return b == 0
		}
		return a < b
	})
}
