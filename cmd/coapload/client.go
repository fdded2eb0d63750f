package main

import (
	"errors"
	"sync"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

var errClientClosed = errors.New("client closed")

// client is one load generator client: one UDP socket at a time, shared by
// the client's workers. Its socket is connected to the target, so when the
// target is gone (the gateway restarting) an ICMP port unreachable makes the
// socket's next read fail with ECONNREFUSED, and go-coap then closes the
// connection for good: every later request on it fails at once. conn
// replaces such a connection with a freshly dialed one (a new socket, so a
// new source port), so that the client carries on once the target is back.
type client struct {
	dial func() (*udpclient.Conn, error)

	mu      sync.Mutex
	cc      *udpclient.Conn
	redials uint64
	closed  bool
}

func newClient(dial func() (*udpclient.Conn, error)) (*client, error) {
	cc, err := dial()
	if err != nil {
		return nil, err
	}
	return &client{dial: dial, cc: cc}, nil
}

// conn returns the client's connection, dialing a new one when the current
// one has been closed.
func (c *client) conn() (*udpclient.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClientClosed
	}
	if c.cc != nil && c.cc.Context().Err() == nil {
		return c.cc, nil
	}
	if c.cc != nil {
		_ = c.cc.Close()
		c.cc = nil
	}
	cc, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.cc = cc
	c.redials++
	return cc, nil
}

// reconnects is the number of connections dialed after the first.
func (c *client) reconnects() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redials
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cc != nil {
		_ = c.cc.Close()
		c.cc = nil
	}
}
