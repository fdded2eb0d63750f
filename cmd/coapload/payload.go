package main

import "strconv"

// padOverhead is the length of the empty pad field `,"pad":""`.
const padOverhead = len(`,"pad":""`)

// appendPayload appends to dst the JSON object
//
//	{"run":RUN,"seq":SEQ,"ts":TS,"pad":"xxx…"}
//
// padded to exactly size bytes: with the pad field when there is room for it,
// else with spaces before the closing brace (still valid JSON). When size is
// smaller than the object without padding, the unpadded object is appended
// and is longer than size; the caller detects that by its length.
func appendPayload(dst []byte, run, seq, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"run":`...)
	dst = strconv.AppendInt(dst, run, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	room := size - (len(dst) - start) - 1 // bytes left before the closing brace
	switch {
	case room >= padOverhead:
		dst = append(dst, `,"pad":"`...)
		for range room - padOverhead {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	case room > 0:
		for range room {
			dst = append(dst, ' ')
		}
	}
	return append(dst, '}')
}
