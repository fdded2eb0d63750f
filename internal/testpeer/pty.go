package testpeer

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// PTYPair is two linked pseudo terminals made by socat, a serial line for
// tests: what is written to one end is read from the other. A and B are
// symbolic links to the two /dev/pts devices.
type PTYPair struct {
	A, B string

	t   testing.TB
	dir string
	cmd *exec.Cmd
}

// StartPTYPair starts socat; it is stopped when the test ends. A missing
// socat fails the test (apt-get install socat).
func StartPTYPair(t testing.TB) *PTYPair {
	t.Helper()
	dir := t.TempDir()
	p := &PTYPair{A: filepath.Join(dir, "a"), B: filepath.Join(dir, "b"), t: t, dir: dir}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start (re)creates the pair under the same link names, as when a USB
// serial adapter is plugged in again.
func (p *PTYPair) Start() {
	p.t.Helper()
	if p.cmd != nil {
		return
	}
	socat := Bin(p.t, "socat")
	logf, err := os.CreateTemp(p.dir, "socat-*.log")
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(socat, "-d", "-d", "pty,raw,echo=0,link="+p.A, "pty,raw,echo=0,link="+p.B)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start socat: %v", err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ea := os.Stat(p.A)
		_, eb := os.Stat(p.B)
		if ea == nil && eb == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			p.t.Fatalf("socat did not create %s and %s in 5s: %s", p.A, p.B, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop kills socat: both ends vanish, as when a USB serial adapter is
// pulled out.
func (p *PTYPair) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
	_ = os.Remove(p.A)
	_ = os.Remove(p.B)
}
