// Package bridge is the gateway's internal bus: the Frame every adapter emits,
// the outbound Message the mapping engine produces, a bounded Bus with explicit
// backpressure, and the Supervisor that runs adapters and restarts them with
// backoff.
//
// Nothing in this package knows a device protocol or MQTT. It must never hold
// an unbounded amount of memory: every queue here has a fixed capacity and a
// stated behaviour when full.
package bridge
