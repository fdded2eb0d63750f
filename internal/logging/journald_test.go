//go:build unix

package logging

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func devIno(t *testing.T, f *os.File) (uint64, uint64) {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return uint64(st.Dev), uint64(st.Ino)
}

func TestUnderJournaldFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := os.Create(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dev, ino := devIno(t, f)
	for _, tc := range []struct {
		env  string
		f    *os.File
		want bool
	}{
		{fmt.Sprintf("%d:%d", dev, ino), f, true},
		{fmt.Sprintf("%d:%d", dev, ino), other, false}, // stream redirected elsewhere
		{fmt.Sprintf("%d:%d", dev+1, ino), f, false},
		{fmt.Sprintf("%d:%d", dev, ino+1), f, false},
		{fmt.Sprintf("%d", ino), f, false},
		{fmt.Sprintf("%d:%dx", dev, ino), f, false},
		{fmt.Sprintf(" %d:%d", dev, ino), f, false},
		{"", f, false},
		{fmt.Sprintf("%d:%d", dev, ino), nil, false},
	} {
		if got := underJournald(tc.env, tc.f); got != tc.want {
			t.Errorf("underJournald(%q, %v) = %v, want %v", tc.env, tc.f.Name(), got, tc.want)
		}
	}
	f.Close()
	if underJournald(fmt.Sprintf("%d:%d", dev, ino), f) {
		t.Error("a closed file matched")
	}
}

// TestUnderJournaldEnv runs the real check: JOURNAL_STREAM naming this
// process's standard error, then something else, then unset.
func TestUnderJournaldEnv(t *testing.T) {
	dev, ino := devIno(t, os.Stderr)
	t.Setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", dev, ino))
	if !UnderJournald() {
		t.Error("JOURNAL_STREAM naming stderr: not detected")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", dev, ino+1))
	if UnderJournald() {
		t.Error("JOURNAL_STREAM naming another file: detected")
	}
	os.Unsetenv("JOURNAL_STREAM")
	if UnderJournald() {
		t.Error("INVOCATION_ID alone: detected")
	}
}
