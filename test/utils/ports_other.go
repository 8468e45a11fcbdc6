//go:build !unix

package utils

import (
	"errors"
	"os"
)

// errReserved means another process holds the port's lock file.
var errReserved = errors.New("reserved by another process")

// reserve creates the lock file; without flock, processes running at the
// same time are not kept apart (Rapport's tests run on Linux).
func reserve(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
}
