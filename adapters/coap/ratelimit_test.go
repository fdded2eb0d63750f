package coap

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/causeway/causeway/config"
)

var (
	srcA = netip.MustParseAddrPort("192.0.2.1:5683")
	srcB = netip.MustParseAddrPort("192.0.2.2:5683")
	srcC = netip.MustParseAddrPort("192.0.2.3:5683")
	srcD = netip.MustParseAddrPort("[2001:db8::4]:5683")
)

// allowN takes n tokens at now and returns how many were granted.
func allowN(l *rateLimiter, key netip.AddrPort, now time.Time, n int) int {
	granted := 0
	for range n {
		if ok, _ := l.allow(key, now); ok {
			granted++
		}
	}
	return granted
}

func TestRateLimiterBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newRateLimiter(RateLimit{PerSecond: 10, Burst: 5}, t0)

	if got := allowN(l, srcA, t0, 8); got != 5 {
		t.Fatalf("burst: %d granted, want 5", got)
	}
	ok, wait := l.allow(srcA, t0)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("over the burst: %v, wait %v; want refused, 100ms", ok, wait)
	}
	// Another source has its own bucket.
	if got := allowN(l, srcB, t0, 5); got != 5 {
		t.Fatalf("second source: %d granted, want 5", got)
	}
	// One token every 100 ms.
	if got := allowN(l, srcA, t0.Add(99*time.Millisecond), 1); got != 0 {
		t.Fatalf("before the next token: granted")
	}
	if got := allowN(l, srcA, t0.Add(100*time.Millisecond), 3); got != 1 {
		t.Fatalf("after 100ms: %d granted, want 1", got)
	}
	if ok, wait := l.allow(srcA, t0.Add(150*time.Millisecond)); ok || wait != 50*time.Millisecond {
		t.Fatalf("at 150ms: %v, wait %v; want refused, 50ms", ok, wait)
	}
	// A sustained 10/s is always allowed.
	for i := range 50 {
		if ok, _ := l.allow(srcA, t0.Add(time.Duration(i+2)*100*time.Millisecond)); !ok {
			t.Fatalf("sustained rate refused at request %d", i)
		}
	}
	// Idle long enough, the bucket is full again (and no fuller).
	t1 := t0.Add(time.Minute)
	if got := allowN(l, srcA, t1, 8); got != 5 {
		t.Fatalf("after a minute: %d granted, want 5", got)
	}
}

func TestRateLimiterBoundsItsTable(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newRateLimiter(RateLimit{PerSecond: 1, Burst: 2, MaxSources: 3}, t0)
	for _, s := range []netip.AddrPort{srcA, srcB, srcC} {
		allowN(l, s, t0, 2) // empty their buckets
	}
	if ok, _ := l.allow(srcA, t0); ok { // A is now the most recently seen
		t.Fatal("A not limited")
	}
	// A fourth source evicts the least recently seen, B: forgotten, its
	// bucket starts full again; A and C keep theirs.
	if got := allowN(l, srcD, t0, 2); got != 2 || l.tracked() != 3 {
		t.Fatalf("D: %d granted, %d tracked", got, l.tracked())
	}
	if got := allowN(l, srcA, t0, 1) + allowN(l, srcC, t0, 1); got != 0 {
		t.Fatalf("A or C forgot their state")
	}
	if got := allowN(l, srcB, t0, 2); got != 2 {
		t.Fatalf("evicted B: %d granted, want a full bucket", got)
	}
	// Sources whose bucket is full again are swept.
	later := t0.Add(time.Minute)
	allowN(l, srcA, later, 1)
	if n := l.tracked(); n != 1 {
		t.Fatalf("after a minute: %d sources tracked, want 1 (the one just seen)", n)
	}
	// A flood of new sources keeps the table at its bound.
	for i := range 1000 {
		k := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1)
		allowN(l, k, later, 1)
	}
	if n := l.tracked(); n != 3 {
		t.Fatalf("%d sources tracked, want 3", n)
	}
}

func TestRateLimiterKeys(t *testing.T) {
	t0 := time.Now()
	l := newRateLimiter(RateLimit{PerSecond: 1, Burst: 1}, t0)
	v4 := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 7}
	mapped := &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.9"), Port: 7}
	otherPort := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 8}
	if ok, _ := l.allowAddr(v4, t0); !ok {
		t.Fatal("first request refused")
	}
	if ok, _ := l.allowAddr(mapped, t0); ok {
		t.Error("an IPv4-mapped IPv6 address is another source")
	}
	if ok, _ := l.allowAddr(otherPort, t0); !ok {
		t.Error("another port of the same host shares the bucket")
	}
	// No limiter, or no usable address: allowed.
	var none *rateLimiter
	if ok, _ := none.allowAddr(v4, t0); !ok {
		t.Error("nil limiter refused")
	}
	if newRateLimiter(RateLimit{PerSecond: -1}, t0) != nil {
		t.Error("PerSecond < 0 should disable the limit")
	}
	if ok, _ := l.allowAddr(nil, t0); !ok {
		t.Error("nil address refused")
	}
}

func TestRateLimiterNoAllocations(t *testing.T) {
	now := time.Now()
	l := newRateLimiter(RateLimit{}, now)
	addr := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5683}
	l.allowAddr(addr, now)
	if n := testing.AllocsPerRun(1000, func() { l.allowAddr(addr, now) }); n != 0 {
		t.Errorf("%v allocations per request of a known source", n)
	}
}

func TestRateLimitCheckAndMaxAge(t *testing.T) {
	for _, r := range []RateLimit{{PerSecond: math.NaN()}, {PerSecond: math.Inf(1)}, {Burst: -1}, {MaxSources: -1}, {PerSecond: 1e-6}} {
		if r.check() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if err := (RateLimit{PerSecond: -1}).check(); err != nil {
		t.Errorf("no limit refused: %v", err)
	}
	for wait, want := range map[time.Duration]uint32{0: 1, time.Nanosecond: 1, time.Second: 1, 1200 * time.Millisecond: 2, time.Hour: 3600} {
		if got := maxAge(wait); got != want {
			t.Errorf("maxAge(%v) = %d, want %d", wait, got, want)
		}
	}
	if _, err := New(config.CoAP{}, Deps{RateLimit: RateLimit{Burst: -1}}); err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("New with a negative burst: %v", err)
	}
}

// TestRateLimitFlood: one source floods the UDP server with confirmable
// POSTs while another posts at a modest rate and libcoap's client posts
// too. The flooder gets 4.29 with Max-Age beyond its burst; every reading
// of the others gets 2.04 and reaches the bus.
func TestRateLimitFlood(t *testing.T) {
	const rate, burst = 50, 50
	log, logs := captureDTLSLog(t)
	h := startHarness(t, harnessOpts{deps: Deps{Log: log, RateLimit: RateLimit{PerSecond: rate, Burst: burst}}})

	flood := newRawPeer(t, h.addr)
	var (
		mu       sync.Mutex
		codesGot = map[string]int{}
		badAge   int
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			m, err := flood.recv(500 * time.Millisecond)
			if err != nil {
				return
			}
			mu.Lock()
			codesGot[codeString(m.Code())]++
			if m.Code() == codes.TooManyRequests {
				if age, err := m.GetOptionUint32(message.MaxAge); err != nil || age < 1 || age > 1 {
					badAge++
				}
			}
			mu.Unlock()
		}
	}()
	// A broken device in a loop: about 2000 requests/s.
	var sent atomic.Int64
	stop := make(chan struct{})
	floodDone := make(chan struct{})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-floodDone
	}()
	start := time.Now()
	go func() {
		defer close(floodDone)
		for mid := 1; ; mid++ {
			select {
			case <-stop:
				return
			default:
			}
			m := pool.NewMessage(context.Background())
			m.SetCode(codes.POST)
			m.SetType(message.Confirmable)
			m.SetMessageID(int32(mid & 0xffff))
			m.SetToken([]byte{byte(mid >> 8), byte(mid)})
			_ = m.SetPath("/flood")
			m.SetContentFormat(message.TextPlain)
			m.SetBody(bytes.NewReader([]byte("1")))
			data, err := m.MarshalWithEncoder(coder.DefaultCoder)
			if err != nil {
				return
			}
			if _, err := flood.conn.Write(data); err != nil {
				return
			}
			if sent.Add(1)%2 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()

	// A well-behaved device: 20 readings at 20/s, from one socket.
	cc := dialCoAP(t, h.addr)
	for i := range 20 {
		resp := post(t, cc, "/good", message.AppJSON, fmt.Sprintf(`{"seq":%d}`, i))
		if resp.Code() != codes.Changed {
			t.Errorf("good reading %d: %v %q", i, resp.Code(), body(t, resp))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And libcoap's client.
	for i := range 3 {
		expectCode(t, coapClient(t, "-m", "post", "-t", "0", "-e", fmt.Sprint(i), h.url+"/libcoap"), "2.04", "")
	}
	close(stop)
	<-floodDone
	elapsed := time.Since(start)
	<-readDone

	h.framesOf(t, "good", 20)
	h.framesOf(t, "libcoap", 3)
	mu.Lock()
	defer mu.Unlock()
	st := h.a.Stats()
	t.Logf("flood: %d sent in %v, responses %v; stats %+v", sent.Load(), elapsed, codesGot, st)
	allowed := burst + int(rate*elapsed.Seconds()) + rate/5
	if codesGot["2.04"] > allowed || h.countOf("flood") > allowed {
		t.Errorf("the flooder got %d 2.04 (%d frames), want at most %d", codesGot["2.04"], h.countOf("flood"), allowed)
	}
	if codesGot["4.29"] < int(sent.Load())/4 || badAge != 0 {
		t.Errorf("the flooder got %d 4.29 of %d sent (%d without Max-Age 1)", codesGot["4.29"], sent.Load(), badAge)
	}
	if st.RateLimited < uint64(codesGot["4.29"]) || st.Responses["4.29"] != st.RateLimited {
		t.Errorf("stats %+v: 4.29s not counted (%d received)", st, codesGot["4.29"])
	}
	floodPeer := flood.conn.LocalAddr().String()
	if !strings.Contains(logs.String(), "over its rate limit") || !strings.Contains(logs.String(), "peer="+floodPeer) {
		t.Errorf("no warning naming the flooder %s:\n%s", floodPeer, logs.String())
	}
	if strings.Contains(logs.String(), "peer="+cc.LocalAddr().String()) {
		t.Errorf("the well-behaved device was logged:\n%s", logs.String())
	}
}

// TestRateLimitDTLS: the DTLS server has the same dispatch, so the same
// limit; a new session takes a token too.
func TestRateLimitDTLS(t *testing.T) {
	h := startDTLSHarness(t, harnessOpts{deps: Deps{RateLimit: RateLimit{PerSecond: 1, Burst: 3}}})
	s, code := pionDTLSPost(t, h, dtlsFreePort(t), dtlsTestIdentity, dtlsTestKey, "/d", `{"n":0}`) // tokens 1 and 2
	defer s.abandon(t)
	if code != codes.Changed {
		t.Fatalf("first: %v", code)
	}
	if resp := post(t, s.cc, "/d", message.AppJSON, `{"n":1}`); resp.Code() != codes.Changed {
		t.Fatalf("second: %v", resp.Code())
	}
	resp := post(t, s.cc, "/d", message.AppJSON, `{"n":2}`)
	if age, err := resp.GetOptionUint32(message.MaxAge); resp.Code() != codes.TooManyRequests || err != nil || age != 1 {
		t.Fatalf("third: %v, Max-Age %v %v; want 4.29, 1", resp.Code(), age, err)
	}
	if n := h.countOf("d"); n != 2 {
		t.Errorf("%d frames, want 2", n)
	}
}
