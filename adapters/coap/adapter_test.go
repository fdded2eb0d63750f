package coap

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/config"
)

// These tests drive a real adapter over UDP with real peers: libcoap's
// coap-client-notls (required: the tests fail without it), go-coap's client,
// and hand-made datagrams.

func TestCoAPClientRequirement(t *testing.T) {
	if _, err := coapClientBinary(); err != nil {
		t.Fatal(err)
	}
}

// goodRequest checks the adapter still serves a fresh client.
func goodRequest(t *testing.T, h *harness, device string) {
	t.Helper()
	before := h.countOf(device)
	expectCode(t, coapClient(t, "-m", "post", "-t", "0", "-e", "1", h.url+"/"+device), "2.04", "")
	h.framesOf(t, device, before+1)
}

func TestCoAPClientPayloads(t *testing.T) {
	h := startHarness(t, harnessOpts{cfg: config.CoAP{Name: "edge", MaxPayload: 16 << 10}})

	t.Run("json object", func(t *testing.T) {
		res := coapClient(t, "-m", "post", "-t", "50", "-e", `{"temperature":21.5,"count":3,"ok":true,"state":"idle"}`, h.url+"/dev1")
		expectCode(t, res, "2.04", "")
		if res.Type != "ACK" || res.Payload != "" {
			t.Errorf("response %s %q, want a piggybacked ACK with an empty payload", res.Type, res.Payload)
		}
		f := h.framesOf(t, "dev1", 1)[0]
		if f.Adapter != "edge" || time.Since(f.Time) > 10*time.Second {
			t.Errorf("frame %+v", f)
		}
		want := []bridge.Point{pt("temperature", bridge.Number(21.5)), pt("count", bridge.Int(3)), pt("ok", bridge.Bool(true)), pt("state", bridge.String("idle"))}
		if fmt.Sprint(f.Points) != fmt.Sprint(want) {
			t.Errorf("points %+v, want %+v", f.Points, want)
		}
	})

	t.Run("text values", func(t *testing.T) {
		cases := []struct {
			args []string
			path string
			want bridge.Point
		}{
			{[]string{"-t", "0", "-e", "21.5"}, "/text1", pt("value", bridge.Number(21.5))},
			{[]string{"-t", "0", "-e", "42"}, "/text2", pt("value", bridge.Int(42))},
			{[]string{"-t", "0", "-e", "true"}, "/text3", pt("value", bridge.Bool(true))},
			{[]string{"-t", "0", "-e", "hello%20world"}, "/text4", pt("value", bridge.String("hello world"))},
			{[]string{"-e", "false"}, "/text5", pt("value", bridge.Bool(false))},                   // no Content-Format: text
			{[]string{"-e", `{"a":-1}`}, "/text6", pt("a", bridge.Int(-1))},                        // no Content-Format: JSON
			{[]string{"-t", "0", "-e", "-3"}, "/text7/level", pt("level", bridge.Int(-3))},         // bare value on a point path
			{[]string{"-t", "50", "-e", "17.25"}, "/text8/temp", pt("temp", bridge.Number(17.25))}, // JSON bare value
		}
		for _, c := range cases {
			expectCode(t, coapClient(t, append(append([]string{"-m", "put"}, c.args...), h.url+c.path)...), "2.04", "")
			device := strings.Split(c.path, "/")[1]
			f := h.framesOf(t, device, 1)[0]
			if len(f.Points) != 1 || fmt.Sprint(f.Points[0]) != fmt.Sprint(c.want) {
				t.Errorf("%s %v: points %+v, want %+v", c.path, c.args, f.Points, c.want)
			}
		}
	})

	t.Run("senml json", func(t *testing.T) {
		// -e would percent-decode the "%RH": send the pack from a file.
		pack := filepath.Join(t.TempDir(), "pack.json")
		if err := os.WriteFile(pack, []byte(`[{"bn":"senml1/","bt":1700000000,"bu":"Cel","n":"temp","v":21.5},{"n":"hum","u":"%RH","v":40},{"n":"temp","v":21.0,"t":-60}]`), 0o600); err != nil {
			t.Fatal(err)
		}
		expectCode(t, coapClient(t, "-m", "post", "-t", "110", "-f", pack, h.url+"/senml1"), "2.04", "")
		frames := h.framesOf(t, "senml1", 2)
		if len(frames) != 2 {
			t.Fatalf("%d frames, want 2 (two times)", len(frames))
		}
		if frames[0].Time.Unix() != 1700000000-60 || frames[1].Time.Unix() != 1700000000 {
			t.Errorf("times %v, %v", frames[0].Time, frames[1].Time)
		}
		if got := fmt.Sprint(frames[0].Points); got != fmt.Sprint([]bridge.Point{ptu("temp", bridge.Number(21), "Cel")}) {
			t.Errorf("first frame %s", got)
		}
		if got := fmt.Sprint(frames[1].Points); got != fmt.Sprint([]bridge.Point{ptu("temp", bridge.Number(21.5), "Cel"), ptu("hum", bridge.Int(40), "%RH")}) {
			t.Errorf("second frame %s", got)
		}
		// Relative times are relative to now.
		expectCode(t, coapClient(t, "-m", "post", "-t", "110", "-e", `[{"n":"t","v":1,"t":-3600}]`, h.url+"/senml2"), "2.04", "")
		f := h.framesOf(t, "senml2", 1)[0]
		if d := time.Since(f.Time); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("relative time %v is %v ago", f.Time, d)
		}
	})

	t.Run("non-confirmable", func(t *testing.T) {
		res := coapClient(t, "-N", "-m", "post", "-t", "0", "-e", "7", h.url+"/non1")
		expectCode(t, res, "2.04", "")
		if res.Type != "NON" {
			t.Errorf("response type %s, want NON", res.Type)
		}
		h.framesOf(t, "non1", 1)
	})

	t.Run("block-wise 10KiB", func(t *testing.T) {
		value := strings.Repeat("0123456789abcdef", 640) // 10240 bytes
		file := filepath.Join(t.TempDir(), "big.json")
		if err := os.WriteFile(file, []byte(`{"blob":"`+value+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		res := coapClient(t, "-m", "post", "-t", "50", "-b", "1024", "-f", file, h.url+"/bulk1")
		expectCode(t, res, "2.04", "")
		if !strings.Contains(res.Out, "Block1:") {
			t.Errorf("the request was not block-wise:\n%s", res.Out)
		}
		f := h.framesOf(t, "bulk1", 1)[0]
		if len(f.Points) != 1 || f.Points[0].Value.Str != value {
			t.Errorf("blob of %d bytes, want %d", len(f.Points[0].Value.Str), len(value))
		}
	})

	t.Run("block-wise non-confirmable, small blocks", func(t *testing.T) {
		value := strings.Repeat("fedcba9876543210", 640)
		file := filepath.Join(t.TempDir(), "big.txt")
		if err := os.WriteFile(file, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
		expectCode(t, coapClient(t, "-N", "-m", "post", "-t", "0", "-b", "64", "-f", file, h.url+"/bulk2"), "2.04", "")
		if f := h.framesOf(t, "bulk2", 1)[0]; f.Points[0].Value.Str != value {
			t.Errorf("blob of %d bytes, want %d", len(f.Points[0].Value.Str), len(value))
		}
	})

	t.Run("block-wise with lost datagrams", func(t *testing.T) {
		// Two lost blocks cost two retransmission timeouts (2-3s each):
		// go-coap's default 3s limit for a whole transfer would answer
		// 4.08 Request Entity Incomplete.
		value := strings.Repeat("0123456789abcdef", 640)
		file := filepath.Join(t.TempDir(), "big.txt")
		if err := os.WriteFile(file, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
		res := coapClient(t, "-m", "post", "-t", "0", "-b", "1024", "-l", "3,5", "-f", file, h.url+"/bulk3")
		expectCode(t, res, "2.04", "")
		if f := h.framesOf(t, "bulk3", 1)[0]; f.Points[0].Value.Str != value {
			t.Errorf("blob of %d bytes, want %d", len(f.Points[0].Value.Str), len(value))
		}
	})

	t.Run("well-known core", func(t *testing.T) {
		expectCode(t, coapClient(t, "-m", "get", h.url+"/.well-known/core"), "2.05", "")
	})

	st := h.a.Stats()
	if st.Frames < 16 || st.Responses["2.04"] < 15 || st.Requests < 16 {
		t.Errorf("stats %+v", st)
	}
}

func TestCoAPClientBadInput(t *testing.T) {
	h := startHarness(t, harnessOpts{cfg: config.CoAP{MaxPayload: 16 << 10}})
	big := filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 20<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		code    string
		payload string
	}{
		{"malformed JSON", []string{"-m", "post", "-t", "50", "-e", `{"temperature":21.5,}`, h.url + "/bad1"}, "4.00", "invalid JSON at offset 20: invalid character '}'"},
		{"truncated JSON", []string{"-m", "post", "-t", "50", "-e", `{"a":`, h.url + "/bad1"}, "4.00", "invalid JSON at offset 5: unexpected end of input"},
		{"object to point path", []string{"-m", "post", "-t", "50", "-e", `{"a":1}`, h.url + "/bad1/p"}, "4.00", "cannot be posted to the point path /bad1/p"},
		{"nested value", []string{"-m", "post", "-t", "50", "-e", `{"a":{"b":1}}`, h.url + "/bad1"}, "4.00", `point "a": nested objects are not supported`},
		{"reserved point", []string{"-m", "post", "-t", "50", "-e", `{"time":1}`, h.url + "/bad1"}, "4.00", `point name "time" is reserved`},
		{"reserved point path", []string{"-m", "post", "-t", "0", "-e", "1", h.url + "/bad1/errors"}, "4.00", `point name "errors" is reserved`},
		{"reserved device", []string{"-m", "post", "-t", "0", "-e", "1", h.url + "/status"}, "4.00", `device name "status" is reserved`},
		{"plus in name", []string{"-m", "post", "-t", "50", "-e", `{"a+b":1}`, h.url + "/bad1"}, "4.00", `'+' is not allowed`},
		{"hash in device", []string{"-m", "post", "-t", "0", "-e", "1", h.url + "/a%23b"}, "4.00", `'#' is not allowed`},
		{"senml reserved", []string{"-m", "post", "-t", "110", "-e", `[{"bn":"bad1/","n":"stats","v":1}]`, h.url + "/bad1"}, "4.00", `point name "stats" is reserved`},
		{"truncated cbor", []string{"-m", "post", "-t", "60", "-e", "x", h.url + "/bad1"}, "4.00", "invalid CBOR"},
		{"truncated senml cbor", []string{"-m", "post", "-t", "112", "-e", "x", h.url + "/bad1"}, "4.00", "invalid CBOR"},
		{"xml", []string{"-m", "post", "-t", "41", "-e", "x", h.url + "/bad1"}, "4.15", "unsupported Content-Format 41"},
		{"oversized block-wise", []string{"-m", "post", "-t", "0", "-b", "1024", "-f", big, h.url + "/bad1"}, "4.13", "larger than max_payload (16384 bytes)"},
		{"three segments", []string{"-m", "post", "-e", "1", h.url + "/a/b/c"}, "4.04", "3 segments"},
		{"root", []string{"-m", "post", "-e", "1", h.url + "/"}, "4.04", "no device"},
		{"GET", []string{"-m", "get", h.url + "/bad1"}, "4.05", "method GET is not allowed"},
		{"DELETE", []string{"-m", "delete", h.url + "/bad1/p"}, "4.05", "method DELETE is not allowed"},
		{"GET elsewhere", []string{"-m", "get", h.url + "/a/b/c"}, "4.04", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := coapClient(t, c.args...)
			expectCode(t, res, c.code, c.payload)
			if c.code == "4.13" && !strings.Contains(res.Options, "Size1:16384") {
				t.Errorf("4.13 options %q lack Size1:16384", res.Options)
			}
			// And the adapter keeps serving everyone else.
			goodRequest(t, h, "good"+strconv.Itoa(i))
		})
	}
	if n := h.countOf("bad1"); n != 0 {
		t.Errorf("%d frames from bad requests", n)
	}
	if st := h.a.Stats(); st.BadPayloads != 12 || st.Responses["4.00"] != 12 || st.Responses["4.15"] != 1 || st.Responses["4.13"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestBackpressure(t *testing.T) {
	// A bus of one frame nobody drains: the first request's frame sits on
	// the bus unacknowledged, the second finds it full.
	h := startHarness(t, harnessOpts{busCap: 1, noConsumer: true, deps: Deps{AckTimeout: 300 * time.Millisecond}})
	for i := range 2 {
		res := coapClient(t, "-m", "post", "-t", "0", "-e", strconv.Itoa(i), h.url+"/bp")
		expectCode(t, res, "5.03", "gateway busy, retry later")
	}
	if st := h.a.Stats(); st.Backpressure != 2 || st.Frames != 0 || st.Responses["5.03"] != 2 {
		t.Errorf("stats %+v", st)
	}
	if h.bus.Stats().Refused != 1 {
		t.Errorf("bus stats %+v", h.bus.Stats())
	}
}

func TestDownstreamErrors(t *testing.T) {
	h := startHarness(t, harnessOpts{ack: func(f bridge.Frame) (time.Duration, error) {
		switch f.Device {
		case "boom":
			return 0, errors.New("disk on fire")
		case "full":
			return 0, fmt.Errorf("queue: %w", bridge.ErrBackpressure)
		}
		return 0, nil
	}})
	expectCode(t, coapClient(t, "-m", "post", "-e", "1", h.url+"/boom"), "5.00", "not accepted")
	expectCode(t, coapClient(t, "-m", "post", "-e", "1", h.url+"/full"), "5.03", "busy")
	goodRequest(t, h, "fine")
}

func TestResponseWaitsForAck(t *testing.T) {
	const delay = 400 * time.Millisecond
	h := startHarness(t, harnessOpts{ack: func(bridge.Frame) (time.Duration, error) { return delay, nil }})

	res := coapClient(t, "-m", "post", "-t", "0", "-e", "1", h.url+"/slowack")
	expectCode(t, res, "2.04", "")
	if res.Elapsed < delay {
		t.Errorf("coap-client got its answer after %v, before the %v acknowledgement", res.Elapsed, delay)
	}

	cc := dialCoAP(t, h.addr)
	start := time.Now()
	resp := post(t, cc, "/slowack2", message.TextPlain, "2")
	got := time.Now()
	if resp.Code() != codes.Changed {
		t.Fatalf("code %v", resp.Code())
	}
	h.mu.Lock()
	var acked time.Time
	for i, f := range h.frames {
		if f.Device == "slowack2" {
			acked = h.acked[i]
		}
	}
	h.mu.Unlock()
	if acked.IsZero() || got.Before(acked) || got.Sub(start) < delay {
		t.Errorf("response at %v, ack at %v (request at %v)", got, acked, start)
	}
}

func TestGoCoapClient(t *testing.T) {
	h := startHarness(t, harnessOpts{cfg: config.CoAP{MaxPayload: 1024}})
	cc := dialCoAP(t, h.addr)

	resp := post(t, cc, "/gc1", message.AppJSON, `{"a":1,"b":"x"}`)
	if resp.Code() != codes.Changed || body(t, resp) != "" {
		t.Fatalf("response %v %q", resp.Code(), body(t, resp))
	}

	resp = post(t, cc, "/gc1", message.AppJSON, `{"a":1,"b":"x"`)
	if resp.Code() != codes.BadRequest || body(t, resp) != `invalid JSON at offset 14: unexpected end of input, expecting ',' or '}'` {
		t.Fatalf("response %v %q", resp.Code(), body(t, resp))
	}
	if cf, err := resp.ContentFormat(); err != nil || cf != message.TextPlain {
		t.Errorf("diagnostic content format %v, %v", cf, err)
	}

	resp = post(t, cc, "/gc1/x", message.AppJSON, `{"a":1}`)
	if resp.Code() != codes.BadRequest || !strings.Contains(body(t, resp), "cannot be posted to the point path") {
		t.Fatalf("response %v %q", resp.Code(), body(t, resp))
	}

	resp = post(t, cc, "/gc1", message.AppOctets, "\xa1\x61a\x01")
	if resp.Code() != codes.UnsupportedMediaType {
		t.Fatalf("response %v %q", resp.Code(), body(t, resp))
	}

	// go-coap's client sends this block-wise (Block1 with Size1): refused at
	// the first block.
	resp = post(t, cc, "/gc1", message.TextPlain, strings.Repeat("y", 3000))
	if resp.Code() != codes.RequestEntityTooLarge {
		t.Fatalf("response %v %q", resp.Code(), body(t, resp))
	}
	if size1, err := resp.GetOptionUint32(message.Size1); err != nil || size1 != 1024 {
		t.Errorf("Size1 = %v, %v; want 1024", size1, err)
	}

	resp = post(t, cc, "/gc2/temp", message.TextPlain, "-1.5")
	if resp.Code() != codes.Changed {
		t.Fatalf("response %v %q", resp.Code(), body(t, resp))
	}
	if f := h.framesOf(t, "gc2", 1)[0]; fmt.Sprint(f.Points) != fmt.Sprint([]bridge.Point{pt("temp", bridge.Number(-1.5))}) {
		t.Errorf("points %+v", f.Points)
	}
	if n := h.countOf("gc1"); n != 1 {
		t.Errorf("gc1: %d frames, want 1", n)
	}
}

func TestOversizedDatagram(t *testing.T) {
	h := startHarness(t, harnessOpts{cfg: config.CoAP{MaxPayload: 100}})
	p := newRawPeer(t, h.addr)
	p.send(rawRequest{typ: message.Confirmable, mid: 7, token: []byte{1}, path: "/big", cf: 0, payload: []byte(strings.Repeat("z", 101))})
	m := p.mustRecv(2 * time.Second)
	if m.Code() != codes.RequestEntityTooLarge || m.Type() != message.Acknowledgement || m.MessageID() != 7 {
		t.Fatalf("response %v", m)
	}
	if size1, err := m.GetOptionUint32(message.Size1); err != nil || size1 != 100 {
		t.Errorf("Size1 = %v, %v", size1, err)
	}
	p.send(rawRequest{typ: message.NonConfirmable, mid: 8, token: []byte{2}, path: "/big", cf: 0, payload: []byte(strings.Repeat("z", 100))})
	if m := p.mustRecv(2 * time.Second); m.Code() != codes.Changed || m.Type() != message.NonConfirmable {
		t.Fatalf("response %v", m)
	}
}

func TestDuplicateConfirmable(t *testing.T) {
	h := startHarness(t, harnessOpts{ack: func(bridge.Frame) (time.Duration, error) { return 300 * time.Millisecond, nil }})
	p := newRawPeer(t, h.addr)
	req := rawRequest{typ: message.Confirmable, mid: 0x1234, token: []byte{9, 9}, path: "/dup", cf: 0, payload: []byte("1")}
	p.send(req)
	time.Sleep(50 * time.Millisecond)
	p.send(req) // retransmission while the original waits for its acknowledgement
	for i := range 2 {
		m := p.mustRecv(3 * time.Second)
		if m.Code() != codes.Changed || m.Type() != message.Acknowledgement || m.MessageID() != 0x1234 {
			t.Fatalf("response %d: %v", i, m)
		}
	}
	p.send(req) // and after it was answered: from go-coap's response cache
	if m := p.mustRecv(3 * time.Second); m.Code() != codes.Changed || m.MessageID() != 0x1234 {
		t.Fatalf("late duplicate: %v", m)
	}
	time.Sleep(400 * time.Millisecond)
	if n := h.countOf("dup"); n != 1 {
		t.Fatalf("%d frames for one confirmable request, want 1", n)
	}
	// A new message ID is a new reading.
	req.mid++
	p.send(req)
	if m := p.mustRecv(3 * time.Second); m.Code() != codes.Changed {
		t.Fatalf("response %v", m)
	}
	h.framesOf(t, "dup", 2)
}

func TestOverload(t *testing.T) {
	const ackDelay = 800 * time.Millisecond
	h := startHarness(t, harnessOpts{
		deps: Deps{MaxInFlight: 2},
		ack:  func(bridge.Frame) (time.Duration, error) { return ackDelay, nil },
	})
	p := newRawPeer(t, h.addr)
	start := time.Now()
	for i := range 4 {
		p.send(rawRequest{typ: message.Confirmable, mid: int32(100 + i), token: []byte{byte(i)}, path: "/ovl", cf: 0, payload: []byte(strconv.Itoa(i))})
	}
	got := map[codes.Code][]time.Duration{}
	for range 4 {
		m := p.mustRecv(3 * time.Second)
		got[m.Code()] = append(got[m.Code()], time.Since(start))
	}
	if len(got[codes.ServiceUnavailable]) != 2 || len(got[codes.Changed]) != 2 {
		t.Fatalf("responses %v", got)
	}
	for _, d := range got[codes.ServiceUnavailable] {
		if d > ackDelay/2 {
			t.Errorf("5.03 after %v: not at once", d)
		}
	}
	for _, d := range got[codes.Changed] {
		if d < ackDelay {
			t.Errorf("2.04 after %v, before the acknowledgement", d)
		}
	}
	if st := h.a.Stats(); st.Overloaded != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestSlowPeerDoesNotBlockOthers(t *testing.T) {
	// Peer A floods NON requests whose acknowledgements stall; go-coap
	// queues 16 requests per peer and then blocks its read loop, so a
	// handler waiting in line would stall peer B. It must not.
	h := startHarness(t, harnessOpts{
		deps: Deps{AckTimeout: time.Second},
		ack: func(f bridge.Frame) (time.Duration, error) {
			if f.Device == "slow" {
				return 2 * time.Second, nil
			}
			return 0, nil
		},
	})
	a := newRawPeer(t, h.addr)
	for i := range 40 {
		a.send(rawRequest{typ: message.NonConfirmable, mid: int32(i), token: []byte{byte(i)}, path: "/slow", cf: 0, payload: []byte("1")})
	}
	deadline := time.Now().Add(2 * time.Second)
	for h.countOf("slow") < 40 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.countOf("slow"); n != 40 {
		t.Fatalf("%d of 40 slow frames on the bus", n)
	}
	if in := h.a.Stats().InFlight; in < 30 {
		t.Errorf("%d requests in flight, want the slow ones waiting concurrently", in)
	}
	b := newRawPeer(t, h.addr)
	start := time.Now()
	b.send(rawRequest{typ: message.Confirmable, mid: 1, token: []byte{1}, path: "/fast", cf: 0, payload: []byte("2")})
	m := b.mustRecv(3 * time.Second)
	if m.Code() != codes.Changed {
		t.Fatalf("response %v", m)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("peer B waited %v behind peer A", d)
	}
	// Peer A's requests time out (5.03) after AckTimeout.
	for range 40 {
		m := a.mustRecv(3 * time.Second)
		if m.Code() != codes.ServiceUnavailable {
			t.Fatalf("slow response %v", m)
		}
	}
}

func TestPeerOrder(t *testing.T) {
	// Acknowledgements come back in random order; frames must enter the bus
	// in the order the peer sent its requests.
	h := startHarness(t, harnessOpts{ack: func(bridge.Frame) (time.Duration, error) {
		return time.Duration(1+rand.IntN(20)) * time.Millisecond, nil
	}})
	p := newRawPeer(t, h.addr)
	const n = 50
	for i := range n {
		p.send(rawRequest{typ: message.NonConfirmable, mid: int32(1000 + i), token: []byte{byte(i)}, path: "/ordered", cf: 0, payload: []byte(strconv.Itoa(i))})
	}
	for range n {
		if m := p.mustRecv(3 * time.Second); m.Code() != codes.Changed {
			t.Fatalf("response %v", m)
		}
	}
	for i, f := range h.framesOf(t, "ordered", n) {
		if f.Points[0].Value.Int != int64(i) {
			t.Fatalf("frame %d holds %d: reordered", i, f.Points[0].Value.Int)
		}
	}
}

func TestConcurrentClients(t *testing.T) {
	h := startHarness(t, harnessOpts{ack: func(bridge.Frame) (time.Duration, error) { return 20 * time.Millisecond, nil }})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := runCoAPClient("-m", "post", "-t", "50", "-e", fmt.Sprintf(`{"n":%d}`, i), h.url+"/conc"+strconv.Itoa(i))
			if err == nil && res.Code != "2.04" {
				err = fmt.Errorf("client %d: %s %s", i, res.Code, res.Payload)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range 8 {
		h.framesOf(t, "conc"+strconv.Itoa(i), 1)
	}
}

func TestRunBindError(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	a, err := New(config.CoAP{Listen: busy.LocalAddr().String()}, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	readyCalled := false
	err = a.Run(context.Background(), bridge.NewBus(1), func() { readyCalled = true })
	if err == nil || readyCalled || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run = %v, ready called: %v", err, readyCalled)
	}
}

func TestRunStopsWithRequestsInFlight(t *testing.T) {
	a, err := New(config.CoAP{Listen: "127.0.0.1:0"}, Deps{Log: testLogger(t), AckTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bus := bridge.NewBus(4) // never drained
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, bus, func() { close(ready) }) }()
	<-ready
	p := newRawPeer(t, a.Addr().String())
	p.send(rawRequest{typ: message.Confirmable, mid: 1, token: []byte{1}, path: "/x", cf: 0, payload: []byte("1")})
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return")
	}
	// The request in flight was answered before the server stopped.
	if m, err := p.recv(time.Second); err != nil || m.Code() != codes.ServiceUnavailable {
		t.Fatalf("response %v, %v", m, err)
	}
	// Run may be called again (the supervisor restarts adapters).
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { done <- a.Run(ctx2, bus, nil) }()
	time.Sleep(50 * time.Millisecond)
	cancel2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNew(t *testing.T) {
	a, err := New(config.CoAP{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "coap" || a.Kind() != "coap" || a.cfg.Listen != DefaultListen || a.maxPayload != DefaultMaxPayload ||
		a.ackTimeout != DefaultAckTimeout || a.maxInFlight != DefaultMaxInFlight || a.Addr() != nil {
		t.Errorf("defaults: %+v", a)
	}
	bad := []struct {
		cfg  config.CoAP
		deps Deps
		msg  string
	}{
		{config.CoAP{Listen: "nohostport"}, Deps{}, "listen"},
		{config.CoAP{Listen: "127.0.0.1:http2"}, Deps{}, "port"},
		{config.CoAP{Listen: "bad host!:5683"}, Deps{}, "not an IP address"},
		{config.CoAP{MaxPayload: -1}, Deps{}, "max_payload"},
		{config.CoAP{MaxPayload: 1 << 30}, Deps{}, "max_payload"},
		{config.CoAP{DTLSListen: "0.0.0.0:5684"}, Deps{}, "needs at least one [[coap.psk]]"},
		{config.CoAP{PSK: []config.CoAPPSK{{Identity: "x"}}}, Deps{}, "not hex"},
		{config.CoAP{Name: "a/b"}, Deps{}, `"/" is not allowed`},
		{config.CoAP{}, Deps{AckTimeout: -1}, "ack timeout"},
		{config.CoAP{}, Deps{MaxInFlight: -1}, "in-flight"},
	}
	for _, b := range bad {
		if _, err := New(b.cfg, b.deps); err == nil || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("New(%+v) = %v, want an error about %q", b.cfg, err, b.msg)
		}
	}
	if err := (&Adapter{}).Run(context.Background(), nil, nil); err == nil {
		t.Error("Run with a nil bus succeeded")
	}
}

func TestOrderChain(t *testing.T) {
	c := orderChain{tails: map[*udpClient.Conn]*ticket{}, pending: map[exchange]int{}}
	peer := &udpClient.Conn{}
	t1 := c.next(peer, 1)
	t2 := c.next(peer, 2)
	dup := c.next(peer, 1) // retransmission of 1 while 1 is pending
	t3 := c.next(peer, 3)
	if t1.prev != nil || t2.prev != t1.done || dup.prev != nil || t3.prev != t2.done {
		t.Fatal("wrong chain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := t2.wait(ctx); err == nil {
		t.Fatal("t2 went before t1 passed")
	}
	t1.pass()
	t1.pass() // idempotent
	if err := t2.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	dup.pass()
	t2.pass()
	t3.pass()
	if len(c.tails) != 0 || len(c.pending) != 0 {
		t.Fatalf("state left: %v %v", c.tails, c.pending)
	}
	var none *ticket
	none.pass()
	if err := none.wait(ctx); err != nil {
		t.Fatal(err)
	}
}
