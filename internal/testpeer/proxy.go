package testpeer

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections from a fixed local port to a target.
// Tests use it to decide when a client can reach a broker (Start/Stop)
// without stopping the broker, and to cut connections abruptly (Cut).
//
// The proxy listens from NewProxy on: while down it accepts connections
// and resets them at once, so a client finds no broker there, and no other
// test running in parallel can take the port (a port that is merely free
// can be).
type Proxy struct {
	t      testing.TB
	Port   int
	target string
	ln     net.Listener

	mu     sync.Mutex
	up     bool // forwarding (Start) or refusing (down)
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewProxy returns a proxy to target ("host:port") on a free port, down
// until Start. It is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{t: t, Port: ln.Addr().(*net.TCPAddr).Port, target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's mqtt:// URL.
func (p *Proxy) URL() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", p.Port) }

// Start forwards new connections to the target.
func (p *Proxy) Start() {
	p.mu.Lock()
	p.up = true
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.up
		p.mu.Unlock()
		if !up {
			reset(c)
			continue
		}
		target, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			reset(c)
			continue
		}
		p.mu.Lock()
		if !p.up || p.closed { // stopped meanwhile
			p.mu.Unlock()
			reset(c)
			_ = target.Close()
			continue
		}
		p.conns[c], p.conns[target] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, target)
		go p.pipe(target, c)
	}
}

// reset closes c abruptly (RST).
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every forwarded connection abruptly (RST, no DISCONNECT) and
// keeps forwarding new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		reset(c)
	}
}

// Stop takes the proxy down: every connection is cut and new ones are
// refused (reset) until Start.
func (p *Proxy) Stop() {
	p.mu.Lock()
	p.up = false
	p.mu.Unlock()
	p.Cut()
}

// close releases the port and waits for the proxy's goroutines.
func (p *Proxy) close() {
	p.mu.Lock()
	p.closed, p.up = true, false
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
