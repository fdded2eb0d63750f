package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ParseOptions tunes ParseWith and LoadWith. The zero value is what Load and
// Parse use.
type ParseOptions struct {
	// AllowUnsupported skips the "not supported yet in this version" checks
	// (see unsupported.go), so that the contents of blocks for features not
	// built yet can be validated. The gateway itself never sets it.
	AllowUnsupported bool

	// Dir is the directory that relative *_file paths are resolved against.
	// Default: the directory of the file name given to Load or Parse (for
	// Parse with a bare name such as "gateway.toml": the working directory).
	Dir string

	// Hostname returns the default gateway id. Default: os.Hostname.
	Hostname func() (string, error)

	// ReadFile reads *_file secrets and checks that TLS files are readable.
	// Default: os.ReadFile limited to regular files of at most 1 MiB.
	ReadFile func(path string) ([]byte, error)
}

// Load reads the configuration file at path and returns it fully defaulted
// and validated. env looks up environment variables for ${NAME} (use
// os.LookupEnv; nil means an empty environment). Any problem, including an
// unreadable file, is returned as *Errors listing every error found.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	return LoadWith(path, env, ParseOptions{})
}

// LoadWith is Load with options.
func LoadWith(path string, env func(string) (string, bool), opts ParseOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = "cannot read the file: " + pe.Err.Error()
		}
		return nil, &Errors{List: []Error{{File: path, Msg: msg}}}
	}
	return ParseWith(path, data, env, opts)
}

// Parse is Load for a file already in memory; name is the file name used in
// messages and, through its directory, the base of relative *_file paths.
func Parse(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	return ParseWith(name, data, env, ParseOptions{})
}

// ParseWith is Parse with options.
func ParseWith(name string, data []byte, env func(string) (string, bool), opts ParseOptions) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	if opts.Hostname == nil {
		opts.Hostname = os.Hostname
	}
	if opts.ReadFile == nil {
		opts.ReadFile = readSmallFile
	}
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Dir(name)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	d := &decoder{
		name: name, env: env, dir: dir, opts: opts,
		set: map[string]bool{}, bad: map[string]bool{},
	}

	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			d.errs = append(d.errs, Error{File: name, Line: pe.Position.Line, Msg: "syntax error: " + pe.Message})
		} else {
			d.errs = append(d.errs, Error{File: name, Msg: "syntax error: " + err.Error()})
		}
		return nil, &Errors{List: d.errs}
	}
	d.lines = indexLines(data)

	c := newConfig()
	d.decodeStruct("", raw, reflect.ValueOf(c).Elem())
	d.derive(c)
	d.validate(c)
	if !opts.AllowUnsupported {
		unsupported(c, d)
	}
	for i := range c.Routes {
		c.Routes[i].Line = d.line(indexPath("route", i))
	}
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, &Errors{List: d.errs}
	}
	return c, nil
}

// maxFileSize bounds what a *_file key may read.
const maxFileSize = 1 << 20

// readSmallFile reads a regular file of at most maxFileSize bytes: a typo
// such as password_file = "/dev/zero" must fail, not hang.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %s", Size(maxFileSize))
	}
	return data, nil
}

// decoder walks the generic TOML map against the Config struct, collecting
// every error instead of stopping at the first.
type decoder struct {
	name  string
	env   func(string) (string, bool)
	dir   string
	opts  ParseOptions
	lines map[string]int  // key path → line
	set   map[string]bool // key paths the file sets
	bad   map[string]bool // key paths that already have an error
	errs  []Error
}

func (d *decoder) line(path string) int { return lineOf(d.lines, path) }

// isSet reports whether the file sets the key at path.
func (d *decoder) isSet(path string) bool { return d.set[path] }

// errorf records an error at path, unless path (or a parent) already has
// one: a value with the wrong type is reported once, not again by the
// checks that run on its default.
func (d *decoder) errorf(path, format string, args ...any) {
	for p := path; p != ""; p = parentPath(p) {
		if d.bad[p] {
			return
		}
	}
	d.bad[path] = true
	d.errs = append(d.errs, Error{File: d.name, Path: path, Line: d.line(path), Msg: fmt.Sprintf(format, args...)})
}

// resolve makes a *_file path absolute against the configuration's
// directory.
func (d *decoder) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

// defaulter is implemented by the blocks that have defaults; a new block is
// filled with them before the file's keys are decoded into it, so a key the
// file omits keeps its default and a key it sets (even to a zero value)
// wins.
type defaulter interface{ setDefaults() }

// fieldsOf maps toml tags to field indexes, flattening embedded structs.
func fieldsOf(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			idx := append(append([]int(nil), prefix...), i)
			tag := f.Tag.Get("toml")
			if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			m[strings.Split(tag, ",")[0]] = idx
		}
	}
	walk(t, nil)
	return m
}

// sortedKeys returns the keys of m in file order (then by name).
func (d *decoder) sortedKeys(path string, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		li, lj := d.line(joinKey(path, keys[i])), d.line(joinKey(path, keys[j]))
		if li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	return keys
}

func (d *decoder) decodeStruct(path string, m map[string]any, v reflect.Value) {
	fields := fieldsOf(v.Type())
	for _, key := range d.sortedKeys(path, m) {
		val := m[key]
		child := joinKey(path, key)
		if idx, ok := fields[key]; ok {
			d.set[child] = true
			d.decodeValue(child, val, v.FieldByIndex(idx))
			continue
		}
		if base, ok := strings.CutSuffix(key, "_file"); ok {
			if idx, ok := fields[base]; ok && v.FieldByIndex(idx).Kind() == reflect.String {
				d.decodeFileKey(path, base, key, m, val, v.FieldByIndex(idx))
				continue
			}
		}
		msg := fmt.Sprintf("unknown key %q", key)
		if s := suggest(key, fields); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.errorf(child, "%s", msg)
	}
}

// decodeFileKey reads X_file into the string field X.
func (d *decoder) decodeFileKey(path, base, key string, m map[string]any, val any, fv reflect.Value) {
	child, basePath := joinKey(path, key), joinKey(path, base)
	if _, both := m[base]; both {
		d.errorf(child, "set either %s or %s, not both", base, key)
		return
	}
	if _, ok := d.lines[basePath]; !ok {
		d.lines[basePath] = d.line(child) // messages about X point at X_file
	}
	name, ok := d.str(child, val, "a file path string", false)
	if !ok {
		return
	}
	if name == "" {
		d.errorf(child, "must not be empty")
		return
	}
	p := d.resolve(name)
	data, err := d.opts.ReadFile(p)
	if err != nil {
		d.errorf(child, "cannot read %s: %v", p, unwrapPathError(err))
		return
	}
	d.set[basePath] = true
	fv.SetString(strings.TrimRight(string(data), "\r\n"))
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// str converts a TOML value to a string with ${ENV} expanded. secret keeps
// the value out of messages.
func (d *decoder) str(path string, val any, want string, secret bool) (string, bool) {
	s, ok := val.(string)
	if !ok {
		d.typeError(path, want, val, secret)
		return "", false
	}
	out, err := expandEnv(s, d.env)
	if err != nil {
		d.errorf(path, "%v", err)
		return "", false
	}
	return out, true
}

func (d *decoder) typeError(path, want string, val any, secret bool) {
	got := tomlType(val)
	if !secret {
		if s := showValue(val); s != "" {
			got += " " + s
		}
	}
	d.errorf(path, "expected %s, got %s", want, got)
}

func (d *decoder) decodeValue(path string, val any, fv reflect.Value) {
	switch fv.Type() {
	case reflect.TypeFor[Duration]():
		s, ok := d.str(path, val, `a duration string like "30s"`, false)
		if !ok {
			return
		}
		dur, err := parseDuration(s)
		if err != nil {
			d.errorf(path, "%v", err)
			return
		}
		fv.SetInt(int64(dur))
		return
	case reflect.TypeFor[Size]():
		s, ok := d.str(path, val, `a size string like "64KiB"`, false)
		if !ok {
			return
		}
		n, err := parseSize(s)
		if err != nil {
			d.errorf(path, "%v", err)
			return
		}
		fv.SetInt(n)
		return
	}
	switch fv.Kind() {
	case reflect.String:
		if s, ok := d.str(path, val, "a string", fv.Type() == reflect.TypeFor[Secret]()); ok {
			fv.SetString(s)
		}
	case reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			d.typeError(path, "a boolean (true or false)", val, false)
			return
		}
		fv.SetBool(b)
	case reflect.Int:
		n, ok := val.(int64)
		if !ok {
			d.typeError(path, "an integer", val, false)
			return
		}
		if fv.OverflowInt(n) {
			d.errorf(path, "integer %d is out of range", n)
			return
		}
		fv.SetInt(n)
	case reflect.Float64:
		var f float64
		switch x := val.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		default:
			d.typeError(path, "a number", val, false)
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(path, "must be a finite number, not %v", f)
			return
		}
		fv.SetFloat(f)
	case reflect.Slice:
		d.decodeSlice(path, val, fv)
	case reflect.Pointer:
		m, ok := val.(map[string]any)
		if !ok {
			d.typeError(path, fmt.Sprintf("a table ([%s])", headerName(path)), val, false)
			return
		}
		p := reflect.New(fv.Type().Elem())
		if df, ok := p.Interface().(defaulter); ok {
			df.setDefaults()
		}
		d.decodeStruct(path, m, p.Elem())
		fv.Set(p)
	case reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			d.typeError(path, fmt.Sprintf("a table ([%s])", headerName(path)), val, false)
			return
		}
		d.decodeStruct(path, m, fv)
	default:
		d.errorf(path, "internal error: cannot decode into %s", fv.Type())
	}
}

func (d *decoder) decodeSlice(path string, val any, fv reflect.Value) {
	et := fv.Type().Elem()
	if et.Kind() == reflect.Struct {
		var tables []map[string]any
		switch x := val.(type) {
		case []map[string]any:
			tables = x
		case []any:
			for i, e := range x {
				m, ok := e.(map[string]any)
				if !ok {
					d.typeError(indexPath(path, i), "a table", e, false)
					continue
				}
				tables = append(tables, m)
			}
			if len(tables) != len(x) {
				return
			}
		case map[string]any:
			h := headerName(path)
			d.errorf(path, "expected [[%s]] blocks (an array of tables), got a single table: write [[%s]], not [%s]", h, h, h)
			return
		default:
			d.typeError(path, fmt.Sprintf("[[%s]] blocks (an array of tables)", headerName(path)), val, false)
			return
		}
		out := reflect.MakeSlice(fv.Type(), len(tables), len(tables))
		for i, m := range tables {
			e := out.Index(i)
			if df, ok := e.Addr().Interface().(defaulter); ok {
				df.setDefaults()
			}
			d.decodeStruct(indexPath(path, i), m, e)
		}
		fv.Set(out)
		return
	}
	arr, ok := val.([]any)
	if !ok {
		d.typeError(path, "an array", val, false)
		return
	}
	out := reflect.MakeSlice(fv.Type(), len(arr), len(arr))
	for i, e := range arr {
		d.decodeValue(indexPath(path, i), e, out.Index(i))
	}
	fv.Set(out)
}

// tomlType names the TOML type of a decoded value.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case time.Time:
		return "datetime"
	}
	return fmt.Sprintf("%T", v)
}

// showValue renders a scalar for a message ("" for tables and arrays).
func showValue(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return strconv.Quote(x)
	case int64, float64, bool:
		return fmt.Sprint(x)
	}
	return ""
}

// suggest returns the known key closest to key, if it is close enough to
// be a typo.
func suggest(key string, fields map[string][]int) string {
	limit := max(1, min(2, len(key)/3))
	best, bestD := "", limit+1
	for k := range fields {
		if dd := editDistance(key, k); dd < bestD || dd == bestD && k < best {
			best, bestD = k, dd
		}
	}
	if bestD > limit {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
