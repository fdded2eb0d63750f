package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
)

func TestParseFlagsDTLS(t *testing.T) {
	cfg, err := parseFlags([]string{"-url", "coaps://127.0.0.1", "-psk-identity", "load", "-psk-key", "00aBcd"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.target != "127.0.0.1:5684" || cfg.identity != "load" || !bytes.Equal(cfg.psk, []byte{0, 0xab, 0xcd}) {
		t.Fatalf("%+v", cfg)
	}
	for _, bad := range [][]string{
		{"-url", "coaps://x", "-psk-identity", "a"},
		{"-url", "coaps://x", "-psk-key", "00"},
		{"-url", "coaps://x", "-psk-identity", "a", "-psk-key", "0g"},
		{"-url", "coap://x", "-psk-identity", "a", "-psk-key", "00"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%v) accepted", bad)
		}
	}
}

// TestRunOverDTLS: every client is a DTLS session with the pre-shared key;
// a wrong key fails the run before it starts.
func TestRunOverDTLS(t *testing.T) {
	key := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	var posts atomic.Int64
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		posts.Add(1)
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	}))
	l, err := coapnet.NewDTLSListener("udp", "127.0.0.1:0", coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(func(id []byte) ([]byte, error) {
			if string(id) != "load" {
				return nil, errors.New("unknown identity")
			}
			return key, nil
		}),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	))
	if err != nil {
		t.Fatal(err)
	}
	s := coapdtls.NewServer(options.WithMux(r), options.WithErrors(func(error) {}))
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { s.Stop(); _ = l.Close() })
	addr := l.Addr().String()

	for _, con := range []bool{true, false} {
		cfg := config{target: addr, clients: 3, window: 4, devices: 3, size: 64, count: 300, con: con,
			timeout: 5 * time.Second, run: 9, psk: key, identity: "load"}
		res, err := run(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != 300 || res.OK != 300 || !res.DTLS || res.Timeouts != 0 {
			t.Fatalf("%+v", res)
		}
	}
	if n := posts.Load(); n != 600 {
		t.Fatalf("server answered %d POSTs", n)
	}
	cfg := config{target: addr, clients: 1, window: 1, devices: 1, size: 64, count: 1, con: true,
		timeout: time.Second, run: 9, psk: []byte{9, 9}, identity: "load"}
	if res, err := run(context.Background(), cfg, io.Discard); err == nil || res != nil {
		t.Fatalf("wrong key: %v, %v", res, err)
	}
}
