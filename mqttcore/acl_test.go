package mqttcore

import (
	"strings"
	"testing"
)

func TestFilterCovers(t *testing.T) {
	tests := []struct {
		allowed, f string
		want       bool
	}{
		// The examples of the issue.
		{"gw-01/#", "gw-01/+/x", true},
		{"gw-01/#", "#", false},
		{"gw-01/#", "+/x", false},
		// Topic names: the ordinary match.
		{"gw-01/#", "gw-01", true}, // "#" includes the parent level
		{"gw-01/#", "gw-01/a/b/c", true},
		{"gw-01/#", "gw-02/a", false},
		{"gw-01/+/+/set", "gw-01/modbus/boiler/set", true},
		{"gw-01/+/+/set", "gw-01/modbus/boiler/setpoint/set", false},
		{"gw-01/+/+/set", "gw-01/modbus/set", false},
		{"a/+", "a/", true}, // an empty level is a level
		{"a/+", "a", false},
		{"+/+", "/", true},
		{"#", "/", true},
		{"a", "a", true},
		{"a", "A", false},
		{"a", "a/b", false},
		{"a/b", "a", false},
		// "$" topics are not matched by a leading wildcard.
		{"#", "$SYS/broker/uptime", false},
		{"+/#", "$SYS/x", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"$SYS/#", "$SYS", true},
		{"$SYS/+/uptime", "$SYS/broker/uptime", true},
		{"a/#", "a/$x", true}, // only the first level counts
		{"#", "a/$x", true},
		// Filters within filters.
		{"#", "#", true},
		{"#", "+/#", true},
		{"+/#", "#", true}, // every topic has at least one level
		{"+/+/#", "#", false},
		{"/+/#", "/#", true}, // "/#" matches "/" and below: "" is no topic
		{"/+/#", "a/#", false},
		{"#", "+", true},
		{"#", "$SYS/#", false},
		{"#", "$SYS/+", false},
		{"+", "$x", false},
		{"+/#", "+/+/#", true},
		{"+/+/#", "+/#", false}, // "+/#" matches "a", "+/+/#" does not
		{"a/#", "a/#", true},
		{"a/#", "a/+/#", true},
		{"a/+/#", "a/#", false},
		{"a/+", "a/#", false},
		{"a/+", "a/+", true},
		{"a/+", "a/b", true},
		{"a/b", "a/+", false},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/b/+", false},
		{"a/+/+", "a/b/+", true},
		{"a/b/#", "a/+/#", false},
		{"a/#", "a", true},
		{"a/+/#", "a", false},
		{"a/+", "a/+/b", false},
		{"a/b", "a/b/#", false},
		{"+", "#", false},
		{"+", "+", true},
		{"+", "/", false},
		{"gw-01/#", "$share/group/gw-01/+/x", false}, // strip first: see TestACLShared
	}
	for _, tt := range tests {
		if got := filterCovers(tt.allowed, tt.f); got != tt.want {
			t.Errorf("filterCovers(%q, %q) = %v, want %v", tt.allowed, tt.f, got, tt.want)
		}
		if got, want := filterCovers(tt.allowed, tt.f), coversByEnumeration(tt.allowed, tt.f); got != want {
			t.Errorf("filterCovers(%q, %q) = %v, enumeration says %v", tt.allowed, tt.f, got, want)
		}
	}
}

func TestStripShare(t *testing.T) {
	for in, want := range map[string]string{
		"$share/g/gw-01/#": "gw-01/#",
		"$SHARE/g/a/+/b":   "a/+/b",
		"$share/g/#":       "#",
		"$share/g":         "$share/g",
		"$shared/g/a":      "$shared/g/a",
		"gw-01/#":          "gw-01/#",
		"$SYS/#":           "$SYS/#",
	} {
		if got := stripShare(in); got != want {
			t.Errorf("stripShare(%q) = %q, want %q", in, got, want)
		}
	}
	if !anyCovers([]string{"x", "gw-01/#"}, stripShare("$share/g/gw-01/+/x")) || anyCovers([]string{"gw-01/#"}, stripShare("$share/g/#")) {
		t.Error("shared subscriptions are checked on their filter")
	}
	if anyCovers(nil, "a") {
		t.Error("no filter allows nothing")
	}
}

func TestFilterCoversAllocatesNothing(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		filterCovers("gw-01/+/+/#", "gw-01/modbus/boiler/temperature")
		filterCovers("#", "$SYS/x")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per check", allocs)
	}
}

// FuzzFilterCovers checks filterCovers against its definition: f is within
// allowed iff no topic name is matched by f and not by allowed. The topics
// tried are every topic of up to max(levels)+1 levels built from the
// literal levels of both filters, one fresh level and one fresh "$" level:
// if any topic tells the two apart, one of these does (a level matched by a
// wildcard can be replaced by a fresh one, and a topic longer than both
// filters by its prefix of max+1 levels). The seed corpus is in
// testdata/fuzz/FuzzFilterCovers.
func FuzzFilterCovers(f *testing.F) {
	for _, s := range [][2]string{
		{"gw-01/#", "gw-01/+/x"}, {"gw-01/#", "#"}, {"gw-01/#", "+/x"}, {"#", "+/#"}, {"+/#", "#"},
		{"#", "$SYS/#"}, {"a/+/#", "a"}, {"a/#", "a"}, {"+/+", "/"}, {"$SYS/#", "$SYS"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, allowed, sub string) {
		// Inputs that are not small valid filters are read as level codes
		// instead, so that every input tries a pair of filters.
		if !fuzzFilterOK(allowed) || !fuzzFilterOK(sub) {
			allowed, sub = filterFromBytes(allowed), filterFromBytes(sub)
		}
		if !fuzzFilterOK(allowed) || !fuzzFilterOK(sub) {
			t.Skip()
		}
		got := filterCovers(allowed, sub)
		if want := coversByEnumeration(allowed, sub); got != want {
			t.Fatalf("filterCovers(%q, %q) = %v, want %v", allowed, sub, got, want)
		}
		// A filter always covers itself, and "covers" is the usual match
		// for topic names.
		if !filterCovers(sub, sub) {
			t.Fatalf("filterCovers(%q, itself) = false", sub)
		}
		if !strings.ContainsAny(sub, "+#") && got != refMatch(allowed, sub) {
			t.Fatalf("filterCovers(%q, topic %q) = %v, match says %v", allowed, sub, got, !got)
		}
	})
}

// filterFromBytes builds a filter of up to 4 levels, one per byte, from a
// small alphabet: literals, an empty level, a "$" level and the wildcards.
func filterFromBytes(s string) string {
	alphabet := []string{"a", "b", "", "$s", "+", "#"}
	var levels []string
	for i := 0; i < len(s) && i < 4; i++ {
		levels = append(levels, alphabet[int(s[i])%len(alphabet)])
		if levels[len(levels)-1] == "#" {
			break
		}
	}
	if len(levels) == 0 {
		return "a"
	}
	return strings.Join(levels, "/")
}

// fuzzFilterOK accepts the valid filters small enough to enumerate.
func fuzzFilterOK(f string) bool {
	if f == "" || len(f) > 40 {
		return false
	}
	levels := strings.Split(f, "/")
	if len(levels) > 4 {
		return false
	}
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && l != "+" && !(l == "#" && i == len(levels)-1) {
			return false
		}
	}
	return true
}

// coversByEnumeration is filterCovers by its definition, on the topics
// described at FuzzFilterCovers.
func coversByEnumeration(allowed, f string) bool {
	al, fl := strings.Split(allowed, "/"), strings.Split(f, "/")
	alphabet := map[string]bool{}
	for _, l := range append(append([]string{}, al...), fl...) {
		if l != "+" && l != "#" {
			alphabet[l] = true
		}
	}
	fresh, freshDollar := "z", "$z"
	for alphabet[fresh] || alphabet[freshDollar] {
		fresh, freshDollar = fresh+"z", freshDollar+"z"
	}
	alphabet[fresh], alphabet[freshDollar] = true, true
	var letters []string
	for l := range alphabet {
		letters = append(letters, l)
	}
	depth := max(len(al), len(fl)) + 1
	ok := true
	var walk func(levels []string)
	walk = func(levels []string) {
		if !ok {
			return
		}
		if len(levels) > 0 {
			topic := strings.Join(levels, "/")
			if topic != "" && refMatch(f, topic) && !refMatch(allowed, topic) {
				ok = false
				return
			}
		}
		if len(levels) == depth {
			return
		}
		for _, l := range letters {
			walk(append(levels, l))
		}
	}
	walk(nil)
	return ok
}

// refMatch is a plain reading of MQTT 5 §4.7 for a topic name, written
// independently of filterCovers.
func refMatch(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, l := range fl {
		switch {
		case l == "#":
			return true // matches the rest, zero levels included
		case i >= len(tl):
			return false
		case l == "+":
		case l != tl[i]:
			return false
		}
	}
	return len(fl) == len(tl)
}
