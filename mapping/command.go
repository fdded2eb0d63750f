package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

// MaxCommandPayload bounds a command payload; larger ones are refused.
const MaxCommandPayload = 64 << 10

// CommandFilters are the topic filters, on the built-in broker, of the
// command topics of gateway (PRODUCT.md, "Commands").
func CommandFilters(gateway string) []string {
	return []string{gateway + "/+/+/set", gateway + "/+/+/+/set"}
}

// ResultTopic is where the outcome of a command to adapter/device goes.
func ResultTopic(gateway, adapter, device string) string {
	return gateway + "/" + adapter + "/" + device + "/set/result"
}

// CommandTarget splits a command topic into adapter and device (and point,
// for .../{point}/set). ok is false when topic is not a command topic of
// gateway.
func CommandTarget(gateway, topic string) (adapter, device, point string, ok bool) {
	rest, found := strings.CutPrefix(topic, gateway+"/")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if parts[len(parts)-1] != "set" {
		return "", "", "", false
	}
	switch len(parts) {
	case 3:
		adapter, device = parts[0], parts[1]
	case 4:
		adapter, device, point = parts[0], parts[1], parts[2]
		if bridge.CheckPointName(point) != nil {
			return "", "", "", false
		}
	default:
		return "", "", "", false
	}
	if bridge.CheckAdapterName(adapter) != nil || bridge.CheckDeviceName(device) != nil {
		return "", "", "", false
	}
	return adapter, device, point, true
}

// ParseCommand decodes a command published on topic (a command topic of
// gateway, see [CommandTarget]): on .../{device}/set a JSON object of
// point → value (numbers, booleans, strings; at least one point), on
// .../{device}/{point}/set a bare value: a JSON number, true or false, a
// JSON string literal, or else the payload itself as a string. Integral
// number literals become integers, the others numbers.
func ParseCommand(gateway, topic string, payload []byte) (bridge.Command, error) {
	adapter, device, point, ok := CommandTarget(gateway, topic)
	if !ok {
		return bridge.Command{}, fmt.Errorf("%q is not a command topic", topic)
	}
	cmd := bridge.Command{Adapter: adapter, Device: device}
	if len(payload) > MaxCommandPayload {
		return cmd, fmt.Errorf("command payload of %d bytes is larger than %d", len(payload), MaxCommandPayload)
	}
	if point != "" {
		v, err := parseBareValue(payload)
		if err != nil {
			return cmd, err
		}
		cmd.Values = []bridge.PointValue{{Name: point, Value: v}}
		return cmd, nil
	}
	vals, err := parseCommandObject(payload)
	if err != nil {
		return cmd, err
	}
	cmd.Values = vals
	return cmd, nil
}

func parseBareValue(p []byte) (bridge.Value, error) {
	s := strings.TrimSpace(string(p))
	if s == "" {
		return bridge.Value{}, errors.New("empty command value")
	}
	if !utf8.ValidString(s) {
		return bridge.Value{}, errors.New("command value is not valid UTF-8")
	}
	switch s {
	case "true":
		return bridge.Bool(true), nil
	case "false":
		return bridge.Bool(false), nil
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal([]byte(s), &str); err != nil {
			return bridge.Value{}, fmt.Errorf("invalid JSON string: %w", err)
		}
		return bridge.String(str), nil
	}
	if v, ok := parseNumber(s); ok {
		return v, nil
	}
	return bridge.String(s), nil
}

// parseNumber parses a JSON number literal.
func parseNumber(s string) (bridge.Value, bool) {
	if !json.Valid([]byte(s)) || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return bridge.Value{}, false
	}
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return bridge.Int(i), true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return bridge.Value{}, false
	}
	return bridge.Number(f), true
}

func parseCommandObject(p []byte) ([]bridge.PointValue, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New(`a command to a device is a JSON object of point -> value, e.g. {"setpoint":21.5}`)
	}
	var out []bridge.PointValue
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		name := tok.(string) // object keys are strings
		if err := bridge.CheckPointName(name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("point %s given twice", name)
		}
		seen[name] = true
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		var v bridge.Value
		switch t := tok.(type) {
		case json.Number:
			nv, ok := parseNumber(t.String())
			if !ok {
				return nil, fmt.Errorf("point %s: invalid number %s", name, t)
			}
			v = nv
		case bool:
			v = bridge.Bool(t)
		case string:
			v = bridge.String(t)
		case nil:
			return nil, fmt.Errorf("point %s: null is not a value to write", name)
		default:
			return nil, fmt.Errorf("point %s: an object or array is not a value to write", name)
		}
		out = append(out, bridge.PointValue{Name: name, Value: v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the object")
	}
	if len(out) == 0 {
		return nil, errors.New("the command names no point")
	}
	return out, nil
}

// AppendResult appends the JSON outcome of a command: {"ok":true,"values":{...}}
// or {"ok":false,"error":"..."}.
func AppendResult(dst []byte, values []bridge.PointValue, err error) []byte {
	if err != nil {
		dst = append(dst, `{"ok":false,"error":`...)
		dst = bridge.AppendJSONString(dst, err.Error())
		return append(dst, '}')
	}
	dst = append(dst, `{"ok":true,"values":{`...)
	for i, pv := range values {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = bridge.AppendJSONString(dst, pv.Name)
		dst = append(dst, ':')
		dst = pv.Value.AppendJSON(dst)
	}
	return append(dst, "}}"...)
}
