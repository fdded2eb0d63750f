package serialport

import (
	"regexp"
	"strings"
	"testing"
)

var usbRE = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$`)

// FuzzParseUSB: ParseUSB accepts exactly "hhhh:hhhh" (any case), returns it
// in lower case, and accepts its own output unchanged. The seed corpus is
// in testdata/fuzz/FuzzParseUSB.
func FuzzParseUSB(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		vid, pid, err := ParseUSB(s)
		if ok := usbRE.MatchString(s); (err == nil) != ok {
			t.Fatalf("ParseUSB(%q) error %v, want ok %t", s, err, ok)
		}
		if err != nil {
			if vid != "" || pid != "" || !strings.Contains(err.Error(), "is not a USB id") {
				t.Fatalf("ParseUSB(%q) = %q, %q, %v", s, vid, pid, err)
			}
			return
		}
		if vid+":"+pid != strings.ToLower(s) {
			t.Fatalf("ParseUSB(%q) = %q, %q", s, vid, pid)
		}
		v2, p2, err := ParseUSB(vid + ":" + pid)
		if err != nil || v2 != vid || p2 != pid {
			t.Fatalf("ParseUSB(%q) = %q, %q, %v; not a fixed point", vid+":"+pid, v2, p2, err)
		}
	})
}
