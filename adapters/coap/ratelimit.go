package coap

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// The per-source rate limit (RFC 8516, 4.29 Too Many Requests).
//
// Every request datagram (each block of a block-wise upload counts), on UDP
// and on DTLS, takes a token from the bucket of its source before anything
// else is done with it: over the limit, it is answered 4.29 with a Max-Age
// option of the seconds to wait, counted, and logged (rate-limited, naming
// the peer). A new DTLS session takes a token too.
//
// A source is the peer's IP address and port, the CoAP endpoint: what the
// server keeps state for (go-coap's per-peer connection, a DTLS session).
// Over UDP a hostile device can forge any source address, so no key stops a
// determined one; the limit keeps a broken device (a firmware loop, a retry
// storm) from starving the others, which is its purpose.
//
// The bucket is a GCRA (the virtual-scheduling form of a token bucket): per
// source one int64, the theoretical arrival time of the next request. The
// table is bounded: sources whose bucket is full again are forgotten (they
// would start full anyway), and beyond MaxSources the least recently seen
// source is dropped. A request from a known source does not allocate.

// RateLimit configures the per-source rate limit. The zero value takes the
// defaults.
type RateLimit struct {
	// PerSecond is the sustained number of requests per second one source
	// may send. 0: DefaultRatePerSecond. Negative: no limit.
	PerSecond float64
	// Burst is how many requests a source may send back to back (its
	// bucket's size), e.g. a device that uploads what it stored while
	// offline. 0: DefaultRateBurst.
	Burst int
	// MaxSources bounds the sources tracked at once. 0:
	// DefaultRateSources.
	MaxSources int
}

// Rate limit defaults.
const (
	DefaultRatePerSecond = 100
	DefaultRateBurst     = 2000
	DefaultRateSources   = 10000

	// rateSweep is how often the table is swept of full buckets.
	rateSweep = 10 * time.Second
)

func (r RateLimit) check() error {
	var errs []error
	if math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
		errs = append(errs, fmt.Errorf("rate limit %v is not a number of requests per second", r.PerSecond))
	} else if r.PerSecond > 0 && r.PerSecond < 1e-3 {
		errs = append(errs, fmt.Errorf("rate limit %v is below one request in 1000 s", r.PerSecond))
	}
	if r.Burst < 0 {
		errs = append(errs, fmt.Errorf("rate limit burst %d is negative", r.Burst))
	}
	if r.MaxSources < 0 {
		errs = append(errs, fmt.Errorf("rate limit max sources %d is negative", r.MaxSources))
	}
	return errors.Join(errs...)
}

// rateLimiter is the table of buckets. A nil *rateLimiter allows everything.
type rateLimiter struct {
	interval  int64 // ns between requests at the sustained rate
	tolerance int64 // (burst-1) intervals: how far ahead a source may run
	max       int
	epoch     time.Time // times are ns since epoch (monotonic)

	mu        sync.Mutex
	sources   map[netip.AddrPort]*rateSource
	newest    *rateSource // most recently seen
	oldest    *rateSource // least recently seen: evicted first
	lastSweep int64
	spare     *rateSource // an evicted entry, reused
}

// rateSource is one source's bucket, in a list by last use.
type rateSource struct {
	key          netip.AddrPort
	tat          int64 // theoretical arrival time of the next request
	newer, older *rateSource
}

// newRateLimiter returns the limiter for r (checked), or nil for no limit.
func newRateLimiter(r RateLimit, now time.Time) *rateLimiter {
	if r.PerSecond < 0 {
		return nil
	}
	if r.PerSecond == 0 {
		r.PerSecond = DefaultRatePerSecond
	}
	if r.Burst == 0 {
		r.Burst = DefaultRateBurst
	}
	if r.MaxSources == 0 {
		r.MaxSources = DefaultRateSources
	}
	interval := max(int64(float64(time.Second)/r.PerSecond), 1)
	return &rateLimiter{
		interval:  interval,
		tolerance: int64(r.Burst-1) * interval,
		max:       r.MaxSources,
		epoch:     now,
		sources:   make(map[netip.AddrPort]*rateSource),
	}
}

// sourceOf is the limiter's key for a peer address.
func sourceOf(addr net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		if addr == nil {
			return ap, false
		}
		p, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return ap, false
		}
		ap = p
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}

// allowAddr is allow for a peer address; an address it cannot key is
// allowed.
func (l *rateLimiter) allowAddr(addr net.Addr, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	key, ok := sourceOf(addr)
	if !ok {
		return true, 0
	}
	return l.allow(key, now)
}

// allow takes a token from key's bucket. When there is none it returns
// false and how long until there is one.
func (l *rateLimiter) allow(key netip.AddrPort, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	t := int64(now.Sub(l.epoch))
	l.mu.Lock()
	defer l.mu.Unlock()
	if t-l.lastSweep >= int64(rateSweep) {
		l.sweep(t)
	}
	s := l.sources[key]
	if s == nil {
		s = l.add(key, t)
	} else {
		l.touch(s)
	}
	tat := max(s.tat, t)
	if ahead := tat - t; ahead > l.tolerance {
		return false, time.Duration(ahead - l.tolerance)
	}
	s.tat = tat + l.interval
	return true, 0
}

// add tracks a new source, whose bucket is full, as the newest.
func (l *rateLimiter) add(key netip.AddrPort, t int64) *rateSource {
	if len(l.sources) >= l.max && t-l.lastSweep >= int64(time.Second) {
		l.sweep(t) // at most once a second: a flood of new sources evicts in O(1)
	}
	for len(l.sources) >= l.max && l.oldest != nil {
		l.remove(l.oldest)
	}
	s := l.spare
	if s != nil {
		l.spare = nil
		*s = rateSource{}
	} else {
		s = new(rateSource)
	}
	s.key, s.tat = key, t
	l.sources[key] = s
	l.pushNewest(s)
	return s
}

// sweep forgets the sources whose bucket is full again: a new entry would
// be the same.
func (l *rateLimiter) sweep(t int64) {
	l.lastSweep = t
	for s := l.oldest; s != nil; {
		newer := s.newer
		if s.tat <= t {
			l.remove(s)
		}
		s = newer
	}
}

func (l *rateLimiter) remove(s *rateSource) {
	delete(l.sources, s.key)
	l.unlink(s)
	l.spare = s
}

func (l *rateLimiter) touch(s *rateSource) {
	if l.newest == s {
		return
	}
	l.unlink(s)
	l.pushNewest(s)
}

func (l *rateLimiter) pushNewest(s *rateSource) {
	s.older, s.newer = l.newest, nil
	if l.newest != nil {
		l.newest.newer = s
	}
	l.newest = s
	if l.oldest == nil {
		l.oldest = s
	}
}

func (l *rateLimiter) unlink(s *rateSource) {
	if s.newer != nil {
		s.newer.older = s.older
	} else {
		l.newest = s.older
	}
	if s.older != nil {
		s.older.newer = s.newer
	} else {
		l.oldest = s.newer
	}
	s.newer, s.older = nil, nil
}

// tracked is the number of sources in the table.
func (l *rateLimiter) tracked() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

// maxAge is the Max-Age of a 4.29: the whole seconds to wait, at least 1.
func maxAge(wait time.Duration) uint32 {
	s := (wait + time.Second - 1) / time.Second
	return uint32(min(max(s, 1), math.MaxUint32))
}

// tooMany answers a request over its source's rate limit, before anything
// else is done with it: 4.29 with a Max-Age of the seconds to wait (RFC
// 8516) and no payload.
func (rs *runState) tooMany(req *pool.Message, cc *udpClient.Conn, wait time.Duration) {
	a := rs.a
	a.stats.requests.Add(1)
	a.stats.rateLimited.Add(1)
	secs := maxAge(wait)
	if ok, suppressed := a.rateLogs.Allow(time.Now()); ok {
		a.log.Warn("coap source over its rate limit: requests answered 4.29", "peer", cc.RemoteAddr().String(),
			"retry_after_s", secs, "suppressed", suppressed)
	}
	reject := rs.reject(codes.TooManyRequests, "")
	cc.ProcessReceivedMessageWithHandler(req, func(w *writer, r *pool.Message) {
		reject(w, r)
		if m := w.Message(); m.Code() == codes.TooManyRequests {
			m.SetOptionUint32(message.MaxAge, secs)
		}
	})
}
