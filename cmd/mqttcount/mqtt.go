package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A minimal MQTT 5 subscriber: enough protocol to connect, subscribe and
// receive at QoS 0, 1 or 2 with as little work per message as possible.
// Reads are buffered and acknowledgements are batched: they are flushed
// whenever the read buffer runs empty, so a burst of PUBLISH packets costs
// one read and one write system call, not one each per message.

// MQTT control packet types (the high nibble of the first byte).
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktPubrec     = 5
	pktPubrel     = 6
	pktPubcomp    = 7
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingreq    = 12
	pktPingresp   = 13
	pktDisconnect = 14
)

// maxPacket bounds the buffer a broker can make us allocate.
const maxPacket = 16 << 20

type connectOptions struct {
	clientID  string
	username  string
	password  string
	keepAlive time.Duration
}

// mqttConn is one connection to a broker. Reading (and the acknowledgements
// it triggers) belongs to the goroutine that runs readLoop; the pinger and
// close may write concurrently, serialised by wmu.
type mqttConn struct {
	nc        net.Conn
	r         *bufio.Reader
	wmu       sync.Mutex
	w         *bufio.Writer
	buf       []byte // packet body, reused
	keepAlive time.Duration
	qos2      [65536]bool // QoS 2 packet ids received, awaiting PUBREL
}

func dialMQTT(ctx context.Context, addr string, opt connectOptions) (*mqttConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &mqttConn{
		nc:        nc,
		r:         bufio.NewReaderSize(nc, 256<<10),
		w:         bufio.NewWriterSize(nc, 64<<10),
		buf:       make([]byte, 0, 4096),
		keepAlive: opt.keepAlive,
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if err := c.connect(opt); err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// packet frames body as one control packet with the given first byte.
func packet(first byte, body []byte) []byte {
	b := appendVarint([]byte{first}, len(body))
	return append(b, body...)
}

func (c *mqttConn) connect(opt connectOptions) error {
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 5) // protocol version
	flags := byte(0x02)    // clean start
	if opt.username != "" {
		flags |= 0x80
	}
	if opt.password != "" {
		flags |= 0x40
	}
	body = append(body, flags)
	ka := uint16(opt.keepAlive / time.Second)
	body = binary.BigEndian.AppendUint16(body, ka)
	// Properties: Receive Maximum 65535 (the most QoS>0 publishes in flight).
	body = append(body, 3, 0x21, 0xff, 0xff)
	body = appendString(body, opt.clientID)
	if opt.username != "" {
		body = appendString(body, opt.username)
	}
	if opt.password != "" {
		body = appendString(body, opt.password)
	}
	if _, err := c.nc.Write(packet(pktConnect<<4, body)); err != nil {
		return err
	}
	typ, p, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if typ>>4 != pktConnack || len(p) < 2 {
		return fmt.Errorf("expected CONNACK, got packet type %d", typ>>4)
	}
	if p[1] != 0 {
		return fmt.Errorf("connection refused: reason code 0x%02x%s", p[1], reasonString(p[2:]))
	}
	props, _, ok := readProps(p[2:])
	if !ok {
		return errors.New("malformed CONNACK properties")
	}
	if err := walkProps(props, func(id byte, v []byte) {
		if id == 0x13 && len(v) == 2 { // Server Keep Alive overrides ours
			c.keepAlive = time.Duration(binary.BigEndian.Uint16(v)) * time.Second
		}
	}); err != nil {
		return fmt.Errorf("CONNACK: %w", err)
	}
	return nil
}

// subscribe subscribes to the filters at qos and returns the granted QoS
// of each.
func (c *mqttConn) subscribe(filters []string, qos byte) ([]byte, error) {
	body := []byte{0, 1, 0} // packet id 1, no properties
	for _, f := range filters {
		body = appendString(body, f)
		body = append(body, qos)
	}
	c.wmu.Lock()
	_, err := c.w.Write(packet(pktSubscribe<<4|0x02, body))
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	typ, p, err := c.readPacket()
	if err != nil {
		return nil, fmt.Errorf("waiting for SUBACK: %w", err)
	}
	if typ>>4 != pktSuback || len(p) < 3 {
		return nil, fmt.Errorf("expected SUBACK, got packet type %d", typ>>4)
	}
	_, rest, ok := readProps(p[2:])
	if !ok || len(rest) != len(filters) {
		return nil, errors.New("malformed SUBACK")
	}
	for i, rc := range rest {
		if rc >= 0x80 {
			return nil, fmt.Errorf("subscription to %q refused: reason code 0x%02x", filters[i], rc)
		}
	}
	return append([]byte(nil), rest...), nil
}

// readPacket reads one control packet; the body is valid until the next call.
func (c *mqttConn) readPacket() (first byte, body []byte, err error) {
	first, err = c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
		mul *= 128
	}
	if n > maxPacket {
		return 0, nil, fmt.Errorf("packet of %d bytes is larger than %d", n, maxPacket)
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return 0, nil, err
	}
	return first, c.buf, nil
}

// readProps splits MQTT 5 properties (length-prefixed) from what follows.
func readProps(p []byte) (props, rest []byte, ok bool) {
	n, used := 0, 0
	for mul := 1; ; mul *= 128 {
		if used >= len(p) || used == 4 {
			return nil, nil, false
		}
		b := p[used]
		used++
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
	}
	if used+n > len(p) {
		return nil, nil, false
	}
	return p[used : used+n], p[used+n:], true
}

// walkProps calls fn with each property's id and raw value.
func walkProps(p []byte, fn func(id byte, v []byte)) error {
	for len(p) > 0 {
		id := p[0]
		p = p[1:]
		var n int
		switch id {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a: // byte
			n = 1
		case 0x13, 0x21, 0x22, 0x23: // two-byte integer
			n = 2
		case 0x02, 0x11, 0x18, 0x27: // four-byte integer
			n = 4
		case 0x0b: // variable byte integer
			for n < len(p) && p[n]&0x80 != 0 {
				n++
			}
			n++
		case 0x03, 0x08, 0x12, 0x15, 0x1a, 0x1c, 0x1f, 0x09, 0x16: // string, binary
			if len(p) < 2 {
				return errors.New("malformed property")
			}
			n = 2 + int(binary.BigEndian.Uint16(p))
		case 0x26: // user property: string pair
			if len(p) < 2 {
				return errors.New("malformed property")
			}
			k := 2 + int(binary.BigEndian.Uint16(p))
			if len(p) < k+2 {
				return errors.New("malformed property")
			}
			n = k + 2 + int(binary.BigEndian.Uint16(p[k:]))
		default:
			return fmt.Errorf("unknown property 0x%02x", id)
		}
		if n > len(p) {
			return errors.New("malformed property")
		}
		fn(id, p[:n])
		p = p[n:]
	}
	return nil
}

// reasonString extracts the Reason String property from CONNACK or
// DISCONNECT properties, for error messages.
func reasonString(p []byte) string {
	props, _, ok := readProps(p)
	if !ok {
		return ""
	}
	var s string
	_ = walkProps(props, func(id byte, v []byte) {
		if id == 0x1f && len(v) >= 2 {
			s = ": " + string(v[2:])
		}
	})
	return s
}

// readLoop reads packets until an error and calls onPublish for every
// application message, with its topic and payload (valid only during the
// call) and the time it was read. onPublish returns false to stop.
func (c *mqttConn) readLoop(onPublish func(topic, payload []byte, now time.Time) bool) error {
	for {
		if c.r.Buffered() == 0 {
			// About to block on the socket: send the acknowledgements
			// collected so far.
			c.wmu.Lock()
			err := c.w.Flush()
			c.wmu.Unlock()
			if err != nil {
				return err
			}
		}
		first, p, err := c.readPacket()
		if err != nil {
			return err
		}
		switch first >> 4 {
		case pktPublish:
			qos := (first >> 1) & 3
			if len(p) < 2 {
				return errors.New("malformed PUBLISH")
			}
			tl := int(binary.BigEndian.Uint16(p))
			i := 2 + tl
			var id uint16
			if qos > 0 {
				if i+2 > len(p) {
					return errors.New("malformed PUBLISH")
				}
				id = binary.BigEndian.Uint16(p[i:])
				i += 2
			}
			if i > len(p) {
				return errors.New("malformed PUBLISH")
			}
			_, payload, ok := readProps(p[i:])
			if !ok {
				return errors.New("malformed PUBLISH properties")
			}
			topic := p[2 : 2+tl]
			deliver := true
			switch qos {
			case 1:
				c.ack(pktPuback<<4, id)
			case 2:
				// A resent QoS 2 PUBLISH before PUBREL is the same message.
				deliver = !c.qos2[id]
				c.qos2[id] = true
				c.ack(pktPubrec<<4, id)
			}
			if deliver && !onPublish(topic, payload, time.Now()) {
				c.wmu.Lock()
				err := c.w.Flush()
				c.wmu.Unlock()
				return err
			}
		case pktPubrel:
			if len(p) < 2 {
				return errors.New("malformed PUBREL")
			}
			id := binary.BigEndian.Uint16(p)
			c.qos2[id] = false
			c.ack(pktPubcomp<<4, id)
		case pktPingresp:
		case pktDisconnect:
			rc := byte(0)
			if len(p) > 0 {
				rc = p[0]
			}
			rs := ""
			if len(p) > 1 {
				rs = reasonString(p[1:])
			}
			return fmt.Errorf("broker disconnected: reason code 0x%02x%s", rc, rs)
		default:
			return fmt.Errorf("unexpected packet type %d", first>>4)
		}
	}
}

// ack queues a PUBACK, PUBREC or PUBCOMP (success, no properties).
func (c *mqttConn) ack(first byte, id uint16) {
	c.wmu.Lock()
	// Byte by byte: a slice literal would escape through bufio to the heap.
	_ = c.w.WriteByte(first)
	_ = c.w.WriteByte(2)
	_ = c.w.WriteByte(byte(id >> 8))
	_ = c.w.WriteByte(byte(id))
	c.wmu.Unlock()
}

// pinger sends PINGREQ at three quarters of the keep-alive until done.
func (c *mqttConn) pinger(done <-chan struct{}) {
	if c.keepAlive <= 0 {
		return
	}
	t := time.NewTicker(c.keepAlive * 3 / 4)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			c.wmu.Lock()
			_, err := c.w.Write([]byte{pktPingreq << 4, 0})
			if err == nil {
				err = c.w.Flush()
			}
			c.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// disconnect sends a normal DISCONNECT (best effort) and closes.
func (c *mqttConn) disconnect() {
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.w.Write([]byte{pktDisconnect << 4, 0})
	_ = c.w.Flush()
	c.wmu.Unlock()
	_ = c.nc.Close()
}
