package homeassistant

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestID(t *testing.T) {
	if got := ID("boiler_1-a"); got != "boiler_1-a" {
		t.Fatalf("clean id changed: %q", got)
	}
	a, b := ID("a.b"), ID("a:b")
	if a == b || !strings.HasPrefix(a, "a_b_") || !strings.HasPrefix(b, "a_b_") {
		t.Fatalf("sanitized ids %q %q must differ and keep the readable part", a, b)
	}
	if ID("") == "" {
		t.Fatal("empty id")
	}
}

func TestComponentAndClassify(t *testing.T) {
	for _, c := range []struct {
		e    Entity
		want string
	}{
		{Entity{Kind: Number}, "sensor"},
		{Entity{Kind: Number, Writable: true}, "number"},
		{Entity{Kind: Bool}, "binary_sensor"},
		{Entity{Kind: Bool, Writable: true}, "switch"},
		{Entity{Kind: String}, "sensor"},
		{Entity{Kind: String, Writable: true}, "text"},
	} {
		if got := c.e.Component(); got != c.want {
			t.Errorf("%+v: %s, want %s", c.e, got, c.want)
		}
	}
	for _, c := range []struct{ unit, point, haUnit, class, state string }{
		{"degC", "t", "°C", "temperature", "measurement"},
		{"Cel", "t", "°C", "temperature", "measurement"},
		{"%RH", "h", "%", "humidity", "measurement"},
		{"%", "rel_humidity", "%", "humidity", "measurement"},
		{"%", "valve", "%", "", "measurement"},
		{"kWh", "e", "kWh", "energy", "total_increasing"},
		{"furlong", "x", "furlong", "", "measurement"},
	} {
		u, cl, st := Classify(c.unit, c.point)
		if u != c.haUnit || cl != c.class || st != c.state {
			t.Errorf("Classify(%q, %q) = %q %q %q", c.unit, c.point, u, cl, st)
		}
	}
}

func TestTemplates(t *testing.T) {
	g := Gateway{ID: "gw"}
	for _, c := range []struct {
		e        Entity
		template string
	}{
		{Entity{Adapter: "coap", Device: "k", Point: "t", Payload: "json"}, `{{ value_json["t"] if "t" in value_json else this.state }}`},
		{Entity{Adapter: "coap", Device: "k", Point: "t", Payload: "value"}, ``},
		{Entity{Adapter: "coap", Device: "k", Point: "on", Kind: Bool, Payload: "value"}, `{{ 'ON' if value in ('true', '1', 'on', 'ON') else 'OFF' }}`},
		{Entity{Adapter: "coap", Device: "k", Point: "s", Kind: String, Payload: "senml"}, `{{ (value_json | selectattr('n', 'defined') | selectattr('n', 'eq', "s") | map(attribute='vs') | first) if (value_json | selectattr('n', 'defined') | selectattr('n', 'eq', "s") | list | count > 0) else this.state }}`},
	} {
		m := Config("homeassistant", g, c.e)
		var cfg map[string]any
		if err := json.Unmarshal(m.Payload, &cfg); err != nil {
			t.Fatal(err)
		}
		got, _ := cfg["value_template"].(string)
		if got != c.template {
			t.Errorf("%+v:\n got %s\nwant %s", c.e, got, c.template)
		}
		if len(cfg["availability"].([]any)) != 1 || cfg["availability_mode"] != nil {
			t.Errorf("an adapter without availability: %v", cfg["availability"])
		}
	}
}
