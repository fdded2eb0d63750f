// Package wire is the gateway's Modbus client wire layer: PDU encoding and
// validation (Request.AppendPDU), strict response checking
// (ParseResponsePDU), RTU and MBAP framing (AppendRTU, AppendMBAP, CRC16)
// and three Transports that send one request at a time on one physical line:
//
//   - NewTCP: Modbus TCP (MBAP header, incrementing transaction id);
//   - NewRTU: Modbus RTU on a serial Port (serialport.Open opens one with
//     go.bug.st/serial);
//   - NewRTUOverTCP: RTU frames (unit + PDU + CRC) carried on a TCP stream,
//     as spoken by transparent serial-to-Ethernet converters.
//
// # Why hand-written
//
// The gateway does not use github.com/simonvetter/modbus on purpose: that
// library has no context cancellation, does not reconnect after a broken
// connection, and after an RTU timeout it does not drain the line, so a late
// reply to the timed-out request is taken as the answer to the next request
// (a wrong value published as a good one). This package fixes all three:
//
//   - every Do honours its context within about 100 ms (reads are made in
//     slices of at most 50 ms) and its per-request timeout;
//   - TCP transports dial lazily and, after a connection error (EOF, reset,
//     write error, desynchronized MBAP stream, short frame), close the
//     connection and redial on the next Do; a timeout does not close the
//     connection;
//   - before every RTU request the line is drained: the transport waits for
//     the inter-frame silence t3.5 and reads and discards whatever is
//     pending (late replies, noise), counting it in Stats.Discarded;
//   - on Modbus TCP a reply whose transaction id or unit does not match the
//     request is discarded and reading goes on until the timeout.
//
// # Errors
//
// Do returns a *ExceptionError for a Modbus exception response, an error
// wrapping ErrTimeout, ErrCRC or ErrMalformed (ErrShortFrame for a frame cut
// short, which also wraps ErrMalformed), a connection error, or the context's
// error. Callers classify with errors.Is / errors.As; the reasons published
// are "timeout", "crc error", "short frame", "malformed response" and
// "exception N (name)".
//
// # Concurrency
//
// A Transport is not safe for concurrent Do calls: the caller serializes
// requests on one line (Modbus is a one-request-at-a-time protocol). Stats
// and Close may be called from any goroutine; Close makes a running Do
// return promptly.
//
// The package keeps no package-level mutable state and logs only through
// the *slog.Logger given in the options.
package wire
