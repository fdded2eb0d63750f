package mapping

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/causeway/causeway/bridge"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		topic, payload string
		want           []bridge.PointValue
		wantErr        string
	}{
		{"gw/modbus/boiler/set", `{"setpoint":21.5,"pump":true,"mode":"eco","n":3}`, []bridge.PointValue{
			{Name: "setpoint", Value: bridge.Number(21.5)}, {Name: "pump", Value: bridge.Bool(true)}, {Name: "mode", Value: bridge.String("eco")}, {Name: "n", Value: bridge.Int(3)}}, ""},
		{"gw/modbus/boiler/setpoint/set", "21.5", []bridge.PointValue{{Name: "setpoint", Value: bridge.Number(21.5)}}, ""},
		{"gw/modbus/boiler/setpoint/set", " -7 ", []bridge.PointValue{{Name: "setpoint", Value: bridge.Int(-7)}}, ""},
		{"gw/modbus/boiler/setpoint/set", "1e3", []bridge.PointValue{{Name: "setpoint", Value: bridge.Number(1000)}}, ""},
		{"gw/modbus/boiler/pump/set", "false", []bridge.PointValue{{Name: "pump", Value: bridge.Bool(false)}}, ""},
		{"gw/modbus/boiler/mode/set", `"eco"`, []bridge.PointValue{{Name: "mode", Value: bridge.String("eco")}}, ""},
		{"gw/modbus/boiler/mode/set", `eco mode`, []bridge.PointValue{{Name: "mode", Value: bridge.String("eco mode")}}, ""},
		{"gw/modbus/boiler/set", `{"a":1,"a":2}`, nil, "given twice"},
		{"gw/modbus/boiler/set", `{}`, nil, "names no point"},
		{"gw/modbus/boiler/set", `[1]`, nil, "JSON object"},
		{"gw/modbus/boiler/set", `{"a":null}`, nil, "null"},
		{"gw/modbus/boiler/set", `{"a":{"b":1}}`, nil, "object or array"},
		{"gw/modbus/boiler/set", `{"time":1}`, nil, "reserved"},
		{"gw/modbus/boiler/set", `{"a":1} x`, nil, "after the object"},
		{"gw/modbus/boiler/set", `{"a":`, nil, "invalid JSON"},
		{"gw/modbus/boiler/p/set", ``, nil, "empty"},
		{"gw/modbus/boiler/p/set", "\xff", nil, "UTF-8"},
		{"gw/modbus/boiler/p/set", `"unterminated`, nil, "invalid JSON string"},
		{"other/modbus/boiler/set", `{"a":1}`, nil, "not a command topic"},
		{"gw/modbus/boiler/set/result", `{"a":1}`, nil, "not a command topic"},
		{"gw/modbus/set/set", `{"a":1}`, nil, "not a command topic"},
	}
	for _, tt := range tests {
		cmd, err := ParseCommand("gw", tt.topic, []byte(tt.payload))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %q: err %v, want %q", tt.topic, tt.payload, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tt.topic, tt.payload, err)
			continue
		}
		if cmd.Adapter != "modbus" || cmd.Device != "boiler" || !reflect.DeepEqual(cmd.Values, tt.want) {
			t.Errorf("%s %q: %+v, want %+v", tt.topic, tt.payload, cmd, tt.want)
		}
	}
}

func TestCommandFiltersMatchTargets(t *testing.T) {
	f := CommandFilters("gw")
	if len(f) != 2 || f[0] != "gw/+/+/set" || f[1] != "gw/+/+/+/set" {
		t.Fatalf("filters %v", f)
	}
	if ResultTopic("gw", "modbus", "boiler") != "gw/modbus/boiler/set/result" {
		t.Fatal(ResultTopic("gw", "modbus", "boiler"))
	}
}

func TestAppendResult(t *testing.T) {
	got := string(AppendResult(nil, []bridge.PointValue{{Name: "setpoint", Value: bridge.Number(21)}, {Name: "pump", Value: bridge.Bool(true)}}, nil))
	if got != `{"ok":true,"values":{"setpoint":21,"pump":true}}` {
		t.Errorf("ok result %s", got)
	}
	got = string(AppendResult(nil, nil, errors.New(`point "flow" is not writable`)))
	if got != `{"ok":false,"error":"point \"flow\" is not writable"}` {
		t.Errorf("error result %s", got)
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add("gw/a/d/set", []byte(`{"x":1.5,"y":true}`))
	f.Add("gw/a/d/p/set", []byte(`42`))
	f.Add("gw/a/d/p/set", []byte(`"s"`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		cmd, err := ParseCommand("gw", topic, payload)
		if err != nil {
			return
		}
		if len(cmd.Values) == 0 {
			t.Fatalf("no values and no error for %q", payload)
		}
		for _, pv := range cmd.Values {
			if bridge.CheckPointName(pv.Name) != nil {
				t.Fatalf("bad point name %q accepted", pv.Name)
			}
		}
		// The result encoding of what was parsed is valid JSON.
		out := AppendResult(nil, cmd.Values, nil)
		if !json.Valid(out) {
			t.Fatalf("result %s is not JSON", out)
		}
	})
}
