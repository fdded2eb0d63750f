// Package uart is the serial adapter: one [[uart]] block is one serial port
// (selected by path, by a /dev/serial/by-id link, or by USB identity through
// sysfs), read by one goroutine that splits the byte stream into frames
// (line, delimiter, length-prefixed, SLIP, COBS; bounded by max_frame),
// verifies and strips a checksum (NMEA, CRC-16/MODBUS, CRC-8, sum, XOR),
// parses the payload (regex, JSON, key=value, CSV, binary layout) into
// points and sends one frame per parsed frame to the bus.
//
// Devices are named by the data (a regex group, a JSON or key=value
// "device" key, a CSV column) or by the block's device. Every device seen
// on the port is online while the port is open and goes offline when the
// port is lost (go.bug.st/serial returns a PortClosed error when a USB
// adapter is pulled); Run then returns the error and the supervisor opens
// the port again with backoff, under whatever /dev name it comes back as
// when it is selected by USB identity.
//
// Two traps of go.bug.st/serial are handled: a read timeout returns (0, nil),
// which is not the end of the port; and a port whose file descriptor is
// 1024 or more would panic in Read, which serialport.Open refuses.
//
// Commands write the block's write template ({device}, {point}, {value})
// to the port, between two reads of the same goroutine.
package uart
