package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/causeway/causeway/bridge"
)

// On-disk format (all integers little-endian).
//
// A segment file is named by the sequence number of its first record,
// %020d.seg, and starts with a 16-byte header:
//
//	magic   [8]byte "CWQSEG1\n"
//	first   uint64  the first record's sequence number (== the name)
//
// followed by records, back to back:
//
//	length  uint32  bytes after the 8-byte length+crc prefix
//	crc     uint32  CRC-32C (Castagnoli) of length || everything after crc
//	seq     uint64
//	time    int64   Unix nanoseconds, when the record was appended
//	flags   uint8   bits 0-1 QoS, bit 2 retain
//	tlen    uint16  topic length
//	topic   [tlen]byte
//	payload [length-19-tlen]byte
//
// A record is valid when its length fits the file, its CRC matches and its
// sequence number is in the expected range. The header costs 27 bytes per
// record; nothing else is written per message.
const (
	segMagic      = "CWQSEG1\n"
	segHeaderSize = 16
	recPrefix     = 8  // length + crc
	recFixed      = 19 // seq + time + flags + tlen
	recHeaderSize = recPrefix + recFixed
	// maxRecordBody bounds a record's length field: an MQTT packet cannot
	// be larger, so anything above is corruption.
	maxRecordBody = 268435455 + recFixed
	segSuffix     = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record decoding errors.
var (
	errShort   = errors.New("record extends past the end of the written data")
	errCorrupt = errors.New("record checksum or framing mismatch")
)

// recordSize is the number of bytes m takes on disk.
func recordSize(m *bridge.Message) int64 {
	return int64(recHeaderSize + len(m.Topic) + len(m.Payload))
}

// appendRecord encodes one record at the end of dst.
func appendRecord(dst []byte, seq uint64, t time.Time, m *bridge.Message) []byte {
	start := len(dst)
	body := recFixed + len(m.Topic) + len(m.Payload)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(body))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // crc, filled below
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.UnixNano()))
	flags := m.QoS & 3
	if m.Retain {
		flags |= 4
	}
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.Topic)))
	dst = append(dst, m.Topic...)
	dst = append(dst, m.Payload...)
	crc := crc32.Update(0, castagnoli, dst[start:start+4])
	crc = crc32.Update(crc, castagnoli, dst[start+recPrefix:])
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst
}

// recHead is a decoded record header.
type recHead struct {
	size  int // whole record, prefix included
	seq   uint64
	time  int64
	flags byte
	tlen  int
}

// parseHead checks the record at the start of b: framing and CRC. b may
// hold more than one record. It returns errShort when b ends before the
// record does (need is then the record's whole size, or recHeaderSize when
// even the length is missing).
func parseHead(b []byte) (h recHead, need int, err error) {
	if len(b) < recHeaderSize {
		return h, recHeaderSize, errShort
	}
	body := binary.LittleEndian.Uint32(b)
	if body < recFixed || body > maxRecordBody {
		return h, 0, errCorrupt
	}
	h.size = recPrefix + int(body)
	h.tlen = int(binary.LittleEndian.Uint16(b[recPrefix+17:]))
	if recFixed+h.tlen > int(body) {
		return h, 0, errCorrupt
	}
	if len(b) < h.size {
		return h, h.size, errShort
	}
	crc := crc32.Update(0, castagnoli, b[:4])
	crc = crc32.Update(crc, castagnoli, b[recPrefix:h.size])
	if crc != binary.LittleEndian.Uint32(b[4:]) {
		return h, 0, errCorrupt
	}
	h.seq = binary.LittleEndian.Uint64(b[recPrefix:])
	h.time = int64(binary.LittleEndian.Uint64(b[recPrefix+8:]))
	h.flags = b[recPrefix+16]
	if h.flags&^7 != 0 || h.flags&3 == 3 {
		return h, 0, errCorrupt
	}
	return h, h.size, nil
}

// decodeMessage copies the message of a record whose head is h out of b.
func decodeMessage(b []byte, h recHead) bridge.Message {
	topic := b[recHeaderSize : recHeaderSize+h.tlen]
	payload := b[recHeaderSize+h.tlen : h.size]
	m := bridge.Message{
		Topic:  string(topic),
		QoS:    h.flags & 3,
		Retain: h.flags&4 != 0,
	}
	if len(payload) > 0 {
		m.Payload = append([]byte(nil), payload...)
	}
	return m
}

func segHeader(first uint64) []byte {
	b := make([]byte, 0, segHeaderSize)
	b = append(b, segMagic...)
	return binary.LittleEndian.AppendUint64(b, first)
}

func checkSegHeader(b []byte, first uint64) error {
	if len(b) < segHeaderSize {
		return fmt.Errorf("segment header: %d bytes, want %d", len(b), segHeaderSize)
	}
	if string(b[:8]) != segMagic {
		return fmt.Errorf("segment header: bad magic %q", b[:8])
	}
	if got := binary.LittleEndian.Uint64(b[8:]); got != first {
		return fmt.Errorf("segment header: first sequence %d does not match the file name (%d)", got, first)
	}
	return nil
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}
