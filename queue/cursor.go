package queue

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// The cursor file holds the committed position: every sequence number up to
// it is delivered (or dropped), and where the next record starts, as a hint
// that saves scanning a segment at start-up. It has two 64-byte slots
// written alternately with a generation number, so a write torn by a power
// cut leaves the other slot intact:
//
//	magic     [4]byte "CWQC"
//	gen       uint64
//	committed uint64
//	segFirst  uint64  segment of the next record (0: unknown)
//	offset    int64   its offset in that segment
//	crc       uint32  CRC-32C of the bytes before it
//
// Losing the cursor (or reading an old one) can only cause records to be
// sent again, never lost: it is written at most once a second and on close.
const (
	cursorName  = "cursor"
	cursorMagic = "CWQC"
	cursorSlot  = 64
	cursorBody  = 4 + 8 + 8 + 8 + 8
)

type cursor struct {
	gen       uint64
	committed uint64
	segFirst  uint64
	offset    int64
}

func (c cursor) encode() []byte {
	b := make([]byte, 0, cursorSlot)
	b = append(b, cursorMagic...)
	b = binary.LittleEndian.AppendUint64(b, c.gen)
	b = binary.LittleEndian.AppendUint64(b, c.committed)
	b = binary.LittleEndian.AppendUint64(b, c.segFirst)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.offset))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b
}

func decodeCursor(b []byte) (cursor, bool) {
	if len(b) < cursorBody+4 || string(b[:4]) != cursorMagic {
		return cursor{}, false
	}
	if crc32.Checksum(b[:cursorBody], castagnoli) != binary.LittleEndian.Uint32(b[cursorBody:]) {
		return cursor{}, false
	}
	return cursor{
		gen:       binary.LittleEndian.Uint64(b[4:]),
		committed: binary.LittleEndian.Uint64(b[12:]),
		segFirst:  binary.LittleEndian.Uint64(b[20:]),
		offset:    int64(binary.LittleEndian.Uint64(b[28:])),
	}, true
}

// readCursor returns the newest valid slot of the cursor file at path.
// found is false when the file does not exist; damaged is true when it
// exists but no slot is valid.
func readCursor(path string) (c cursor, found, damaged bool, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return cursor{}, false, false, nil
	}
	if err != nil {
		return cursor{}, false, false, fmt.Errorf("read %s: %w", path, err)
	}
	ok := false
	for off := 0; off+cursorBody+4 <= len(b) && off < 2*cursorSlot; off += cursorSlot {
		if s, valid := decodeCursor(b[off:]); valid && (!ok || s.gen > c.gen) {
			c, ok = s, true
		}
	}
	return c, true, !ok, nil
}

// writeCursor writes c into the slot its generation selects.
func writeCursor(f *os.File, c cursor) error {
	if _, err := f.WriteAt(c.encode(), int64(c.gen%2)*cursorSlot); err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	return nil
}
