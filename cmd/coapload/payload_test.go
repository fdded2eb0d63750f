package main

import (
	"encoding/json"
	"testing"
)

func TestAppendPayloadExactSizeAndValid(t *testing.T) {
	for _, size := range []int{0, 10, 40, 41, 45, 49, 50, 51, 64, 100, 1024} {
		for _, seq := range []int64{0, 7, 12345, 9999999999} {
			b := appendPayload(nil, 123, seq, 1764064800123456, size)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("size %d seq %d: invalid JSON %q: %v", size, seq, b, err)
			}
			var v struct {
				Run int64  `json:"run"`
				Seq int64  `json:"seq"`
				TS  int64  `json:"ts"`
				Pad string `json:"pad"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if v.Run != 123 || v.Seq != seq || v.TS != 1764064800123456 {
				t.Fatalf("decoded %+v from %q", v, b)
			}
			min := len(appendPayload(nil, 123, seq, 1764064800123456, -1))
			if size >= min && len(b) != size {
				t.Fatalf("size %d seq %d: got %d bytes %q", size, seq, len(b), b)
			}
			if size < min && len(b) != min {
				t.Fatalf("size %d below minimum %d: got %d bytes", size, min, len(b))
			}
		}
	}
}

func TestAppendPayloadDefault(t *testing.T) {
	b := appendPayload([]byte("junk"), 123, 42, 1764064800123456, 64)
	want := `{"run":123,"seq":42,"ts":1764064800123456,"pad":"xxxxxxxxxxxxx"}`
	if string(b[4:]) != want || len(b[4:]) != 64 {
		t.Fatalf("got %q (%d bytes), want %q", b[4:], len(b[4:]), want)
	}
}
