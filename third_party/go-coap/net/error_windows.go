//go:build windows
// +build windows

package net

import (
	"errors"
	"syscall"

	"golang.org/x/sys/windows"
)

func IsConnectionBrokenError(err error) bool {
	return errors.Is(err, syscall.WSAECONNRESET) ||
		errors.Is(err, syscall.WSAECONNABORTED)
}

// IsMessageSizeError reports whether a socket operation failed because a datagram exceeded the buffer or network limit.
func IsMessageSizeError(err error) bool {
	return errors.Is(err, windows.WSAEMSGSIZE)
}
