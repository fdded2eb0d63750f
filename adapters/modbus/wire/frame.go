package wire

// Frame size limits.
const (
	// maxPDU is the largest Modbus PDU (function code + data).
	maxPDU = 253
	// maxRTUFrame is the largest RTU frame: unit + PDU + CRC.
	maxRTUFrame = 1 + maxPDU + 2
	// mbapHeaderLen is the MBAP header including the unit id.
	mbapHeaderLen = 7
	// maxMBAPLength is the largest MBAP length field (unit + PDU).
	maxMBAPLength = 1 + maxPDU
	// maxMBAPFrame is the largest MBAP frame.
	maxMBAPFrame = 6 + maxMBAPLength
)

// CRC16 returns the CRC-16/MODBUS of b (polynomial 0xA001 reflected, initial
// value 0xFFFF). On the wire it is sent low byte first.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// AppendRTU appends the RTU frame unit + pdu + CRC (little-endian) to dst.
func AppendRTU(dst []byte, unit byte, pdu []byte) []byte {
	start := len(dst)
	dst = append(dst, unit)
	dst = append(dst, pdu...)
	crc := CRC16(dst[start:])
	return append(dst, byte(crc), byte(crc>>8))
}

// AppendMBAP appends the Modbus TCP frame (MBAP header with transaction id
// tid, protocol id 0, length, unit, then pdu) to dst.
func AppendMBAP(dst []byte, tid uint16, unit byte, pdu []byte) []byte {
	l := 1 + len(pdu)
	dst = append(dst, byte(tid>>8), byte(tid), 0, 0, byte(l>>8), byte(l), unit)
	return append(dst, pdu...)
}

// rtuFrameLen returns the total length (unit to CRC) of the RTU response
// frame that starts at b[0], judging by its function code and, for reads,
// its byte count: > 0 is the length, 0 means more bytes are needed to tell,
// -1 means b[0] cannot start a response frame (unknown function code or
// impossible byte count).
func rtuFrameLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	fc := b[1]
	if fc&exceptionBit != 0 {
		if knownFunction(fc &^ exceptionBit) {
			return 5 // unit, fc|0x80, code, crc
		}
		return -1
	}
	switch fc {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters:
		if len(b) < 3 {
			return 0
		}
		bc := int(b[2])
		if bc == 0 || 3+bc+2 > maxRTUFrame {
			return -1
		}
		return 3 + bc + 2
	case FuncWriteSingleCoil, FuncWriteSingleRegister, FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		return 8 // unit, fc, address, value/quantity, crc
	}
	return -1
}

// knownFunction reports whether fc is one of the supported function codes.
func knownFunction(fc byte) bool {
	switch fc {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters,
		FuncWriteSingleCoil, FuncWriteSingleRegister, FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		return true
	}
	return false
}

// rtuStep is what examineRTU asks the reader to do next.
type rtuStep int

const (
	rtuNeedMore rtuStep = iota // read more bytes
	rtuDiscard                 // drop the first n bytes and examine again
	rtuDone                    // the first n bytes were the answer: resp, err
)

// examineRTU looks at the bytes received so far after sending req and
// decides:
//   - rtuNeedMore: b holds (the start of) a possible frame; read on;
//   - rtuDiscard n: b[:n] is not the answer: a complete frame with a valid
//     CRC for another unit or function (n = its length, e.g. a late reply),
//     or a byte that cannot start a frame / a frame for someone else with a
//     bad CRC (n = 1, resynchronize on the next byte);
//   - rtuDone n: b[:n] is the frame for req's unit and function: resp and
//     err are its decoding (err wraps ErrCRC for a bad CRC, or is what
//     ParseResponsePDU returns).
//
// It never panics and always returns 0 < n <= len(b) for rtuDiscard and
// rtuDone.
func examineRTU(req Request, b []byte) (step rtuStep, n int, resp Response, err error) {
	l := rtuFrameLen(b)
	switch {
	case l < 0:
		return rtuDiscard, 1, Response{}, nil
	case l == 0 || len(b) < l:
		return rtuNeedMore, 0, Response{}, nil
	}
	frame := b[:l]
	crcOK := CRC16(frame[:l-2]) == uint16(frame[l-2])|uint16(frame[l-1])<<8
	ours := frame[0] == req.Unit && (frame[1] == req.Function || frame[1] == req.Function|exceptionBit)
	switch {
	case !crcOK && ours:
		return rtuDone, l, Response{}, ErrCRC
	case !crcOK:
		return rtuDiscard, 1, Response{}, nil
	case !ours:
		return rtuDiscard, l, Response{}, nil
	}
	resp, err = ParseResponsePDU(req, frame[1:l-2])
	return rtuDone, l, resp, err
}
