package client

import (
	"fmt"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options/config"
)

const DefaultMTU = 1472

const DefaultMaxPendingMessages uint32 = 1024

var DefaultConfig = func() Config {
	opts := Config{
		Common: config.NewCommon[*Conn](),
		CreateInactivityMonitor: func() InactivityMonitor {
			return inactivity.NewNilMonitor[*Conn]()
		},
		RequestMonitor: func(*Conn, *pool.Message) (bool, error) {
			return false, nil
		},
		Dialer:                              &net.Dialer{Timeout: time.Second * 3},
		Net:                                 "udp",
		TransmissionNStart:                  1,
		TransmissionAcknowledgeTimeout:      time.Second * 2,
		TransmissionAcknowledgeRandomFactor: 1.5,
		TransmissionMaxRetransmit:           4,
		GetMID:                              message.GetMID,
		MTU:                                 DefaultMTU,
		MaxPendingMessages:                  DefaultMaxPendingMessages,
	}
	opts.Handler = func(w *responsewriter.ResponseWriter[*Conn], r *pool.Message) {
		switch r.Code() {
		case codes.GET, codes.POST, codes.PUT, codes.DELETE, codes.FETCH, codes.PATCH, codes.IPATCH:
			if err := w.SetResponse(codes.NotFound, message.TextPlain, nil); err != nil {
				opts.Errors(fmt.Errorf("udp client: cannot set response: %w", err))
			}
		}
	}
	return opts
}()

type Config struct {
	config.Common[*Conn]
	CreateInactivityMonitor             CreateInactivityMonitorFunc
	RequestMonitor                      RequestMonitorFunc
	Net                                 string
	GetMID                              GetMIDFunc
	Handler                             HandlerFunc
	Dialer                              *net.Dialer
	TransmissionNStart                  uint32
	TransmissionAcknowledgeTimeout      time.Duration
	TransmissionAcknowledgeRandomFactor float64
	TransmissionMaxRetransmit           uint32
	CloseSocket                         bool
	MTU                                 uint16
	// MaxPendingMessages limits in-flight duplicate suppression per connection.
	// Zero disables in-flight tracking.
	MaxPendingMessages uint32
	// QBlockwiseMode is Disabled by default. QBlockwiseSecure is set by the DTLS
	// client integration and must not be set for a plain UDP transport.
	QBlockwiseMode   blockwise.QBlockwiseMode
	QBlockwiseConfig blockwise.QBlockwiseConfig
	QBlockwiseSecure bool
}
