// Package mqttcore is the gateway's MQTT core: a built-in broker that local
// applications subscribe to (Broker, implemented on mochi-mqtt), an uplink
// session to a remote broker (Uplink: MQTT 5 on eclipse/paho.golang
// autopaho, MQTT 3.1.1 on eclipse/paho.mqtt.golang), and the offline queue between the mapping engine and the
// uplink (Queue, with MemoryQueue as the in-memory implementation).
//
// What it must never do:
//
//   - lose an accepted uplink message silently: a message is removed from the
//     queue only when the remote broker acknowledged it (PUBACK for QoS 1,
//     PUBCOMP for QoS 2, written to the socket for QoS 0), or when a
//     configured bound drops it, which is counted and logged (rate-limited);
//   - rely on the remote broker's session or on paho's session store for
//     durability: every connection starts clean and the queue resends what is
//     unacknowledged, in order (at least once: duplicates after a reconnect
//     are possible, loss is not);
//   - grow without bound: the queue, the in-flight window and every
//     per-client buffer of the built-in broker have a fixed limit and a
//     stated behaviour when it is reached;
//   - let one slow local subscriber stall publishing to the others;
//   - log secrets (passwords, keys) or log at a rate set by the network.
//
// Both Broker and Uplink are interfaces so that the broker engine and the
// uplink client (for example an MQTT 3.1.1 client) can be replaced.
package mqttcore
