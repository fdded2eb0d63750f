package wire

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestCRC16(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want uint16
	}{
		{[]byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A}, 0xCDC5},
		{[]byte("123456789"), 0x4B37}, // CRC-16/MODBUS check value
		{[]byte{0x11, 0x03, 0x00, 0x6B, 0x00, 0x03}, 0x8776},
		{nil, 0xFFFF},
	} {
		if got := CRC16(tc.in); got != tc.want {
			t.Errorf("CRC16(% x) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}

func TestAppendRTU(t *testing.T) {
	got := AppendRTU([]byte{0xAA}, 0x01, []byte{0x03, 0x00, 0x00, 0x00, 0x0A})
	want := []byte{0xAA, 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendRTU = % x, want % x", got, want)
	}
}

func TestAppendMBAP(t *testing.T) {
	got := AppendMBAP(nil, 0x1234, 0x11, []byte{0x03, 0x00, 0x6B, 0x00, 0x03})
	want := []byte{0x12, 0x34, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendMBAP = % x, want % x", got, want)
	}
}

func TestAppendPDU(t *testing.T) {
	bits := func(s string) []bool {
		var b []bool
		for _, c := range s {
			b = append(b, c == '1')
		}
		return b
	}
	for _, tc := range []struct {
		name string
		req  Request
		want []byte
	}{
		{"read coils", Request{Function: FuncReadCoils, Address: 0x13, Count: 0x25}, []byte{1, 0x00, 0x13, 0x00, 0x25}},
		{"read discrete", Request{Function: FuncReadDiscreteInputs, Address: 0xC4, Count: 0x16}, []byte{2, 0x00, 0xC4, 0x00, 0x16}},
		{"read holding", Request{Function: FuncReadHoldingRegisters, Address: 0x6B, Count: 3}, []byte{3, 0x00, 0x6B, 0x00, 0x03}},
		{"read input", Request{Function: FuncReadInputRegisters, Address: 8, Count: 1}, []byte{4, 0x00, 0x08, 0x00, 0x01}},
		{"read holding max", Request{Function: FuncReadHoldingRegisters, Address: 65536 - 125, Count: 125}, []byte{3, 0xFF, 0x83, 0x00, 0x7D}},
		{"read coils max", Request{Function: FuncReadCoils, Count: 2000}, []byte{1, 0, 0, 0x07, 0xD0}},
		{"write coil on", Request{Function: FuncWriteSingleCoil, Address: 0xAC, Count: 1, Bits: []bool{true}}, []byte{5, 0x00, 0xAC, 0xFF, 0x00}},
		{"write coil off", Request{Function: FuncWriteSingleCoil, Address: 0xAC, Bits: []bool{false}}, []byte{5, 0x00, 0xAC, 0x00, 0x00}},
		{"write register", Request{Function: FuncWriteSingleRegister, Address: 1, Count: 1, Values: []uint16{3}}, []byte{6, 0x00, 0x01, 0x00, 0x03}},
		{"write coils", Request{Function: FuncWriteMultipleCoils, Address: 0x13, Count: 10, Bits: bits("1011001110")}, []byte{15, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01}},
		{"write coils count from bits", Request{Function: FuncWriteMultipleCoils, Address: 0x13, Bits: bits("1011001110")}, []byte{15, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01}},
		{"write registers", Request{Function: FuncWriteMultipleRegisters, Address: 1, Count: 2, Values: []uint16{0x000A, 0x0102}}, []byte{16, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02}},
		{"write registers count from values", Request{Function: FuncWriteMultipleRegisters, Address: 1, Values: []uint16{0x000A, 0x0102}}, []byte{16, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.req.AppendPDU([]byte{0xEE})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte{0xEE}, tc.want...)) {
				t.Fatalf("AppendPDU = % x, want ee % x", got, tc.want)
			}
		})
	}
}

func TestAppendPDUInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  Request
		msg  string
	}{
		{"unknown function", Request{Function: 7, Count: 1}, "unsupported function"},
		{"function 0", Request{}, "unsupported function"},
		{"read holding count 0", Request{Function: FuncReadHoldingRegisters}, "out of range"},
		{"read holding 126", Request{Function: FuncReadHoldingRegisters, Count: 126}, "out of range"},
		{"read input 126", Request{Function: FuncReadInputRegisters, Count: 126}, "out of range"},
		{"read coils 2001", Request{Function: FuncReadCoils, Count: 2001}, "out of range"},
		{"read discrete 0", Request{Function: FuncReadDiscreteInputs}, "out of range"},
		{"address overflow", Request{Function: FuncReadHoldingRegisters, Address: 65535, Count: 2}, "exceeds 65536"},
		{"coils overflow", Request{Function: FuncReadCoils, Address: 65000, Count: 537}, "exceeds 65536"},
		{"write coil no bit", Request{Function: FuncWriteSingleCoil}, "0 bits"},
		{"write coil count 2", Request{Function: FuncWriteSingleCoil, Count: 2, Bits: []bool{true}}, "count 2"},
		{"write register 2 values", Request{Function: FuncWriteSingleRegister, Values: []uint16{1, 2}}, "2 values"},
		{"write coils none", Request{Function: FuncWriteMultipleCoils}, "out of range"},
		{"write coils 1969", Request{Function: FuncWriteMultipleCoils, Bits: make([]bool, 1969)}, "out of range"},
		{"write coils mismatch", Request{Function: FuncWriteMultipleCoils, Count: 3, Bits: make([]bool, 2)}, "but 2 bits"},
		{"write registers 124", Request{Function: FuncWriteMultipleRegisters, Values: make([]uint16, 124)}, "out of range"},
		{"write registers mismatch", Request{Function: FuncWriteMultipleRegisters, Count: 1, Values: make([]uint16, 2)}, "but 2 values"},
		{"write registers overflow", Request{Function: FuncWriteMultipleRegisters, Address: 65535, Values: make([]uint16, 2)}, "exceeds 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte{1, 2}
			got, err := tc.req.AppendPDU(dst)
			wantErr(t, err, ErrInvalidRequest)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if !bytes.Equal(got, dst) {
				t.Errorf("dst changed to % x", got)
			}
		})
	}
	// The boundaries themselves are valid.
	for _, req := range []Request{
		{Function: FuncReadHoldingRegisters, Address: 65535, Count: 1},
		{Function: FuncReadCoils, Address: 65536 - 2000, Count: 2000},
		{Function: FuncWriteMultipleCoils, Bits: make([]bool, MaxWriteBits)},
		{Function: FuncWriteMultipleRegisters, Values: make([]uint16, MaxWriteRegisters)},
	} {
		if _, err := req.AppendPDU(nil); err != nil {
			t.Errorf("%v: %v", req, err)
		}
	}
}

func TestRequestString(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{readHolding(1, 100, 10), "unit 1 read holding 100+10"},
		{Request{Unit: 2, Function: FuncReadInputRegisters, Address: 5, Count: 2}, "unit 2 read input 5+2"},
		{Request{Unit: 3, Function: FuncReadCoils, Address: 0, Count: 8}, "unit 3 read coils 0+8"},
		{Request{Unit: 3, Function: FuncReadDiscreteInputs, Address: 1, Count: 8}, "unit 3 read discrete inputs 1+8"},
		{Request{Unit: 4, Function: FuncWriteSingleCoil, Address: 7, Bits: []bool{true}}, "unit 4 write coil 7=on"},
		{Request{Unit: 4, Function: FuncWriteSingleCoil, Address: 7, Bits: []bool{false}}, "unit 4 write coil 7=off"},
		{Request{Unit: 5, Function: FuncWriteSingleRegister, Address: 9, Values: []uint16{255}}, "unit 5 write register 9=0x00ff"},
		{Request{Unit: 6, Function: FuncWriteMultipleCoils, Address: 1, Bits: make([]bool, 3)}, "unit 6 write coils 1+3"},
		{Request{Unit: 7, Function: FuncWriteMultipleRegisters, Address: 1, Values: make([]uint16, 4)}, "unit 7 write registers 1+4"},
		{Request{Unit: 8, Function: 0x41, Address: 1, Count: 2}, "unit 8 function 65 1+2"},
		{Request{Unit: 9, Function: FuncWriteSingleRegister}, "unit 9 write register 0=?"},
	} {
		if got := tc.req.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestExceptionError(t *testing.T) {
	for code, want := range map[byte]string{
		1:  "modbus exception 1 (illegal function)",
		2:  "modbus exception 2 (illegal data address)",
		3:  "modbus exception 3 (illegal data value)",
		4:  "modbus exception 4 (server device failure)",
		5:  "modbus exception 5 (acknowledge)",
		6:  "modbus exception 6 (server device busy)",
		8:  "modbus exception 8 (memory parity error)",
		10: "modbus exception 10 (gateway path unavailable)",
		11: "modbus exception 11 (gateway target device failed to respond)",
		7:  "modbus exception 7 (unknown exception)",
	} {
		e := &ExceptionError{Function: 3, Code: code}
		if e.Error() != want {
			t.Errorf("Error() = %q, want %q", e.Error(), want)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	for err, want := range map[error]string{
		ErrTimeout:    "timeout",
		ErrCRC:        "crc error",
		ErrMalformed:  "malformed response",
		ErrShortFrame: "short frame: malformed response",
	} {
		if err.Error() != want {
			t.Errorf("%q, want %q", err, want)
		}
	}
	if !errors.Is(ErrShortFrame, ErrMalformed) {
		t.Error("ErrShortFrame does not wrap ErrMalformed")
	}
}

func TestParseResponsePDU(t *testing.T) {
	coils := Request{Function: FuncReadCoils, Address: 0x13, Count: 19}
	holding := Request{Function: FuncReadHoldingRegisters, Address: 0x6B, Count: 3}
	input := Request{Function: FuncReadInputRegisters, Address: 8, Count: 1}
	discrete := Request{Function: FuncReadDiscreteInputs, Address: 0xC4, Count: 22}
	coil := Request{Function: FuncWriteSingleCoil, Address: 0xAC, Bits: []bool{true}}
	reg := Request{Function: FuncWriteSingleRegister, Address: 1, Values: []uint16{3}}
	wcoils := Request{Function: FuncWriteMultipleCoils, Address: 0x13, Bits: make([]bool, 10)}
	wregs := Request{Function: FuncWriteMultipleRegisters, Address: 1, Values: []uint16{10, 258}}

	t.Run("good", func(t *testing.T) {
		r, err := ParseResponsePDU(coils, []byte{1, 3, 0xCD, 0x6B, 0x05})
		if err != nil {
			t.Fatal(err)
		}
		want := []bool{true, false, true, true, false, false, true, true, true, true, false, true, false, true, true, false, true, false, true}
		if !slices.Equal(r.Bits, want) || r.Registers != nil {
			t.Fatalf("coils = %v", r)
		}
		r, err = ParseResponsePDU(discrete, []byte{2, 3, 0xAC, 0xDB, 0x35})
		if err != nil || len(r.Bits) != 22 || !r.Bits[2] || r.Bits[0] || !r.Bits[21] {
			t.Fatalf("discrete = %v, %v", r, err)
		}
		r, err = ParseResponsePDU(holding, []byte{3, 6, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64})
		if err != nil || !slices.Equal(r.Registers, []uint16{555, 0, 100}) || r.Bits != nil {
			t.Fatalf("holding = %v, %v", r, err)
		}
		r, err = ParseResponsePDU(input, []byte{4, 2, 0x00, 0x0A})
		if err != nil || !slices.Equal(r.Registers, []uint16{10}) {
			t.Fatalf("input = %v, %v", r, err)
		}
		for _, tc := range []struct {
			req Request
			pdu []byte
		}{
			{coil, []byte{5, 0x00, 0xAC, 0xFF, 0x00}},
			{Request{Function: FuncWriteSingleCoil, Address: 0xAC, Bits: []bool{false}}, []byte{5, 0x00, 0xAC, 0x00, 0x00}},
			{reg, []byte{6, 0x00, 0x01, 0x00, 0x03}},
			{wcoils, []byte{15, 0x00, 0x13, 0x00, 0x0A}},
			{wregs, []byte{16, 0x00, 0x01, 0x00, 0x02}},
		} {
			r, err := ParseResponsePDU(tc.req, tc.pdu)
			if err != nil || r.Registers != nil || r.Bits != nil {
				t.Errorf("%v: %v, %v", tc.req, r, err)
			}
		}
	})

	t.Run("exception", func(t *testing.T) {
		for _, req := range []Request{coils, discrete, holding, input, coil, reg, wcoils, wregs} {
			_, err := ParseResponsePDU(req, []byte{req.Function | 0x80, 2})
			var exc *ExceptionError
			if !errors.As(err, &exc) || exc.Function != req.Function || exc.Code != 2 {
				t.Fatalf("%v: err = %v, want exception 2", req, err)
			}
			if errors.Is(err, ErrMalformed) {
				t.Fatalf("exception wraps ErrMalformed")
			}
		}
	})

	t.Run("malformed", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			req  Request
			pdu  []byte
			msg  string
		}{
			{"empty", holding, nil, "empty pdu"},
			{"wrong function", holding, []byte{4, 6, 0, 0, 0, 0, 0, 0}, "function code 4"},
			{"exception of other function", holding, []byte{0x84, 2}, "function code 132"},
			{"exception too long", holding, []byte{0x83, 2, 0}, "exception pdu of 3 bytes"},
			{"exception truncated", holding, []byte{0x83}, "exception pdu of 1 bytes"},
			{"no byte count", holding, []byte{3}, "no byte count"},
			{"byte count low", holding, []byte{3, 4, 0, 0, 0, 0}, "byte count 4, want 6"},
			{"byte count high", holding, []byte{3, 8, 0, 0, 0, 0, 0, 0, 0, 0}, "byte count 8, want 6"},
			{"truncated registers", holding, []byte{3, 6, 0, 0, 0, 0}, "byte count announces 8"},
			{"trailing bytes", holding, []byte{3, 6, 0, 0, 0, 0, 0, 0, 0}, "byte count announces 8"},
			{"coils byte count", coils, []byte{1, 2, 0xCD, 0x6B}, "byte count 2, want 3"},
			{"coils truncated", coils, []byte{1, 3, 0xCD}, "announces 5"},
			{"write coil wrong address", coil, []byte{5, 0x00, 0xAD, 0xFF, 0x00}, "echoed address 173"},
			{"write coil wrong value", coil, []byte{5, 0x00, 0xAC, 0x00, 0x00}, "echoed value"},
			{"write register wrong value", reg, []byte{6, 0x00, 0x01, 0x00, 0x04}, "echoed value"},
			{"write coils wrong count", wcoils, []byte{15, 0x00, 0x13, 0x00, 0x0B}, "echoed value/quantity 0x000b"},
			{"write registers wrong count", wregs, []byte{16, 0x00, 0x01, 0x00, 0x01}, "want 0x0002"},
			{"write truncated", wregs, []byte{16, 0x00, 0x01, 0x00}, "4 bytes, want 5"},
			{"write long", wregs, []byte{16, 0x00, 0x01, 0x00, 0x02, 0}, "6 bytes, want 5"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := ParseResponsePDU(tc.req, tc.pdu)
				wantErr(t, err, ErrMalformed)
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %q does not mention %q", err, tc.msg)
				}
			})
		}
	})

	t.Run("invalid request", func(t *testing.T) {
		_, err := ParseResponsePDU(Request{Function: FuncWriteSingleCoil}, []byte{5, 0, 0, 0, 0})
		wantErr(t, err, ErrInvalidRequest)
	})
}

func TestRTUFrameLen(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int
	}{
		{nil, 0},
		{[]byte{1}, 0},
		{[]byte{1, 3}, 0},
		{[]byte{1, 3, 6}, 11},
		{[]byte{1, 1, 1}, 6},
		{[]byte{1, 3, 0}, -1},
		{[]byte{1, 3, 252}, -1},
		{[]byte{1, 3, 251}, 256},
		{[]byte{1, 5}, 8},
		{[]byte{1, 16}, 8},
		{[]byte{1, 0x83}, 5},
		{[]byte{1, 0x87}, -1},
		{[]byte{1, 7}, -1},
		{[]byte{1, 0}, -1},
	} {
		if got := rtuFrameLen(tc.in); got != tc.want {
			t.Errorf("rtuFrameLen(% x) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestExamineRTU(t *testing.T) {
	req := readHolding(1, 0, 2)
	good := mustRTU(1, 3, 4, 0, 7, 0, 9)
	foreign := mustRTU(2, 3, 4, 0, 1, 0, 2)
	otherFunc := mustRTU(1, 4, 4, 0, 1, 0, 2)
	badCRC := slices.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xFF
	foreignBad := slices.Clone(foreign)
	foreignBad[len(foreignBad)-1] ^= 0xFF

	type result struct {
		step rtuStep
		n    int
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want result
		err  error
	}{
		{"need more", good[:5], result{rtuNeedMore, 0}, nil},
		{"good", good, result{rtuDone, len(good)}, nil},
		{"good with trailing", append(slices.Clone(good), 0xFF), result{rtuDone, len(good)}, nil},
		{"foreign unit", foreign, result{rtuDiscard, len(foreign)}, nil},
		{"other function", otherFunc, result{rtuDiscard, len(otherFunc)}, nil},
		{"bad crc", badCRC, result{rtuDone, len(badCRC)}, ErrCRC},
		{"foreign bad crc", foreignBad, result{rtuDiscard, 1}, nil},
		{"garbage", []byte{0x55, 0x99, 0x01}, result{rtuDiscard, 1}, nil},
		{"exception", mustRTU(1, 0x83, 2), result{rtuDone, 5}, &ExceptionError{}},
		{"wrong byte count", mustRTU(1, 3, 2, 0, 7), result{rtuDone, 7}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, n, resp, err := examineRTU(req, tc.in)
			if (result{step, n}) != tc.want {
				t.Fatalf("examineRTU = %v %d, want %v", step, n, tc.want)
			}
			switch target := tc.err.(type) {
			case nil:
				if err != nil {
					t.Fatal(err)
				}
				if step == rtuDone && !slices.Equal(resp.Registers, []uint16{7, 9}) {
					t.Fatalf("registers %v", resp.Registers)
				}
			case *ExceptionError:
				if !errors.As(err, &target) || target.Code != 2 {
					t.Fatalf("err = %v, want exception 2", err)
				}
			default:
				wantErr(t, err, tc.err)
			}
		})
	}
}

// ExampleRequest_AppendPDU shows a request's RTU frame.
func ExampleRequest_AppendPDU() {
	req := Request{Unit: 1, Function: FuncReadHoldingRegisters, Address: 0, Count: 10}
	pdu, err := req.AppendPDU(nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("% X\n", AppendRTU(nil, req.Unit, pdu))
	fmt.Println(req)
	// Output:
	// 01 03 00 00 00 0A C5 CD
	// unit 1 read holding 0+10
}
