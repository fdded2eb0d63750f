package serialport_test

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/causeway/causeway/internal/serialport"
	"github.com/causeway/causeway/internal/testpeer"
)

func TestOpenSerialInvalidSettings(t *testing.T) {
	pp := testpeer.StartPTYPair(t)
	for _, tc := range []struct {
		baud, data int
		parity     byte
		stop       int
		msg        string
	}{
		{9600, 8, 'X', 1, "invalid parity"},
		{9600, 8, 'N', 3, "invalid stop bits"},
		{9600, 9, 'N', 1, "invalid data bits"},
		{0, 8, 'N', 1, "invalid baud rate"},
	} {
		p, err := serialport.Open(pp.A, tc.baud, tc.data, tc.parity, tc.stop)
		if err == nil {
			p.Close()
			t.Fatalf("%+v: no error", tc)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("err = %q, want %q", err, tc.msg)
		}
	}
	if _, err := serialport.Open(pp.A+".missing", 9600, 8, 'N', 1); err == nil {
		t.Fatal("opening a missing port succeeded")
	}
	p, err := serialport.Open(pp.A, 19200, 8, 'E', 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// go.bug.st/serial panics in Read for a descriptor >= 1024 (issue #128):
// OpenSerial must refuse such a port with an error instead.
func TestOpenSerialFDGuard(t *testing.T) {
	pp := testpeer.StartPTYPair(t)

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 1200 {
		raised := lim
		raised.Cur = min(max(lim.Max, 1200), 4096)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			t.Fatalf("raise RLIMIT_NOFILE from %d: %v", lim.Cur, err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	}

	var files []*os.File
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	for range 1030 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}

	p, err := serialport.Open(pp.A, 9600, 8, 'N', 1)
	if err == nil {
		// Reading would panic inside go.bug.st/serial: fail without it.
		p.Close()
		t.Fatal("OpenSerial returned a port with a descriptor >= 1024")
	}
	if !strings.Contains(err.Error(), ">= 1024: too many open files for go.bug.st/serial") {
		t.Fatalf("err = %v", err)
	}

	// With descriptors below 1024 free again, the port opens and works.
	for _, f := range files {
		f.Close()
	}
	files = nil
	p, err = serialport.Open(pp.A, 9600, 8, 'N', 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SetReadTimeout(0); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Read(make([]byte, 8)); n != 0 || err != nil {
		t.Fatalf("Read = %d, %v; want 0, nil on timeout", n, err)
	}
}
