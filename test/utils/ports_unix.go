//go:build unix

package utils

import (
	"errors"
	"os"
	"syscall"
)

// errReserved means another process holds the port's lock file.
var errReserved = errors.New("reserved by another process")

// reserve takes an exclusive lock on path without waiting. The lock lasts
// as long as the returned file stays open, and the kernel releases it when
// the process ends, however it ends.
func reserve(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errReserved
		}
		return nil, err
	}
	return f, nil
}
