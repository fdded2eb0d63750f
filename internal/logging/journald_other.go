//go:build !unix

package logging

import "os"

// UnderJournald reports whether standard error is connected to the systemd
// journal; never, on this system.
func UnderJournald() bool { return false }

func underJournald(string, *os.File) bool { return false }
