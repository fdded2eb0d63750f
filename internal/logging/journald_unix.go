//go:build unix

package logging

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// UnderJournald reports whether standard error is connected to the systemd
// journal: systemd then sets JOURNAL_STREAM to the device and inode numbers
// of that stream, "dev:inode", and they match those of file descriptor 2.
// A JOURNAL_STREAM inherited by a process whose standard error was
// redirected elsewhere does not match. (INVOCATION_ID only says the process
// runs under systemd, not where its output goes.)
func UnderJournald() bool {
	return underJournald(os.Getenv("JOURNAL_STREAM"), os.Stderr)
}

// underJournald reports whether env, a JOURNAL_STREAM value, names f.
func underJournald(env string, f *os.File) bool {
	devS, inoS, ok := strings.Cut(env, ":")
	if !ok || f == nil {
		return false
	}
	dev, err := strconv.ParseUint(devS, 10, 64)
	if err != nil {
		return false
	}
	ino, err := strconv.ParseUint(inoS, 10, 64)
	if err != nil {
		return false
	}
	// File.Stat is fstat(2) on the descriptor (File.Fd would switch it to
	// blocking mode).
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
