package config

import (
	"github.com/causeway/causeway/bridge"

	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// expandEnv replaces ${NAME} in s from env; "$${" stands for a literal
// "${". Every unset variable is named in the error.
func expandEnv(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var missing, invalid []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", errors.New(`unterminated "${" (write "$${" for a literal "${")`)
			}
			name := s[i+2 : i+2+end]
			i += 3 + end
			if !isEnvName(name) {
				invalid = append(invalid, strconv.Quote(name))
				continue
			}
			v, ok := env(name)
			if !ok {
				missing = append(missing, name)
				continue
			}
			b.WriteString(v)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	switch {
	case len(invalid) > 0:
		return "", fmt.Errorf(`invalid environment variable name %s in "${…}" (letters, digits and _; write "$${" for a literal "${")`, strings.Join(invalid, ", "))
	case len(missing) == 1:
		return "", fmt.Errorf("environment variable %s is not set", missing[0])
	case len(missing) > 1:
		return "", fmt.Errorf("environment variables %s are not set", strings.Join(missing, ", "))
	}
	return b.String(), nil
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// parseDuration parses a non-negative Go duration string.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`invalid duration %q: use a number with a unit, e.g. "500ms", "30s", "5m", "168h"`, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return d, nil
}

// parseSize parses a byte size: an integer with an optional binary unit
// (B, KiB, MiB, GiB, TiB), e.g. "4096", "64KiB", "256 MiB".
func parseSize(s string) (int64, error) {
	const hint = `use a whole number with a binary unit B, KiB, MiB, GiB or TiB, e.g. "64KiB"`
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", s)
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: %s", s, hint)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	var shift uint
	switch strings.TrimSpace(t[i:]) {
	case "", "B":
	case "KiB":
		shift = 10
	case "MiB":
		shift = 20
	case "GiB":
		shift = 30
	case "TiB":
		shift = 40
	default:
		return 0, fmt.Errorf("invalid size %q: %s", s, hint)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n << shift, nil
}

// nameProblem returns why s cannot be an adapter, device or (with point
// set) point name, or "".
func nameProblem(s string, point bool) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.ContainsAny(s, "+#/"):
		return fmt.Sprintf(`%q must not contain "+", "#" or "/"`, s)
	case point && bridge.ReservedPoint(s):
		return fmt.Sprintf("%q is a reserved name (time, errors, set, availability, status and stats are never point names)", s)
	case bridge.ReservedDevice(s):
		return fmt.Sprintf("%q is a reserved name (set, availability, status and stats are never adapter or device names)", s)
	case hasControl(s):
		return fmt.Sprintf("%q must not contain control characters", s)
	}
	return ""
}

func hasControl(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// hostPortProblem returns why s is not a "host:port" listen address, or "".
// The host may be empty (every interface), an IP address or a host name;
// the port is a number 0..65535 (0: any free port).
func hostPortProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf(`%q is not a "host:port" address, e.g. "127.0.0.1:1883" or ":1883"`, s)
	}
	if p := portProblem(port); p != "" {
		return fmt.Sprintf("%q: %s", s, p)
	}
	if host != "" && !validHost(host) {
		return fmt.Sprintf("%q: invalid host %q", s, host)
	}
	return ""
}

func portProblem(port string) string {
	if port == "" {
		return "missing port"
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return fmt.Sprintf("port %q is not a number", port)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n > 65535 {
		return fmt.Sprintf("port %s is out of range 0..65535", port)
	}
	return ""
}

// validHost accepts IP addresses (with an optional IPv6 zone) and host
// names; it does no lookup.
func validHost(h string) bool {
	ip := h
	if i := strings.IndexByte(ip, '%'); i >= 0 {
		ip = ip[:i]
	}
	if net.ParseIP(ip) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isLoopback reports whether a listen address only accepts local clients.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isWildcardHost reports whether host listens on every interface.
func isWildcardHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// topicFilterProblem returns why s is not a valid MQTT topic filter, or "".
func topicFilterProblem(s string) string {
	if s == "" {
		return "an empty topic filter matches nothing"
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Sprintf(`%q: "#" must be a whole level and the last one`, s)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Sprintf(`%q: "+" must be a whole level`, s)
		}
	}
	if hasControl(s) {
		return fmt.Sprintf("%q must not contain control characters", s)
	}
	return ""
}

// topicTemplateProblem returns why a route topic is invalid, or "". The
// placeholders {gateway} {adapter} {device} {point} are allowed.
func topicTemplateProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.ContainsAny(s, "+#") {
		return fmt.Sprintf(`%q: a topic to publish on must not contain "+" or "#"`, s)
	}
	if strings.HasPrefix(s, "$") {
		return fmt.Sprintf(`%q: topics starting with "$" are reserved for brokers`, s)
	}
	if hasControl(s) {
		return fmt.Sprintf("%q must not contain control characters", s)
	}
	if len(s) > 65535 {
		return "is longer than MQTT allows (65535 bytes)"
	}
	if msg := placeholderProblem(s, "gateway", "adapter", "device", "point"); msg != "" {
		return msg
	}
	levels := strings.Split(s, "/")
	last := levels[len(levels)-1]
	if last == "result" && len(levels) > 1 && levels[len(levels)-2] == "set" {
		last = "set"
	}
	if bridge.ReservedDevice(last) {
		return fmt.Sprintf("%q: the last level %q is reserved for the gateway's own topics (commands, availability, status, stats)", s, last)
	}
	return ""
}

// placeholderProblem checks that every {name} in s is one of allowed and
// that braces are balanced.
func placeholderProblem(s string, allowed ...string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '}':
			return fmt.Sprintf(`%q: "}" without "{"`, s)
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return fmt.Sprintf(`%q: "{" without "}"`, s)
			}
			name := s[i+1 : i+end]
			ok := false
			for _, a := range allowed {
				ok = ok || name == a
			}
			if !ok {
				return fmt.Sprintf("%q: unknown placeholder {%s}; use {%s}", s, name, strings.Join(allowed, "} {"))
			}
			i += end
		}
	}
	return ""
}

// globProblem returns why a route match pattern is invalid, or "". A
// pattern matches "{adapter}/{device}/{point}": "*" matches within one
// segment, a "**" segment matches any number of segments. Other wildcard
// characters are rejected so that the pattern means the same to everyone.
func globProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.ContainsAny(s, "+#?[]{}\\") {
		return fmt.Sprintf(`%q: only "*" and "**" are wildcards; "+", "#", "?", "[", "]", "{", "}" and "\" are not allowed`, s)
	}
	if hasControl(s) {
		return fmt.Sprintf("%q must not contain control characters", s)
	}
	segs := strings.Split(s, "/")
	fixed, multi := 0, false
	for _, seg := range segs {
		switch {
		case seg == "":
			return fmt.Sprintf("%q: empty segment (the pattern matches {adapter}/{device}/{point})", s)
		case seg == "**":
			multi = true
		case strings.Contains(seg, "**"):
			return fmt.Sprintf(`%q: "**" must be a whole segment`, s)
		default:
			fixed++
		}
	}
	if fixed > 3 || !multi && fixed != 3 {
		return fmt.Sprintf(`%q can never match: it has %d segments, a point has 3 ({adapter}/{device}/{point}); use "*" for one segment or "**" for several`, s, len(segs))
	}
	return ""
}

// usbProblem returns why s is not a "vid:pid" USB identity, or "".
func usbProblem(s string) string {
	vid, pid, ok := strings.Cut(s, ":")
	if !ok || !isHex4(vid) || !isHex4(pid) {
		return fmt.Sprintf(`%q is not a USB identity "vid:pid" of 4 hex digits each, e.g. "0403:6001"`, s)
	}
	return ""
}

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 16)
	return err == nil
}

// isHex reports whether s is a non-empty even-length hex string.
func isHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// oneOf returns a message if s is not one of the allowed values.
func oneOf(s string, allowed ...string) string {
	for _, a := range allowed {
		if s == a {
			return ""
		}
	}
	return fmt.Sprintf("invalid value %q: use one of %s", s, quoteList(allowed))
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
