package metrics

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/causeway/causeway/bridge"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestMux(t *testing.T) {
	ready := Readiness{
		Adapters: []bridge.AdapterState{
			{Name: "plc", Kind: "modbus", Running: true},
			{Name: "meter", Kind: "uart", Running: false, Restarts: 2, LastErr: "uart serial port /dev/ttyUSB0: no such file"},
		},
	}
	m := New(func() Snapshot { return fullSnapshot() }, Options{})
	m.Frame("plc", "boiler")
	srv := httptest.NewServer(Mux(m, func() Readiness { return ready }))
	defer srv.Close()

	code, hdr, body := get(t, srv, http.MethodGet, "/healthz")
	if code != http.StatusOK || body != "ok\n" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("/healthz: %d %q %q", code, hdr.Get("Content-Type"), body)
	}

	// Not ready: 503, the body says why.
	code, hdr, body = get(t, srv, http.MethodGet, "/readyz")
	if code != http.StatusServiceUnavailable || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("/readyz not ready: %d %q", code, hdr.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	want := map[string]any{
		"ready": false,
		"adapters": []any{
			map[string]any{"name": "plc", "kind": "modbus", "running": true, "restarts": 0.0},
			map[string]any{"name": "meter", "kind": "uart", "running": false, "restarts": 2.0,
				"last_error": "uart serial port /dev/ttyUSB0: no such file"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("/readyz body\n got %v\nwant %v", got, want)
	}

	// Ready, uplink down: still 200, the uplink is reported.
	ready.Ready = true
	ready.Uplink = &UplinkReadiness{Connected: false, Queued: 42}
	code, _, body = get(t, srv, http.MethodGet, "/readyz")
	if code != http.StatusOK {
		t.Errorf("/readyz ready with the uplink down: %d", code)
	}
	got = nil
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got["ready"] != true || !reflect.DeepEqual(got["uplink"], map[string]any{"connected": false, "queued": 42.0}) {
		t.Errorf("/readyz body %s", body)
	}

	code, _, body = get(t, srv, http.MethodGet, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, `causeway_frames_total{adapter="plc",device="boiler"} 1`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}

	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, _, body := get(t, srv, http.MethodHead, path); code != http.StatusOK || body != "" {
			t.Errorf("HEAD %s: %d %q", path, code, body)
		}
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			code, hdr, _ := get(t, srv, method, path)
			if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q", method, path, code, hdr.Get("Allow"))
			}
		}
	}
	if code, _, _ := get(t, srv, http.MethodGet, "/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d", code)
	}
}

func TestReadyNilState(t *testing.T) {
	rec := httptest.NewRecorder()
	ReadyHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != `{"ready":false,"adapters":[]}` {
		t.Errorf("nil state: %d %s", rec.Code, rec.Body)
	}
	// Mux without metrics: no /metrics.
	srv := httptest.NewServer(Mux(nil, nil))
	defer srv.Close()
	if code, _, _ := get(t, srv, http.MethodGet, "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics without Metrics: %d", code)
	}
	if code, _, _ := get(t, srv, http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
}
