package mapping

import (
	"github.com/causeway/causeway/bridge"

	"errors"
	"strings"
	"testing"
)

func TestDefaultRouteValid(t *testing.T) {
	if errs := ValidateRoute(DefaultRoute()); errs != nil {
		t.Fatal(errs)
	}
}

func TestValidateRoute(t *testing.T) {
	ok := func(mod func(*Route)) Route {
		r := DefaultRoute()
		r.Match = "coap/**"
		mod(&r)
		return r
	}
	tests := []struct {
		name   string
		route  Route
		fields []string // the FieldError fields, in order
	}{
		{"valid", ok(func(*Route) {}), nil},
		{"value per point", ok(func(r *Route) { r.Topic += "/{point}"; r.Payload = "value" }), nil},
		{"senml", ok(func(r *Route) { r.Payload = "senml" }), nil},
		{"qos 0 and 2", ok(func(r *Route) { r.QoS = 2 }), nil},
		{"drop alone", Route{Match: "coap/**", Drop: true}, nil},
		{"drop still checks match", Route{Match: "coap/+", Drop: true}, []string{"match"}},
		{"drop with typo", ok(func(r *Route) { r.Drop = true; r.Payload = "valeu" }), []string{"payload"}},
		{"value without point", ok(func(r *Route) { r.Payload = "value" }), []string{"payload"}},
		{"bad payload", ok(func(r *Route) { r.Payload = "xml" }), []string{"payload"}},
		{"empty payload", ok(func(r *Route) { r.Payload = "" }), []string{"payload"}},
		{"qos 3", ok(func(r *Route) { r.QoS = 3 }), []string{"qos"}},
		{"everything", Route{Match: "a//b", Topic: "{x}", Payload: "value", QoS: 9},
			[]string{"match", "topic", "qos"}},
		{"bad topic, value", Route{Match: "**", Topic: "{x}/{point}", Payload: "value", QoS: 1},
			[]string{"topic"}},
	}
	for _, tt := range tests {
		errs := ValidateRoute(tt.route)
		var fields []string
		for _, err := range errs {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("%s: %v is not a *FieldError", tt.name, err)
				continue
			}
			fields = append(fields, fe.Field)
		}
		if strings.Join(fields, ",") != strings.Join(tt.fields, ",") {
			t.Errorf("%s: fields %v, want %v (%v)", tt.name, fields, tt.fields, errs)
		}
	}
}

func TestNewErrors(t *testing.T) {
	good := DefaultRoute()
	bad1 := DefaultRoute()
	bad1.Match = "coap/+/x"
	bad2 := DefaultRoute()
	bad2.Payload = "value"
	bad2.QoS = 5
	_, err := New("gw-01", []Route{good, bad1, good, bad2})
	if err == nil {
		t.Fatal("New accepted bad routes")
	}
	msg := err.Error()
	for _, want := range []string{
		`route[1]: match: "coap/+/x"`,
		`route[3]: payload: "value" needs {point}`,
		`route[3]: qos: 5`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "route[0]") || strings.Contains(msg, "route[2]") {
		t.Errorf("error names a good route: %q", msg)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("errors.As(*FieldError) failed on %v", err)
	}

	for _, id := range []string{"", "a/b", "gw+", "$gw", "g\x00"} {
		if _, err := New(id, nil); err == nil {
			t.Errorf("New(%q) accepted the gateway id", id)
		}
	}
	e, err := New("gw-01", nil)
	if err != nil || e.Routes() != 0 {
		t.Fatalf("New with no routes: %v", err)
	}
}

func TestSelect(t *testing.T) {
	routes := []Route{
		{Match: "coap/greenhouse/temperature", Topic: "t/{point}", Payload: "value", QoS: 1},
		{Match: "coap/**", Topic: "c/{device}", Payload: "json"},
		{Match: "**", Drop: true},
	}
	e, err := New("gw", routes)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		subject string
		want    int
	}{
		{"coap/greenhouse/temperature", 0},
		{"coap/greenhouse/humidity", 1},
		{"modbus/boiler/x", 2},
	} {
		s := strings.Split(tt.subject, "/")
		if got := e.Select(s[0], s[1], s[2]); got != tt.want {
			t.Errorf("Select(%s) = %d, want %d", tt.subject, got, tt.want)
		}
	}
	e, _ = New("gw", routes[:1])
	if got := e.Select("modbus", "boiler", "x"); got != -1 {
		t.Errorf("Select default = %d, want -1", got)
	}
}

func TestNames(t *testing.T) {
	for _, s := range []string{"greenhouse", "supply_temp", "grün", "a b", "x.y-z", "日本"} {
		if err := bridge.CheckDeviceName(s); err != nil {
			t.Errorf("CheckDeviceName(%q): %v", s, err)
		}
		if err := bridge.CheckPointName(s); err != nil {
			t.Errorf("bridge.CheckPointName(%q): %v", s, err)
		}
		if !bridge.NameOK(s) {
			t.Errorf("bridge.NameOK(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a/b", "a+", "#", "a\x00", "a\n", "\x7f", "\xff", "a\u0085", "a\xe2\x82"} {
		if bridge.CheckDeviceName(s) == nil || bridge.CheckPointName(s) == nil || bridge.CheckAdapterName(s) == nil {
			t.Errorf("%q accepted", s)
		}
		if bridge.NameOK(s) {
			t.Errorf("bridge.NameOK(%q) = true", s)
		}
	}
	for _, s := range []string{"set", "availability", "status", "stats"} {
		if bridge.CheckDeviceName(s) == nil || bridge.CheckPointName(s) == nil {
			t.Errorf("reserved %q accepted", s)
		}
	}
	for _, s := range []string{"time", "errors"} {
		if bridge.CheckDeviceName(s) != nil {
			t.Errorf("device %q refused", s)
		}
		if bridge.CheckPointName(s) == nil {
			t.Errorf("point %q accepted", s)
		}
	}
}

func TestDescribe(t *testing.T) {
	e, err := New("gw", []Route{
		{Match: "modbus/boiler/*", Topic: "plant/{device}/{point}", Payload: PayloadValue},
		{Match: "modbus/noise/*", Drop: true},
		{Match: "coap/**", Topic: "{gateway}/c/{device}", Payload: PayloadSenML},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a, d, p        string
		topic, payload string
		ok             bool
	}{
		{"modbus", "boiler", "temp", "plant/boiler/temp", PayloadValue, true},
		{"modbus", "noise", "x", "", "", false},
		{"coap", "k", "t", "gw/c/k", PayloadSenML, true},
		{"uart", "u", "t", "gw/uart/u", PayloadJSON, true},
	} {
		topic, payload, ok := e.Describe(c.a, c.d, c.p)
		if topic != c.topic || payload != c.payload || ok != c.ok {
			t.Errorf("Describe(%s/%s/%s) = %q %q %v, want %q %q %v", c.a, c.d, c.p, topic, payload, ok, c.topic, c.payload, c.ok)
		}
	}
}
