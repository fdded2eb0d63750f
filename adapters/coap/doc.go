// Package coap is the gateway's CoAP adapter. As a server, devices POST or
// PUT readings over UDP, or DTLS with pre-shared keys, to /{device} or
// /{device}/{point}, and the adapter turns each request into one normalized
// bridge.Frame (or one per timestamp for a SenML time series) on the bus; a
// per-source rate limit answers 4.29 to a flooding peer. As a client
// ([[coap.device]], client.go) it observes or polls devices, re-registering
// observations itself, and turns commands into PUTs.
//
// Payloads are decoded by Content-Format: text/plain (0), application/json
// (50), application/cbor (60), application/senml+json (110) and
// application/senml+cbor (112); without a Content-Format a payload
// starting with '{' or '[' is JSON, anything else text. Decode and DecodeAll
// are the pure decoders, usable without a network.
//
// SenML records map to points by their name with the device removed
// (bn "dev1/" and n "temp" posted to /dev1 is the point "temp"); records at
// different times become one frame per time. senml.go states the rules.
//
// A request is answered 2.04 Changed only after every frame it produced has
// been acknowledged by the bus consumer (accepted downstream): a confirmable
// request the gateway ACKs with 2.04 is a reading it promises to deliver.
// Malformed input gets a 4.xx with a diagnostic text payload, refusal under
// backpressure a 5.03, and the adapter keeps serving every other peer.
//
// What it must never do:
//   - answer 2.04 before the bus consumer acknowledged the frame;
//   - block go-coap's UDP read loop: requests are handled in their own
//     goroutines, at most Deps.MaxInFlight at once, beyond that 5.03 at once;
//   - hold unbounded memory: payloads are capped by max_payload (4.13),
//     block-wise transfers per peer and in-flight requests are bounded;
//   - reorder the frames of one peer: frames enter the bus in the order their
//     requests arrived, even though their acknowledgements are awaited
//     concurrently;
//   - let a device use a reserved or malformed name (4.00 instead);
//   - print to stdout, keep package-level mutable state, or leave a goroutine
//     running after Run returns.
package coap
