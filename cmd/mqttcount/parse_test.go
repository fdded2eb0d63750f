package main

import "testing"

func TestParseFields(t *testing.T) {
	cases := []struct {
		in   string
		want fields
		ok   bool
	}{
		{`{"time":"2026-11-25T10:00:00.123Z","run":123,"seq":42,"ts":1764064800123456,"pad":"xxxx"}`,
			fields{123, 42, 1764064800123456, true, true, true}, true},
		// key order, whitespace, nested and escaped values, float encodings
		{` { "pad" : "a\"seq\":9" , "errors":{"seq":{"x":[1,"}"]}}, "ts" : 1.764064800123456e+15,
		   "seq":7.0, "run": 5, "ok": true, "n": null, "arr": [ {"run":1} ] } `,
			fields{5, 7, 1764064800123456, true, true, true}, true},
		{`{"seq":1}`, fields{seq: 1, hasSeq: true}, true},
		{`{}`, fields{}, true},
		{`{"run":-3,"seq":0,"ts":0}`, fields{-3, 0, 0, true, true, true}, true},
		{`online`, fields{}, false},
		{`{"seq":"12"}`, fields{}, false},
		{`{"seq":12`, fields{seq: 12, hasSeq: true}, false},
		{`{"seq":99999999999999999999}`, fields{}, false},
		{`{"a":"unterminated}`, fields{}, false},
		{`{"a":[1,2}`, fields{}, false},
		{`{"a" 1}`, fields{}, false},
		{``, fields{}, false},
	}
	for _, c := range cases {
		got, ok := parseFields([]byte(c.in))
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseFields(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestParseFieldsDoesNotAllocate(t *testing.T) {
	p := []byte(`{"time":"2026-11-25T10:00:00.123Z","pad":"xxxxxxxxxxxxx","run":123,"seq":42,"ts":1764064800123456}`)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := parseFields(p); !ok {
			t.Fatal("parse failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per parse, want 0", allocs)
	}
}

func BenchmarkParseFields(b *testing.B) {
	p := []byte(`{"time":"2026-11-25T10:00:00.123Z","run":123,"seq":42,"ts":1764064800123456,"pad":"xxxxxxxxxxxxx"}`)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		parseFields(p)
	}
}
