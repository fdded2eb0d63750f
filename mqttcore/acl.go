package mqttcore

import "strings"

// The built-in broker's access control: a user may publish to a topic
// matched by one of its publish filters, and subscribe to a filter that is
// within one of its subscribe filters, that is, one that can only ever
// match topics the allowed filter matches too ("gw-01/#" allows
// "gw-01/+/x", not "#" nor "+/x").

// filterCovers reports whether every topic name matched by f is also
// matched by allowed. Both are valid MQTT topic filters; f may also be a
// topic name (no wildcards), which makes this the usual topic match. It
// follows MQTT 5 §4.7: "#" matches the parent level too ("a/#" matches
// "a"), and a filter starting with a wildcard does not match a topic whose
// first level starts with "$" ("#" does not match "$SYS/x").
//
// It allocates nothing: it runs for every delivery to an authenticated
// client.
func filterCovers(allowed, f string) bool {
	first := true
	// emptyBefore: the levels of f before this one form the empty topic
	// name (none, or one empty level as in "/#").
	emptyBefore := true
	for {
		al, arest, amore := cutLevel(allowed)
		fl, frest, fmore := cutLevel(f)
		if al == "#" {
			// Matches this level and everything below, zero levels
			// included, but not a "$" topic from the first level.
			return !(first && strings.HasPrefix(fl, "$"))
		}
		if fl == "#" {
			// f matches zero or more levels from here, and zero levels
			// only "#" (handled above) covers. Unless the topic of zero
			// more levels would be empty, which is no topic: "#" alone is
			// every non-"$" topic, one level or more, and "+/#" covers it
			// as well (so "/+/#" covers "/#").
			return emptyBefore && al == "+" && amore && arest == "#"
		}
		switch {
		case al == "+":
			if first && strings.HasPrefix(fl, "$") {
				return false
			}
		case fl == "+":
			return false // a single literal level does not cover every level
		case al != fl:
			return false
		}
		switch {
		case !fmore && !amore:
			return true
		case !fmore:
			// f ends here: what is left of allowed must match zero
			// levels, and only "#" does.
			return arest == "#"
		case !amore:
			return false // f goes deeper than allowed
		}
		emptyBefore = first && fl == ""
		allowed, f, first = arest, frest, false
	}
}

// cutLevel splits the first level off a topic or filter.
func cutLevel(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// anyCovers reports whether one of the allowed filters covers f.
func anyCovers(allowed []string, f string) bool {
	for _, a := range allowed {
		if filterCovers(a, f) {
			return true
		}
	}
	return false
}

// stripShare returns the topic filter of a shared subscription
// ("$share/{group}/{filter}"), or f itself. The ACL applies to the filter:
// the messages a shared subscription delivers are those of its filter.
func stripShare(f string) string {
	level, rest, more := cutLevel(f)
	if !more || !strings.EqualFold(level, "$share") {
		return f
	}
	if _, filter, ok := cutLevel(rest); ok {
		return filter
	}
	return f
}
