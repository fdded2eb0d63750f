package coap

import (
	"fmt"
	"sync/atomic"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Stats is a snapshot of an adapter's counters, kept across restarts of
// Run.
type Stats struct {
	// Requests counts complete requests handled (a block-wise transfer
	// counts once), including those refused before decoding.
	Requests uint64
	// Frames counts frames accepted downstream (acknowledged by the bus
	// consumer).
	Frames uint64
	// BadPayloads counts requests answered 4.00: malformed payloads and bad
	// or reserved names.
	BadPayloads uint64
	// Overloaded counts requests refused with 5.03 because MaxInFlight
	// requests were already being handled (or Run was stopping).
	Overloaded uint64
	// Backpressure counts requests answered 5.03 because the bus refused
	// the frame or its acknowledgement timed out.
	Backpressure uint64
	// LibErrors counts errors reported by the CoAP library (malformed
	// datagrams, failed writes, ...).
	LibErrors uint64
	// RateLimited counts requests answered 4.29 because their source was
	// over its rate limit (they are also in Requests).
	RateLimited uint64
	// HandshakeFailures counts DTLS handshakes that failed: unknown PSK
	// identity, wrong key, timeout, no common cipher suite.
	HandshakeFailures uint64
	// DTLSSessions is the number of DTLS sessions established now.
	DTLSSessions int64
	// InFlight is the number of messages (requests, mostly) being handled
	// now.
	InFlight int64
	// Responses counts the responses this adapter chose, by code ("2.04",
	// "4.00", ...). Block-wise continuations (2.31) and the library's own
	// protocol-level answers are not counted.
	Responses map[string]uint64
}

type stats struct {
	requests, frames, badPayloads, overloaded, backpressure, libErrors atomic.Uint64
	rateLimited, handshakeFailures                                     atomic.Uint64
	inFlight, dtlsSessions                                             atomic.Int64
	responses                                                          [256]atomic.Uint64 // by code
}

func (s *stats) response(c codes.Code) { s.responses[uint8(c)].Add(1) }

// Stats returns a snapshot of the adapter's counters.
func (a *Adapter) Stats() Stats {
	s := &a.stats
	out := Stats{
		Requests:     s.requests.Load(),
		Frames:       s.frames.Load(),
		BadPayloads:  s.badPayloads.Load(),
		Overloaded:   s.overloaded.Load(),
		Backpressure: s.backpressure.Load(),
		LibErrors:    s.libErrors.Load(),
		InFlight:     s.inFlight.Load(),
		Responses:    make(map[string]uint64),

		RateLimited:       s.rateLimited.Load(),
		HandshakeFailures: s.handshakeFailures.Load(),
		DTLSSessions:      s.dtlsSessions.Load(),
	}
	for c := range s.responses {
		if n := s.responses[c].Load(); n > 0 {
			out.Responses[codeString(codes.Code(c))] = n
		}
	}
	return out
}

// codeString formats a CoAP code as "c.dd".
func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f)
}
