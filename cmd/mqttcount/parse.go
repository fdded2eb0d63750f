package main

import (
	"math"
	"strconv"
)

// fields are the values mqttcount needs from a message payload.
type fields struct {
	run, seq, ts          int64
	hasRun, hasSeq, hasTS bool
}

// parseFields scans a JSON object for the top-level integer members "run",
// "seq" and "ts" without allocating (numbers written with a fraction or an
// exponent take a slower path). Other members, nested values included, are
// skipped; only the top level is searched. It reports false when the payload
// is not a JSON object or one of the three members is not a number.
func parseFields(p []byte) (f fields, ok bool) {
	i := skipWS(p, 0)
	if i >= len(p) || p[i] != '{' {
		return f, false
	}
	i++
	for {
		i = skipWS(p, i)
		if i >= len(p) {
			return f, false
		}
		if p[i] == '}' {
			return f, true
		}
		if p[i] == ',' {
			i = skipWS(p, i+1)
			if i >= len(p) {
				return f, false
			}
		}
		if p[i] != '"' {
			return f, false
		}
		ks := i + 1
		ke, next := scanString(p, i)
		if next < 0 {
			return f, false
		}
		key := p[ks:ke]
		i = skipWS(p, next)
		if i >= len(p) || p[i] != ':' {
			return f, false
		}
		i = skipWS(p, i+1)
		var dst *int64
		var has *bool
		switch string(key) { // no allocation: the compiler compares in place
		case "run":
			dst, has = &f.run, &f.hasRun
		case "seq":
			dst, has = &f.seq, &f.hasSeq
		case "ts":
			dst, has = &f.ts, &f.hasTS
		}
		if dst != nil {
			v, end, good := parseNumber(p, i)
			if !good {
				return f, false
			}
			*dst, *has = v, true
			i = end
		} else {
			i = skipValue(p, i)
			if i < 0 {
				return f, false
			}
		}
	}
}

func skipWS(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// scanString takes p[i] == '"' and returns the index of the closing quote
// and the index after it, or next < 0 when the string is unterminated.
func scanString(p []byte, i int) (end, next int) {
	for j := i + 1; j < len(p); j++ {
		switch p[j] {
		case '\\':
			j++
		case '"':
			return j, j + 1
		}
	}
	return -1, -1
}

// skipValue returns the index after the JSON value starting at p[i], or -1.
func skipValue(p []byte, i int) int {
	if i >= len(p) {
		return -1
	}
	switch p[i] {
	case '"':
		_, next := scanString(p, i)
		return next
	case '{', '[':
		depth := 0
		for j := i; j < len(p); j++ {
			switch p[j] {
			case '"':
				_, next := scanString(p, j)
				if next < 0 {
					return -1
				}
				j = next - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(p) && p[j] != ',' && p[j] != '}' && p[j] != ']' && p[j] != ' ' &&
		p[j] != '\t' && p[j] != '\n' && p[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// parseNumber parses the JSON number at p[i] as an int64. Integers are
// parsed directly; a number with a fraction or exponent (as a float encoder
// may write 1.764064800123456e+15) is parsed as float64 and rounded.
func parseNumber(p []byte, i int) (v int64, end int, ok bool) {
	j := i
	neg := false
	if j < len(p) && p[j] == '-' {
		neg = true
		j++
	}
	start := j
	var n uint64
	for j < len(p) && p[j] >= '0' && p[j] <= '9' {
		if n > (math.MaxInt64-9)/10 {
			return 0, 0, false
		}
		n = n*10 + uint64(p[j]-'0')
		j++
	}
	if j == start {
		return 0, 0, false
	}
	if j < len(p) && (p[j] == '.' || p[j] == 'e' || p[j] == 'E') {
		k := j
		for k < len(p) && (p[k] >= '0' && p[k] <= '9' || p[k] == '.' || p[k] == 'e' ||
			p[k] == 'E' || p[k] == '+' || p[k] == '-') {
			k++
		}
		fv, err := strconv.ParseFloat(string(p[i:k]), 64)
		if err != nil || math.IsNaN(fv) || math.Abs(fv) >= math.MaxInt64 {
			return 0, 0, false
		}
		return int64(math.Round(fv)), k, true
	}
	v = int64(n)
	if neg {
		v = -v
	}
	return v, j, true
}
