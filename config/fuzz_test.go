package config

import (
	"errors"
	"reflect"
	"testing"
)

// hasSecret reports whether any Secret in v is set.
func hasSecret(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if hasSecret(v.Field(i)) {
				return true
			}
		}
	case reflect.Pointer:
		return !v.IsNil() && hasSecret(v.Elem())
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if hasSecret(v.Index(i)) {
				return true
			}
		}
	case reflect.String:
		return v.Type() == reflect.TypeFor[Secret]() && v.Len() > 0
	}
	return false
}

// FuzzParse: no input makes Parse panic; every failure is a non-empty
// *Errors; every accepted config without secrets survives a round trip
// through Redacted unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[[coap]]\n"))
	f.Add([]byte("[gateway]\nid = \"${X}\"\n[[route]]\nmatch = \"**\"\n"))
	opts := ParseOptions{
		AllowUnsupported: true,
		Dir:              "/nonexistent",
		Hostname:         func() (string, error) { return "fuzzhost", nil },
		ReadFile:         func(string) ([]byte, error) { return []byte("00\n"), nil },
	}
	env := func(k string) (string, bool) { return "v" + k, len(k)%2 == 0 }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseWith("fuzz.toml", data, env, opts)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("error %T without a list: %v", err, err)
			}
			for _, e := range errs.List {
				if e.Line < 0 || e.Msg == "" {
					t.Fatalf("bad error %+v", e)
				}
				if e.Path != "" && e.Line == 0 {
					t.Fatalf("no line for %s (%s)\n--- input:\n%s", e.Path, e.Msg, data)
				}
			}
			_ = err.Error()
			return
		}
		out := c.Redacted()
		if hasSecret(reflect.ValueOf(c).Elem()) {
			_, _ = ParseWith("fuzz.toml", []byte(out), env, opts)
			return
		}
		c2, err := ParseWith("fuzz.toml", []byte(out), env, opts)
		if err != nil {
			t.Fatalf("Redacted output does not parse: %v\n--- input:\n%s\n--- output:\n%s", err, data, out)
		}
		for i := range c2.Routes {
			c2.Routes[i].Line = c.Routes[i].Line
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%+v\n%+v\n--- output:\n%s", c, c2, out)
		}
	})
}
