package mapping

import (
	"math/rand/v2"
	"path"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob    string
		subject string // adapter/device/point
		want    bool
	}{
		{"**", "coap/greenhouse/temperature", true},
		{"**", "a/b/c", true},
		{"*/*/*", "coap/greenhouse/temperature", true},
		{"coap/**", "coap/greenhouse/temperature", true},
		{"coap/**", "modbus/boiler/supply_temp", false},
		{"coap/**", "coapx/greenhouse/temperature", false},
		{"*/*/temperature", "coap/greenhouse/temperature", true},
		{"*/*/temperature", "uart/x/temperature", true},
		{"*/*/temperature", "coap/greenhouse/humidity", false},
		{"*/*/temperature", "coap/greenhouse/temperature2", false},
		{"*/temperature", "coap/greenhouse/temperature", false}, // invalid, see TestGlobErrors; match never true
		{"**/temperature", "coap/greenhouse/temperature", true},
		{"**/temperature", "coap/temperature/x", false},
		{"**/greenhouse/**", "coap/greenhouse/temperature", true},
		{"**/greenhouse/**", "greenhouse/x/y", true},
		{"**/greenhouse/**", "x/y/greenhouse", true},
		{"**/greenhouse/**", "x/greenhousex/y", false},
		{"coap/**/temperature", "coap/greenhouse/temperature", true},
		{"coap/**/temperature", "coap/temperature/x", false},
		{"coap/greenhouse/**/temperature", "coap/greenhouse/temperature", true}, // ** matches zero segments
		{"**/coap/greenhouse/temperature", "coap/greenhouse/temperature", true},
		{"coap/**/**", "coap/a/b", true},
		{"modbus/boiler/*", "modbus/boiler/supply_temp", true},
		{"modbus/boiler/*", "modbus/boiler2/supply_temp", false},
		{"modbus/boiler*/*", "modbus/boiler2/supply_temp", true},
		{"modbus/*boiler/*", "modbus/old-boiler/x", true},
		{"modbus/b*r/*", "modbus/boiler/x", true},
		{"modbus/b*r/*", "modbus/br/x", true},
		{"modbus/b*r/*", "modbus/b/x", false},
		{"modbus/b*l*r/*", "modbus/boiler/x", true},
		{"modbus/b*l*r/*", "modbus/bxr/x", false},
		{"modbus/a*a/*", "modbus/a/x", false},
		{"modbus/a*a/*", "modbus/aa/x", true},
		{"*/*/*_temp", "modbus/boiler/supply_temp", true},
		{"*/*/*_temp", "modbus/boiler/_temp", true},
		{"*/*/*_temp", "modbus/boiler/temp", false},
		{"coap/greenhouse/temperature", "coap/greenhouse/temperature", true},
		{"coap/greenhouse/temperature", "coap/greenhouse/Temperature", false},
		{"coap/grünhaus/*", "coap/grünhaus/t", true},
		{"*", "coap/greenhouse/temperature", false},
	}
	for _, tt := range tests {
		s := strings.Split(tt.subject, "/")
		g, err := compileGlob(tt.glob)
		if err != nil {
			if tt.want {
				t.Errorf("compileGlob(%q): %v", tt.glob, err)
			}
			continue
		}
		if got := g.match(s[0], s[1], s[2]); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.glob, tt.subject, got, tt.want)
		}
	}
}

func TestGlobAlternatives(t *testing.T) {
	tests := []struct {
		glob string
		want int
	}{
		{"**", 1},
		{"**/**/**", 1},
		{"coap/**", 1},
		{"**/x/**", 3},
		{"**/*/**", 1},
		{"**/a/**/b/**", 3},
		{"**/a/**/b/**/c/**", 1},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.glob)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tt.glob, err)
		}
		if len(g.alts) != tt.want {
			t.Errorf("%q: %d alternatives, want %d", tt.glob, len(g.alts), tt.want)
		}
	}
}

func TestGlobErrors(t *testing.T) {
	tests := []struct{ glob, want string }{
		{"", "missing"},
		{"coap/+/x", "MQTT wildcard"},
		{"coap/#", "MQTT wildcard"},
		{"coap/dev?/x", "not supported"},
		{"coap/[ab]/x", "not supported"},
		{"coap/{device}/x", "not supported"},
		{"coap//x", "empty segment"},
		{"/coap/x/y", "empty segment"},
		{"coap/x/y/", "empty segment"},
		{"coap/x**/y", "whole segment"},
		{"coap/***/y", "whole segment"},
		{"coap/*", "can never match"},
		{"*", "can never match"},
		{"a/b/c/d", "can never match"},
		{"a/b/c/d/**", "can never match"},
		{"coap/\x00/x", "control character"},
		{"coap/\xff/x", "invalid UTF-8"},
	}
	for _, tt := range tests {
		_, err := compileGlob(tt.glob)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("compileGlob(%q) = %v, want an error containing %q", tt.glob, err, tt.want)
		}
	}
}

func TestTemplate(t *testing.T) {
	tests := []struct {
		tmpl, want string
		perPoint   bool
	}{
		{"{gateway}/{adapter}/{device}", "gw-01/coap/greenhouse", false},
		{"{gateway}/{adapter}/{device}/{point}", "gw-01/coap/greenhouse/temperature", true},
		{"sites/plant-7/{device}-{point}/data", "sites/plant-7/greenhouse-temperature/data", true},
		{"{device}", "greenhouse", false},
		{"fixed/topic", "fixed/topic", false},
		{"{gateway}{gateway}/{point}/{point}", "gw-01gw-01/temperature/temperature", true},
		{"a//{device}/", "a//greenhouse/", false},
		{"état/{device}", "état/greenhouse", false},
		{"{gateway}/{adapter}/{device}/set-point", "gw-01/coap/greenhouse/set-point", false},
		{"{gateway}/result", "gw-01/result", false},
	}
	for _, tt := range tests {
		tm, err := compileTemplate(tt.tmpl, "gw-01")
		if err != nil {
			t.Errorf("compileTemplate(%q): %v", tt.tmpl, err)
			continue
		}
		var b strings.Builder
		tm.write(&b, "coap", "greenhouse", "temperature")
		if b.String() != tt.want {
			t.Errorf("%q → %q, want %q", tt.tmpl, b.String(), tt.want)
		}
		if n := tm.size("coap", "greenhouse", "temperature"); n != len(tt.want) {
			t.Errorf("%q: size %d, want %d", tt.tmpl, n, len(tt.want))
		}
		if tm.hasPoint != tt.perPoint {
			t.Errorf("%q: hasPoint %v", tt.tmpl, tm.hasPoint)
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		{"", "missing"},
		{"{gateway}/{sensor}", "unknown placeholder {sensor}"},
		{"{gateway}/{Device}", "unknown placeholder {Device}"},
		{"{gateway}/{device", `unclosed "{"`},
		{"{gateway}/device}", `"}" without "{"`},
		{"{gateway}/{{device}}", "unknown placeholder {{device}"},
		{"{gateway}/+/{device}", "MQTT wildcard"},
		{"{gateway}/#", "MQTT wildcard"},
		{"$SYS/{device}", "must not start with $"},
		{"a/\x00", "control character"},
		{"a/\xc3", "invalid UTF-8"},
		{"{gateway}/{adapter}/{device}/set", "reserved"},
		{"{gateway}/{adapter}/{device}/{point}/set", "reserved"},
		{"{gateway}/{adapter}/{device}/set/result", "reserved"},
		{"{gateway}/{adapter}/{device}/availability", "reserved"},
		{"{gateway}/status", "reserved"},
		{"{gateway}/stats", "reserved"},
	}
	for _, tt := range tests {
		_, err := compileTemplate(tt.tmpl, "gw-01")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("compileTemplate(%q) = %v, want an error containing %q", tt.tmpl, err, tt.want)
		}
	}
}

// refMatch is a slow, obviously correct matcher: "**" takes zero or more
// whole segments, other segments match as path.Match does.
func refMatch(pat, subj []string) bool {
	if len(pat) == 0 {
		return len(subj) == 0
	}
	if pat[0] == "**" {
		for k := 0; k <= len(subj); k++ {
			if refMatch(pat[1:], subj[k:]) {
				return true
			}
		}
		return false
	}
	if len(subj) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], subj[0])
	return err == nil && ok && refMatch(pat[1:], subj[1:])
}

func TestGlobAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	segs := []string{"**", "*", "a", "b", "a*", "*b", "a*b", "*a*", "ab", "ba", "**"}
	words := []string{"a", "b", "ab", "ba", "aab", "bab", "abba", "x"}
	compiled := 0
	for range 20000 {
		n := 1 + r.IntN(5)
		pat := make([]string, n)
		for i := range pat {
			pat[i] = segs[r.IntN(len(segs))]
		}
		p := strings.Join(pat, "/")
		g, err := compileGlob(p)
		if err != nil {
			continue
		}
		compiled++
		for range 20 {
			s := []string{words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))]}
			if got, want := g.match(s[0], s[1], s[2]), refMatch(pat, s); got != want {
				t.Fatalf("%q on %v: %v, reference %v", p, s, got, want)
			}
		}
	}
	if compiled < 1000 {
		t.Fatalf("only %d patterns compiled", compiled)
	}
}
