package wire

import (
	"errors"
	"fmt"
	"strconv"
)

// Modbus function codes supported by this package.
const (
	FuncReadCoils              = 1  // FC1, read 1..2000 coils
	FuncReadDiscreteInputs     = 2  // FC2, read 1..2000 discrete inputs
	FuncReadHoldingRegisters   = 3  // FC3, read 1..125 holding registers
	FuncReadInputRegisters     = 4  // FC4, read 1..125 input registers
	FuncWriteSingleCoil        = 5  // FC5, write one coil
	FuncWriteSingleRegister    = 6  // FC6, write one holding register
	FuncWriteMultipleCoils     = 15 // FC15, write 1..1968 coils
	FuncWriteMultipleRegisters = 16 // FC16, write 1..123 holding registers
)

// Per-request quantity limits of the Modbus application protocol (v1.1b3).
const (
	MaxReadRegisters  = 125  // FC3, FC4
	MaxReadBits       = 2000 // FC1, FC2
	MaxWriteRegisters = 123  // FC16
	MaxWriteBits      = 1968 // FC15
)

// exceptionBit is set in the function code of an exception response.
const exceptionBit = 0x80

// Errors a Transport's Do (and ParseResponsePDU) wrap. Test with errors.Is.
var (
	// ErrTimeout: no (complete) response arrived within the timeout.
	ErrTimeout = errors.New("timeout")
	// ErrCRC: an RTU frame addressed to the request's unit had a bad CRC.
	ErrCRC = errors.New("crc error")
	// ErrMalformed: the response is inconsistent with the request (short
	// frame, bad byte count, wrong echo, wrong function, bad header).
	ErrMalformed = errors.New("malformed response")
	// ErrShortFrame: fewer bytes than the frame header announced arrived
	// before the timeout. It wraps ErrMalformed.
	ErrShortFrame = fmt.Errorf("short frame: %w", ErrMalformed)
	// ErrInvalidRequest: the Request itself is invalid (unknown function,
	// quantity out of range, address overflow, missing values). Nothing is
	// sent for such a request.
	ErrInvalidRequest = errors.New("invalid request")
)

// Request is one Modbus request.
type Request struct {
	Unit     byte   // unit (slave) id; 0 is broadcast on RTU (writes only)
	Function byte   // one of the Func* constants
	Address  uint16 // first coil/input/register address (0-based, as on the wire)
	// Count is the number of registers or bits for reads and multiple
	// writes; for FC5/FC6 it is 1 (0 is accepted too). For FC15/FC16 a
	// Count of 0 means len(Bits) / len(Values).
	Count  uint16
	Values []uint16 // FC6 (one value), FC16
	Bits   []bool   // FC5 (one bit), FC15
}

// count validates r and returns its effective quantity (registers or bits;
// 1 for FC5 and FC6). Errors wrap ErrInvalidRequest.
func (r Request) count() (int, error) {
	n := int(r.Count)
	lim := 0
	switch r.Function {
	case FuncReadCoils, FuncReadDiscreteInputs:
		lim = MaxReadBits
	case FuncReadHoldingRegisters, FuncReadInputRegisters:
		lim = MaxReadRegisters
	case FuncWriteSingleCoil, FuncWriteSingleRegister:
		if n > 1 {
			return 0, fmt.Errorf("%w: function %d: count %d, want 1", ErrInvalidRequest, r.Function, n)
		}
		if r.Function == FuncWriteSingleCoil && len(r.Bits) != 1 {
			return 0, fmt.Errorf("%w: write single coil: %d bits, want 1", ErrInvalidRequest, len(r.Bits))
		}
		if r.Function == FuncWriteSingleRegister && len(r.Values) != 1 {
			return 0, fmt.Errorf("%w: write single register: %d values, want 1", ErrInvalidRequest, len(r.Values))
		}
		return 1, nil
	case FuncWriteMultipleCoils:
		lim = MaxWriteBits
		if n == 0 {
			n = len(r.Bits)
		}
		if len(r.Bits) != n {
			return 0, fmt.Errorf("%w: write coils: count %d but %d bits", ErrInvalidRequest, n, len(r.Bits))
		}
	case FuncWriteMultipleRegisters:
		lim = MaxWriteRegisters
		if n == 0 {
			n = len(r.Values)
		}
		if len(r.Values) != n {
			return 0, fmt.Errorf("%w: write registers: count %d but %d values", ErrInvalidRequest, n, len(r.Values))
		}
	default:
		return 0, fmt.Errorf("%w: unsupported function code %d", ErrInvalidRequest, r.Function)
	}
	if n < 1 || n > lim {
		return 0, fmt.Errorf("%w: function %d: count %d out of range 1..%d", ErrInvalidRequest, r.Function, n, lim)
	}
	if int(r.Address)+n > 65536 {
		return 0, fmt.Errorf("%w: function %d: address %d + count %d exceeds 65536", ErrInvalidRequest, r.Function, r.Address, n)
	}
	return n, nil
}

// AppendPDU validates r and appends its PDU (function code + data) to dst.
// On error dst is returned unchanged and the error wraps ErrInvalidRequest.
func (r Request) AppendPDU(dst []byte) ([]byte, error) {
	n, err := r.count()
	if err != nil {
		return dst, err
	}
	dst = append(dst, r.Function, byte(r.Address>>8), byte(r.Address))
	switch r.Function {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters:
		dst = append(dst, byte(n>>8), byte(n))
	case FuncWriteSingleCoil:
		if r.Bits[0] {
			dst = append(dst, 0xFF, 0x00)
		} else {
			dst = append(dst, 0x00, 0x00)
		}
	case FuncWriteSingleRegister:
		dst = append(dst, byte(r.Values[0]>>8), byte(r.Values[0]))
	case FuncWriteMultipleCoils:
		bc := (n + 7) / 8
		dst = append(dst, byte(n>>8), byte(n), byte(bc))
		start := len(dst)
		for range bc {
			dst = append(dst, 0)
		}
		for i, b := range r.Bits {
			if b {
				dst[start+i/8] |= 1 << (i % 8)
			}
		}
	case FuncWriteMultipleRegisters:
		dst = append(dst, byte(n>>8), byte(n), byte(2*n))
		for _, v := range r.Values {
			dst = append(dst, byte(v>>8), byte(v))
		}
	}
	return dst, nil
}

// String describes r for logs, e.g. "unit 1 read holding 100+10" or
// "unit 3 write register 7=0x00ff".
func (r Request) String() string {
	b := make([]byte, 0, 48)
	b = append(b, "unit "...)
	b = strconv.AppendUint(b, uint64(r.Unit), 10)
	span := func(b []byte, name string, n int) []byte {
		b = append(b, name...)
		b = strconv.AppendUint(b, uint64(r.Address), 10)
		b = append(b, '+')
		return strconv.AppendInt(b, int64(n), 10)
	}
	switch r.Function {
	case FuncReadCoils:
		b = span(b, " read coils ", int(r.Count))
	case FuncReadDiscreteInputs:
		b = span(b, " read discrete inputs ", int(r.Count))
	case FuncReadHoldingRegisters:
		b = span(b, " read holding ", int(r.Count))
	case FuncReadInputRegisters:
		b = span(b, " read input ", int(r.Count))
	case FuncWriteSingleCoil:
		b = append(b, " write coil "...)
		b = strconv.AppendUint(b, uint64(r.Address), 10)
		switch {
		case len(r.Bits) == 0:
			b = append(b, "=?"...)
		case r.Bits[0]:
			b = append(b, "=on"...)
		default:
			b = append(b, "=off"...)
		}
	case FuncWriteSingleRegister:
		b = append(b, " write register "...)
		b = strconv.AppendUint(b, uint64(r.Address), 10)
		if len(r.Values) == 0 {
			b = append(b, "=?"...)
		} else {
			b = fmt.Appendf(b, "=0x%04x", r.Values[0])
		}
	case FuncWriteMultipleCoils:
		n := int(r.Count)
		if n == 0 {
			n = len(r.Bits)
		}
		b = span(b, " write coils ", n)
	case FuncWriteMultipleRegisters:
		n := int(r.Count)
		if n == 0 {
			n = len(r.Values)
		}
		b = span(b, " write registers ", n)
	default:
		b = span(b, " function "+strconv.Itoa(int(r.Function))+" ", int(r.Count))
	}
	return string(b)
}

// Response is the decoded answer to a read request. Write requests return
// an empty Response. The slices are freshly allocated for each response.
type Response struct {
	Registers []uint16 // FC3/FC4: exactly Count registers
	Bits      []bool   // FC1/FC2: exactly Count bits
}

// ExceptionError is a Modbus exception response.
type ExceptionError struct {
	Function byte // the request's function code (without the 0x80 bit)
	Code     byte // the exception code
}

// Error returns e.g. "modbus exception 2 (illegal data address)".
func (e *ExceptionError) Error() string {
	return "modbus exception " + strconv.Itoa(int(e.Code)) + " (" + exceptionName(e.Code) + ")"
}

// exceptionName names the exception codes of the Modbus specification.
func exceptionName(code byte) string {
	switch code {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 8:
		return "memory parity error"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target device failed to respond"
	default:
		return "unknown exception"
	}
}

// ParseResponsePDU checks pdu (function code + data, without unit, MBAP
// header or CRC) as the answer to req and decodes it. An exception response
// (function|0x80) returns a *ExceptionError. Anything inconsistent with req
// (wrong function, byte count not matching req.Count or len(pdu), write echo
// differing from the request, trailing bytes) returns an error wrapping
// ErrMalformed; an invalid req returns an error wrapping ErrInvalidRequest.
// It never panics, whatever its input.
func ParseResponsePDU(req Request, pdu []byte) (Response, error) {
	n, err := req.count()
	if err != nil {
		return Response{}, err
	}
	if len(pdu) == 0 {
		return Response{}, fmt.Errorf("%w: empty pdu", ErrMalformed)
	}
	if pdu[0] == req.Function|exceptionBit {
		if len(pdu) != 2 {
			return Response{}, fmt.Errorf("%w: exception pdu of %d bytes, want 2", ErrMalformed, len(pdu))
		}
		return Response{}, &ExceptionError{Function: req.Function, Code: pdu[1]}
	}
	if pdu[0] != req.Function {
		return Response{}, fmt.Errorf("%w: function code %d, want %d", ErrMalformed, pdu[0], req.Function)
	}
	switch req.Function {
	case FuncReadCoils, FuncReadDiscreteInputs:
		bc := (n + 7) / 8
		if err := checkByteCount(pdu, bc); err != nil {
			return Response{}, err
		}
		bits := make([]bool, n)
		for i := range bits {
			bits[i] = pdu[2+i/8]&(1<<(i%8)) != 0
		}
		return Response{Bits: bits}, nil
	case FuncReadHoldingRegisters, FuncReadInputRegisters:
		if err := checkByteCount(pdu, 2*n); err != nil {
			return Response{}, err
		}
		regs := make([]uint16, n)
		for i := range regs {
			regs[i] = uint16(pdu[2+2*i])<<8 | uint16(pdu[3+2*i])
		}
		return Response{Registers: regs}, nil
	}
	// Writes: function, address, value or quantity.
	if len(pdu) != 5 {
		return Response{}, fmt.Errorf("%w: write response of %d bytes, want 5", ErrMalformed, len(pdu))
	}
	addr := uint16(pdu[1])<<8 | uint16(pdu[2])
	val := uint16(pdu[3])<<8 | uint16(pdu[4])
	if addr != req.Address {
		return Response{}, fmt.Errorf("%w: echoed address %d, want %d", ErrMalformed, addr, req.Address)
	}
	var want uint16
	switch req.Function {
	case FuncWriteSingleCoil:
		if req.Bits[0] {
			want = 0xFF00
		}
	case FuncWriteSingleRegister:
		want = req.Values[0]
	default: // FC15, FC16: quantity
		want = uint16(n)
	}
	if val != want {
		return Response{}, fmt.Errorf("%w: echoed value/quantity 0x%04x, want 0x%04x", ErrMalformed, val, want)
	}
	return Response{}, nil
}

// checkByteCount checks the byte count of a read response against the
// expected data length and the PDU length.
func checkByteCount(pdu []byte, want int) error {
	if len(pdu) < 2 {
		return fmt.Errorf("%w: read response of %d bytes has no byte count", ErrMalformed, len(pdu))
	}
	if int(pdu[1]) != want {
		return fmt.Errorf("%w: byte count %d, want %d", ErrMalformed, pdu[1], want)
	}
	if len(pdu) != 2+want {
		return fmt.Errorf("%w: read response of %d bytes, byte count announces %d", ErrMalformed, len(pdu), 2+want)
	}
	return nil
}
