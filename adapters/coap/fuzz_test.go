package coap

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ (go test fuzz v1).

// checkDecode is the property every fuzz target checks: Decode never
// panics; on success every name obeys the naming rules and every reading
// has points; on failure the error is a *DecodeError of a known kind.
func checkDecode(t *testing.T, path string, cf int, payload []byte) {
	t.Helper()
	device, readings, err := DecodeAll(path, cf, payload, "", testNow)
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %T %v is not a *DecodeError", err, err)
		}
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrBadName) && !errors.Is(err, ErrBadPayload) && !errors.Is(err, ErrUnsupportedFormat) {
			t.Fatalf("error %v has no known kind", err)
		}
		if de.Msg == "" || !utf8.ValidString(de.Msg) {
			t.Fatalf("diagnostic %q is empty or not UTF-8", de.Msg)
		}
		return
	}
	if err := ValidDeviceName(device); err != nil {
		t.Fatalf("device: %v", err)
	}
	if len(readings) == 0 {
		t.Fatal("no readings")
	}
	for i, r := range readings {
		if len(r.Points) == 0 {
			t.Fatalf("reading %d has no points", i)
		}
		if i > 0 && r.Time.Before(readings[i-1].Time) {
			t.Fatalf("readings out of order")
		}
		seen := map[string]bool{}
		for _, p := range r.Points {
			if err := ValidPointName(p.Name); err != nil {
				t.Fatalf("point: %v", err)
			}
			if seen[p.Name] {
				t.Fatalf("duplicate point %q", p.Name)
			}
			seen[p.Name] = true
			if p.Value.Kind == bridge.KindNone {
				t.Fatalf("point %q has no value", p.Name)
			}
			if p.Value.Kind == bridge.KindString && !utf8.ValidString(p.Value.Str) {
				t.Fatalf("point %q: string is not UTF-8", p.Name)
			}
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add("/dev1", []byte(`{"temperature":21.5,"n":3}`))
	f.Fuzz(func(t *testing.T, path string, payload []byte) {
		checkDecode(t, path, FormatJSON, payload)
		checkDecode(t, path, FormatNone, payload)
	})
}

func FuzzDecodeSenML(f *testing.F) {
	f.Add("/dev1", []byte(`[{"bn":"dev1/","bt":1.7e9,"n":"t","v":1}]`))
	f.Fuzz(func(t *testing.T, path string, payload []byte) {
		checkDecode(t, path, FormatSenMLJSON, payload)
	})
}

func FuzzDecodeText(f *testing.F) {
	f.Add("/dev1/temp", []byte("21.5"))
	f.Fuzz(func(t *testing.T, path string, payload []byte) {
		checkDecode(t, path, FormatText, payload)
	})
}
