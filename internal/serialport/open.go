package serialport

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.bug.st/serial"
)

// Port is an open serial port as go.bug.st/serial gives it. Read returns
// (0, nil) when the read timeout (SetReadTimeout) expires: not an error, not
// EOF. A pulled USB adapter makes Read fail with a PortClosed error (and
// Write with EIO).
type Port interface {
	io.ReadWriteCloser
	SetReadTimeout(t time.Duration) error
	ResetInputBuffer() error
}

// maxSelectFD is the first file descriptor number go.bug.st/serial cannot
// handle: its reads use select(2) with a fixed-size fd_set and panic for a
// descriptor >= 1024 (go.bug.st/serial issue #128).
const maxSelectFD = 1024

// procFDDir lists the process's open file descriptors (Linux).
const procFDDir = "/proc/self/fd"

// Open opens the serial port at path with go.bug.st/serial in raw
// mode with the given settings: baud, dataBits (5..8), parity 'N', 'E' or
// 'O' (also 'M' mark and 'S' space) and stopBits (1 or 2).
//
// go.bug.st/serial panics in Read when the port's file descriptor, or that
// of the pipe it opens with it, is >= 1024. Open guards against it:
// after opening it finds the new descriptors in /proc/self/fd and, when one
// is >= 1024, closes the port and returns an error instead of a Port that
// would panic later. Where /proc/self/fd cannot be read the guard is
// skipped.
func Open(path string, baud, dataBits int, parity byte, stopBits int) (Port, error) {
	mode := &serial.Mode{BaudRate: baud, DataBits: dataBits}
	switch parity {
	case 'N', 'n', 0:
		mode.Parity = serial.NoParity
	case 'E', 'e':
		mode.Parity = serial.EvenParity
	case 'O', 'o':
		mode.Parity = serial.OddParity
	case 'M', 'm':
		mode.Parity = serial.MarkParity
	case 'S', 's':
		mode.Parity = serial.SpaceParity
	default:
		return nil, fmt.Errorf("open serial %s: invalid parity %q", path, parity)
	}
	switch stopBits {
	case 1:
		mode.StopBits = serial.OneStopBit
	case 2:
		mode.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("open serial %s: invalid stop bits %d", path, stopBits)
	}
	if dataBits < 5 || dataBits > 8 {
		return nil, fmt.Errorf("open serial %s: invalid data bits %d", path, dataBits)
	}
	if baud <= 0 {
		return nil, fmt.Errorf("open serial %s: invalid baud rate %d", path, baud)
	}

	before, guard := listFDs()
	p, err := serial.Open(path, mode)
	if err != nil {
		return nil, fmt.Errorf("open serial %s: %w", path, err)
	}
	if !guard {
		return p, nil
	}
	if fd := highestNewFD(path, before); fd >= maxSelectFD {
		p.Close()
		return nil, fmt.Errorf("open serial %s: serial port fd %d >= %d: too many open files for go.bug.st/serial", path, fd, maxSelectFD)
	}
	return p, nil
}

// listFDs returns the process's open descriptors and their link targets;
// ok is false when /proc/self/fd cannot be read.
func listFDs() (fds map[int]string, ok bool) {
	entries, err := os.ReadDir(procFDDir)
	if err != nil {
		return nil, false
	}
	fds = make(map[int]string, len(entries))
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(procFDDir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile (e.g. ReadDir's own descriptor)
		}
		fds[fd] = target
	}
	return fds, true
}

// highestNewFD returns the highest descriptor opened since before (new, or
// reused for another file) that refers to the file at path, or is a pipe
// (go.bug.st/serial opens one per port to interrupt reads). If no new
// descriptor refers to path, it conservatively returns the highest new
// descriptor of any kind. It returns -1 when there is none.
func highestNewFD(path string, before map[int]string) int {
	after, ok := listFDs()
	if !ok {
		return -1
	}
	want, err := os.Stat(path)
	if err != nil {
		want = nil
	}
	port, pipe, other := -1, -1, -1
	for fd, target := range after {
		if old, seen := before[fd]; seen && old == target {
			continue
		}
		switch {
		case strings.HasPrefix(target, "pipe:"):
			pipe = max(pipe, fd)
		case want != nil && sameFile(want, procFDDir+"/"+strconv.Itoa(fd)):
			port = max(port, fd)
		default:
			other = max(other, fd)
		}
	}
	if port < 0 {
		return max(pipe, other)
	}
	return max(port, pipe)
}

// sameFile reports whether name refers to the same file as fi.
func sameFile(fi os.FileInfo, name string) bool {
	st, err := os.Stat(name)
	return err == nil && os.SameFile(fi, st)
}
