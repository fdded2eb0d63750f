// Package mapping turns frames into MQTT messages: for every point of a
// [bridge.Frame] it picks a route (glob on "{adapter}/{device}/{point}", first
// match in file order wins, else the default route), builds the topic from the
// route's template and encodes the payload ("json", "value" or "senml") as
// PRODUCT.md ("The MQTT contract") and CONFIG.md ("Routes.") describe.
//
// An [Engine] is compiled once from the configuration by [New]; globs and topic
// templates are precompiled there, so [Engine.Map] does no parsing, no regexp
// and only a couple of allocations per frame. An Engine's routes never
// change, and Map may be called from several goroutines at once.
//
// This package is pure code. It must never do I/O (no files, network or
// logging), start goroutines, block (beyond a short mutex), or keep
// package-level mutable variables. The one state an Engine keeps is that of
// routes that report by exception (below), and the time it counts with
// comes from the caller ([Engine.MapAt], [Engine.Due]); it reads the clock
// only when given a zero time (Map and MapCount pass one), and only for
// such routes. The caller owns the timer that calls [Engine.Due].
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
//
// # Report by exception
//
// A route with deadband, min_interval or max_interval (docs/configuration.md,
// [[route]]) publishes a point only when it is worth it. Its state is kept
// per route, adapter, device and point ("a point" below): the value last
// published and when, and the newest reading. Routes without these keys keep
// no state and cost nothing more.
//
//   - The first good reading of a point is always published.
//   - deadband > 0: a number or integer is skipped while it is less than
//     deadband away from the value last published (|new - last| < deadband;
//     a difference of exactly deadband publishes). Other values (bool,
//     string, bytes, no value) and non-finite numbers are skipped while they
//     are the same; a change of kind is a change. deadband = 0 skips
//     nothing.
//   - min_interval > 0: at most one message per point per interval,
//     counted from the moment a message for the point was produced. A value
//     that comes sooner is held; a newer one replaces it (the latest wins),
//     or drops it when it is back within deadband of the value last
//     published. When the interval ends, [Engine.Due] publishes the held
//     value: the last value is never lost.
//   - max_interval > 0: when nothing was published for a point for this
//     long, [Engine.Due] publishes its newest reading again (a heartbeat): the
//     held value if there is one, else the newest reading even if deadband
//     skipped it. It repeats every max_interval while the point is tracked.
//     max_interval must not be shorter than min_interval.
//   - A point with bad quality always passes (and is published as the format
//     says: under "errors" in json, nothing in value and senml), and resets
//     the point: a held value is dropped (the error is newer), no heartbeat
//     follows, and the next good reading is published as a first one.
//   - Points a format has no form for (no value in "value"; no value or a
//     non-finite number in "senml") are not readings for the state.
//   - Without {point} in the topic, the state is still per point: the
//     frame's message holds only the points that pass (and the bad ones),
//     and a frame none of whose points pass publishes nothing.
//
// Intervals count on the arrival clock the caller passes (MapAt's now, Due's
// now), never on frame times. Messages from Due carry, like every message,
// the time of the reading they publish: a heartbeat repeats its reading's
// time. Due puts the points of one route and device that are due together
// and have the same reading time in one message.
//
// Memory is bounded: an Engine tracks at most [MaxTracked] points; a new one
// beyond that makes it forget the point whose newest reading is the oldest
// (publishing its held value at once, with the frame's messages), and
// [Engine.RBEStats] counts it. A forgotten point starts again as a new one.
// On a reload, [Engine.Adopt] moves the state of unchanged routes to the
// new engine, and [Engine.Flush] publishes what the old one still holds.
// Held values live in memory only: a crash or power cut loses them (an
// orderly stop publishes them with Flush).
package mapping
