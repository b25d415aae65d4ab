package fetch

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// allocate reserves size bytes for f (fallocate), so a full disk fails now
// rather than in the middle of a download, and the file does not fragment.
// Filesystems without fallocate get a sparse file of the right size.
func allocate(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return f.Truncate(size)
}

// datasync flushes f's data (not its metadata) to stable storage.
func datasync(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
