package config

import (
	"bytes"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// Redacted returns the effective configuration as TOML, every default
// filled in, with every set Secret shown as "<redacted>". Parse accepts the
// text again; only the redacted secrets then fail validation (or, where they
// are optional, stand for the literal text "<redacted>").
func (c *Config) Redacted() string {
	cp := reflect.New(reflect.TypeFor[Config]()).Elem()
	cloneEscaped(cp, reflect.ValueOf(c).Elem())
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(cp.Interface()); err != nil {
		return "# cannot encode the configuration: " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
	}
	return b.String()
}

// cloneEscaped deep-copies src into dst, writing "${" in plain strings as
// "$${" so that Parse does not expand it again. Secrets are copied as they
// are: Secret.MarshalText redacts them.
func cloneEscaped(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Struct:
		for i := 0; i < src.NumField(); i++ {
			if dst.Field(i).CanSet() {
				cloneEscaped(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		cloneEscaped(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := 0; i < src.Len(); i++ {
			cloneEscaped(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.String:
		if src.Type() == reflect.TypeFor[Secret]() {
			dst.Set(src)
			return
		}
		dst.SetString(strings.ReplaceAll(src.String(), "${", "$${"))
	default:
		dst.Set(src)
	}
}

// AdapterNames returns the names of every adapter block, in the order
// CoAP, Modbus, UART (each in file order).
func (c *Config) AdapterNames() []string {
	var names []string
	for _, b := range adapterBlocks(c) {
		names = append(names, b.name)
	}
	return names
}
