package wire

import (
	"errors"
	"testing"
)

// fuzzRequest builds a request from fuzz inputs; for the write functions
// the values/bits are filled to match count (so that valid writes are
// reachable), taking their contents from vals.
func fuzzRequest(unit, fc byte, addr, count uint16, vals []byte) Request {
	req := Request{Unit: unit, Function: fc, Address: addr, Count: count}
	at := func(i int) byte {
		if len(vals) == 0 {
			return 0
		}
		return vals[i%len(vals)]
	}
	n := min(int(count), MaxReadBits+1)
	switch fc {
	case FuncWriteSingleCoil:
		req.Bits = []bool{at(0)&1 == 1}
	case FuncWriteSingleRegister:
		req.Values = []uint16{uint16(at(0))<<8 | uint16(at(1))}
	case FuncWriteMultipleCoils:
		req.Bits = make([]bool, n)
		for i := range req.Bits {
			req.Bits[i] = at(i)&1 == 1
		}
	case FuncWriteMultipleRegisters:
		req.Values = make([]uint16, n)
		for i := range req.Values {
			req.Values[i] = uint16(at(2*i))<<8 | uint16(at(2*i+1))
		}
	}
	return req
}

// checkDecoded fails unless resp/err obey ParseResponsePDU's contract for
// req and pdu.
func checkDecoded(t *testing.T, req Request, pdu []byte, resp Response, err error) {
	t.Helper()
	if err != nil {
		var exc *ExceptionError
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidRequest) && !errors.As(err, &exc) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if errors.As(err, &exc) && (len(pdu) != 2 || pdu[0] != req.Function|0x80 || exc.Code != pdu[1]) {
			t.Fatalf("exception %v from pdu % x", exc, pdu)
		}
		return
	}
	if _, verr := req.AppendPDU(nil); verr != nil {
		t.Fatalf("invalid request %v accepted: %v", req, verr)
	}
	switch req.Function {
	case FuncReadCoils, FuncReadDiscreteInputs:
		if len(resp.Bits) != int(req.Count) || resp.Registers != nil {
			t.Fatalf("%v: got %d bits, %d registers", req, len(resp.Bits), len(resp.Registers))
		}
		for i, b := range resp.Bits {
			if b != (pdu[2+i/8]&(1<<(i%8)) != 0) {
				t.Fatalf("bit %d decoded wrong", i)
			}
		}
	case FuncReadHoldingRegisters, FuncReadInputRegisters:
		if len(resp.Registers) != int(req.Count) || resp.Bits != nil {
			t.Fatalf("%v: got %d registers, %d bits", req, len(resp.Registers), len(resp.Bits))
		}
		if len(pdu) != 2+2*int(req.Count) {
			t.Fatalf("accepted pdu of %d bytes", len(pdu))
		}
		for i, v := range resp.Registers {
			if v != uint16(pdu[2+2*i])<<8|uint16(pdu[3+2*i]) {
				t.Fatalf("register %d decoded wrong", i)
			}
		}
	default:
		if resp.Registers != nil || resp.Bits != nil || len(pdu) != 5 {
			t.Fatalf("write %v: response %v from % x", req, resp, pdu)
		}
	}
}

func FuzzParseResponsePDU(f *testing.F) {
	f.Add(byte(1), byte(3), uint16(0x6B), uint16(3), []byte{}, []byte{3, 6, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64})
	f.Add(byte(1), byte(1), uint16(0x13), uint16(19), []byte{}, []byte{1, 3, 0xCD, 0x6B, 0x05})
	f.Add(byte(1), byte(3), uint16(0), uint16(2), []byte{}, []byte{0x83, 2})
	f.Add(byte(1), byte(16), uint16(1), uint16(2), []byte{0, 10, 1, 2}, []byte{16, 0, 1, 0, 2})
	f.Add(byte(1), byte(5), uint16(0xAC), uint16(1), []byte{1}, []byte{5, 0, 0xAC, 0xFF, 0})
	f.Fuzz(func(t *testing.T, unit, fc byte, addr, count uint16, vals, pdu []byte) {
		req := fuzzRequest(unit, fc, addr, count, vals)
		resp, err := ParseResponsePDU(req, pdu)
		checkDecoded(t, req, pdu, resp, err)
		if err == nil && (fc == FuncWriteMultipleCoils || fc == FuncWriteMultipleRegisters) && int(req.Count) != len(req.Bits)+len(req.Values) {
			t.Fatalf("count %d vs %d bits %d values", req.Count, len(req.Bits), len(req.Values))
		}
	})
}

// FuzzRTUFrame feeds an arbitrary received byte stream, followed by the
// fake device's well-formed answer, to the RTU frame assembly (examineRTU)
// the way the transport does: it must never panic, always make progress,
// ask for more bytes only when the frame at hand is incomplete, and only
// accept a CRC-valid frame of the request's unit and function whose counts
// match the request. Without noise the answer must be found. (Noise can
// swallow the answer: a byte sequence announcing a longer frame, or, rarely,
// a CRC-valid foreign frame overlapping it; the transport then reports a
// short frame or a timeout.)
func FuzzRTUFrame(f *testing.F) {
	f.Add(byte(1), byte(3), uint16(0), uint16(2), []byte{1, 3, 4, 0, 7, 0, 9, 0x3A, 0x0F})
	f.Add(byte(1), byte(3), uint16(0), uint16(2), []byte{2, 3, 4, 0, 1, 0, 2, 0x49, 0x30, 0x55})
	f.Add(byte(1), byte(3), uint16(1000), uint16(1), []byte{1, 0x83, 2, 0xC0, 0xF1})
	f.Add(byte(7), byte(16), uint16(3), uint16(2), []byte{0xFF, 0x00, 7, 16, 0, 3, 0, 2})
	f.Add(byte(1), byte(1), uint16(0), uint16(8), []byte{1, 1, 1})
	f.Add(byte(1), byte(3), uint16(5), uint16(1), []byte{})
	f.Fuzz(func(t *testing.T, unit, fc byte, addr, count uint16, noise []byte) {
		req := fuzzRequest(unit, fc, addr, count, noise)
		stream := noise
		pdu, verr := req.AppendPDU(nil)
		if verr == nil {
			stream = AppendRTU(append([]byte(nil), noise...), unit, devicePDU(nil, pdu))
		}
		mustFind := verr == nil && len(noise) == 0
		b := stream
		for len(b) > 0 {
			step, n, resp, err := examineRTU(req, b)
			if step == rtuNeedMore {
				if l := rtuFrameLen(b); l > 0 && l <= len(b) {
					t.Fatalf("need more with %d bytes buffered, frame length %d", len(b), l)
				}
				break
			}
			if n <= 0 || n > len(b) {
				t.Fatalf("step %v consumed %d of %d", step, n, len(b))
			}
			if step == rtuDiscard {
				b = b[n:]
				continue
			}
			frame := b[:n]
			if frame[0] != unit || (frame[1] != fc && frame[1] != fc|0x80) {
				t.Fatalf("took frame % x for %v", frame, req)
			}
			if errors.Is(err, ErrCRC) {
				if mustFind {
					t.Fatalf("crc error on a good answer % x", frame)
				}
				return
			}
			if CRC16(frame[:n-2]) != uint16(frame[n-2])|uint16(frame[n-1])<<8 {
				t.Fatalf("accepted bad CRC frame % x", frame)
			}
			checkDecoded(t, req, frame[1:n-2], resp, err)
			if mustFind && errors.Is(err, ErrMalformed) {
				t.Fatalf("good answer % x rejected: %v", frame, err)
			}
			return
		}
		if mustFind {
			t.Fatalf("answer % x not found", stream)
		}
	})
}
