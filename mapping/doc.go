// Package mapping turns frames into MQTT messages: for every point of a
// [bridge.Frame] it picks a route (glob on "{adapter}/{device}/{point}", first
// match in file order wins, else the default route), builds the topic from the
// route's template and encodes the payload ("json", "value" or "senml") as
// PRODUCT.md ("The MQTT contract") and CONFIG.md ("Routes.") describe.
//
// An [Engine] is compiled once from the configuration by [New]; globs and topic
// templates are precompiled there, so [Engine.Map] does no parsing, no regexp
// and only a couple of allocations per frame. An Engine is immutable: Map may
// be called from several goroutines at once.
//
// This package is pure code. It must never do I/O (no files, network, clock or
// logging), start goroutines, block, or keep state between calls (no caches,
// no package-level mutable variables). Anything stateful that routes need
// (deadband, min_interval, max_interval) belongs to the caller.
//
// # Defensive rules
//
// Adapters are meant to refuse names that break the contract, but Map does
// not trust them. Map publishes nothing for a point whose adapter, device or
// point name is empty, is not valid UTF-8, contains '+', '#', '/' or a
// control character, or is a reserved name (device: set, availability,
// status, stats; point: the same plus time and errors): such a point could
// only produce a broken or hijacked topic or an ambiguous JSON object. Nor
// does it publish on a topic longer than MQTT allows (65535 bytes), or one
// that a name at the start of the template would make begin with '$' (the
// broker's own topics). [Engine.MapCount] reports how many points were
// skipped so that the caller can count them; [bridge.CheckDeviceName] and
// [bridge.CheckPointName] are the same rules for adapters to apply first. Map does
// not look for two points of one name in a frame: adapters must not send
// them (the JSON object would hold the key twice).
//
// # Payloads
//
//   - "json": one object {"time":"2006-01-02T15:04:05.000Z", <point>: <value>...}
//     with the frame's time in UTC, millisecond precision (truncated), then
//     the good points in frame order; bad points are listed under "errors" as
//     point → reason, and "errors" is present only when some point is bad.
//     Non-finite numbers are null, bytes are standard base64 strings, a good
//     point without a value is null. With {point} in the topic, one such
//     object per point, holding only that point.
//   - "value": the value alone, not JSON-encoded (numbers in shortest form,
//     true/false, strings as raw UTF-8, bytes raw). Needs {point} in the
//     topic. A bad point, or a good point without a value, produces no
//     message: an empty payload would clear a retained message. (An empty
//     string or empty bytes value is published as an empty payload, which on
//     a retained route does clear it: that is the value.)
//   - "senml": an RFC 8428 SenML JSON pack. The base name "bn" is the device's
//     path "{gateway}/{adapter}/{device}/" (so bn+n reads like the per-point
//     topic of the default layout and is unique across gateways) and the base
//     time "bt" is the frame time in seconds since the Unix epoch with
//     millisecond precision; both are carried by the first record, which is
//     also the first point's record (as in the RFC's examples). Each good
//     point is one record: "n", "u" when the point has a unit, and "v"
//     (number, integer), "vb" (bool), "vs" (string) or "vd" (bytes, base64url
//     without padding). Bad points, points without a value and non-finite
//     numbers have no SenML form and are left out; a pack that would be empty
//     is not published. Names are not checked against RFC 8428's name
//     characters (A-Z a-z 0-9 - : . / _): a strict SenML reader may refuse
//     names with other characters.
//
// # Messages
//
// Messages are appended in route order (file order, the default route last);
// within a route, points keep the frame's order. Points of one frame that
// select the same route share one message, or get one message each when the
// route's topic holds {point}. A frame without points yields no message.
// QoS, Retain and Uplink come from the route.
// Messages of one frame share backing memory for their topics and payloads;
// each Payload has its capacity clipped, so appending to it copies.
package mapping
