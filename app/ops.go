package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/internal/metrics"
)

// httpServer serves /metrics, /healthz, /readyz and POST /-/reload.
type httpServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

func (a *App) startHTTP(listen string) (*httpServer, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	mux := metrics.Mux(a.metrics, a.readiness)
	mux.HandleFunc("/-/reload", a.serveReload)
	h := &httpServer{ln: ln, done: make(chan struct{}),
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          nil,
		}}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.log.Error("HTTP listener stopped", "err", err)
		}
	}()
	a.log.Info("HTTP listening", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz /-/reload")
	return h, nil
}

func (h *httpServer) addr() net.Addr { return h.ln.Addr() }

// close frees the address at once and lets requests in progress (a reload
// asked over HTTP that moves the listener) finish for up to 5 s.
func (h *httpServer) close() {
	_ = h.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	go func() {
		defer cancel()
		_ = h.srv.Shutdown(ctx)
	}()
	<-h.done
}

// serveReload applies the configuration file again: POST only.
func (a *App) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST to reload the configuration", http.StatusMethodNotAllowed)
		return
	}
	if err := a.ReloadFile(); err != nil {
		http.Error(w, "reload refused: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	_, _ = fmt.Fprintln(w, "configuration reloaded")
}

// readiness is /readyz: ready once every adapter of the first
// configuration served; the uplink is reported, not required.
func (a *App) readiness() metrics.Readiness {
	rd := metrics.Readiness{Ready: a.ready.Load(), Adapters: a.sup.States()}
	a.mu.Lock()
	up := a.up
	a.mu.Unlock()
	if up != nil {
		st := up.up.Stats()
		rd.Uplink = &metrics.UplinkReadiness{Connected: st.Connected, Queued: st.Queued}
	}
	return rd
}

// snapshot gathers every component's counters for one scrape or one stats
// message.
func (a *App) snapshot() metrics.Snapshot {
	s := metrics.Snapshot{Gateway: a.gw, Adapters: a.sup.States(), Bus: a.bus.Stats()}
	a.mu.Lock()
	runs := append([]*adapterRun(nil), a.adapters...)
	up, b := a.up, a.broker
	a.mu.Unlock()
	for _, r := range runs {
		switch {
		case r.coap != nil:
			s.CoAP = append(s.CoAP, metrics.CoAP{Name: r.name, Stats: r.coap.Stats()})
		case r.mbus != nil:
			s.Modbus = append(s.Modbus, metrics.Modbus{Name: r.name, Stats: r.mbus.Stats()})
		case r.uart != nil:
			s.UART = append(s.UART, metrics.UART{Name: r.name, Stats: r.uart.Stats()})
		}
	}
	if up != nil {
		us := up.up.Stats()
		s.Uplink = &us
		s.Queue = up.q.Stats()
	}
	if b != nil {
		bs := b.Stats()
		s.Broker = &bs
	}
	return s
}

// statsLoop publishes the key figures on {gateway}/stats (retained) every
// stats_interval, on the built-in broker and through the uplink.
func (a *App) statsLoop(ctx context.Context) {
	for {
		every := a.cfg.Load().Gateway.StatsInterval.D()
		var tick <-chan time.Time
		var t *time.Ticker
		if every > 0 {
			t = time.NewTicker(every)
			tick = t.C
		}
		reset := false
		for !reset {
			select {
			case <-ctx.Done():
				if t != nil {
					t.Stop()
				}
				return
			case <-a.statsReset:
				reset = true
			case now := <-tick:
				a.deliver([]bridge.Message{{
					Topic: a.gw + "/stats", Payload: a.metrics.StatsJSON(now),
					QoS: 1, Retain: true, Uplink: true,
				}}, nil)
			}
		}
		if t != nil {
			t.Stop()
		}
	}
}
