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
type Proxy struct {
	t      testing.TB
	Port   int
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewProxy returns a proxy to target ("host:port") on a free port. It does
// not listen until Start: a client given its URL finds nothing there. It is
// stopped when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	p := &Proxy{t: t, Port: FreeTCPPort(t), target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(p.Stop)
	return p
}

// URL is the proxy's mqtt:// URL.
func (p *Proxy) URL() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", p.Port) }

// Start listens and forwards (a no-op when already listening).
func (p *Proxy) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	var ln net.Listener
	var err error
	for range 100 { // the port was ours; retry briefly if the kernel hesitates
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // stopped meanwhile
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			return
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
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
// keeps listening.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// Stop closes the listener and every connection, and waits for its
// goroutines.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}
