package metrics

import (
	"encoding/json"
	"net/http"

	"github.com/causeway/causeway/bridge"
)

// Readiness is what /readyz reports.
type Readiness struct {
	// Ready is true once the adapters are started; /readyz answers 200
	// then, 503 otherwise.
	Ready bool
	// Adapters is the supervisor's view, reported in the body.
	Adapters []bridge.AdapterState
	// Uplink is reported in the body but does not affect readiness (the
	// gateway serves its devices and local clients without it); nil when no
	// uplink is configured.
	Uplink *UplinkReadiness
}

// UplinkReadiness is the uplink's state in /readyz.
type UplinkReadiness struct {
	Connected bool
	// Queued is the messages waiting in the offline queue.
	Queued int
}

// readyBody is the JSON body of /readyz.
type readyBody struct {
	Ready    bool           `json:"ready"`
	Adapters []readyAdapter `json:"adapters"`
	Uplink   *readyUplink   `json:"uplink,omitempty"`
}

type readyAdapter struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Running   bool   `json:"running"`
	Restarts  uint64 `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
}

type readyUplink struct {
	Connected bool `json:"connected"`
	Queued    int  `json:"queued"`
}

// getOnly answers 405 to methods other than GET and HEAD.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// HealthHandler answers 200 "ok" as long as the process serves HTTP
// (liveness). GET and HEAD only.
func HealthHandler() http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	}))
}

// ReadyHandler answers 200 when state().Ready, 503 otherwise, with a small
// JSON body giving the adapters' and the uplink's state:
//
//	{"ready":true,"adapters":[{"name":"plc","kind":"modbus","running":true,"restarts":0}],"uplink":{"connected":false,"queued":42}}
//
// A nil state answers 503. GET and HEAD only.
func ReadyHandler(state func() Readiness) http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var st Readiness
		if state != nil {
			st = state()
		}
		body := readyBody{Ready: st.Ready, Adapters: make([]readyAdapter, 0, len(st.Adapters))}
		for _, a := range st.Adapters {
			body.Adapters = append(body.Adapters, readyAdapter{
				Name: a.Name, Kind: a.Kind, Running: a.Running, Restarts: a.Restarts, LastError: a.LastErr,
			})
		}
		if u := st.Uplink; u != nil {
			body.Uplink = &readyUplink{Connected: u.Connected, Queued: u.Queued}
		}
		b, err := json.Marshal(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if st.Ready {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(append(b, '\n'))
	}))
}

// Mux returns a ServeMux serving /metrics (m's Handler; not registered when
// m is nil), /healthz (HealthHandler) and /readyz (ReadyHandler(ready)).
// Every path answers GET and HEAD; other methods get 405.
func Mux(m *Metrics, ready func() Readiness) *http.ServeMux {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("/metrics", getOnly(m.Handler()))
	}
	mux.Handle("/healthz", HealthHandler())
	mux.Handle("/readyz", ReadyHandler(ready))
	return mux
}
