//go:build !linux

package fetch

import "os"

// allocate gives f its final size (a sparse file where supported).
func allocate(f *os.File, size int64) error { return f.Truncate(size) }

// datasync flushes f to stable storage.
func datasync(f *os.File) error { return f.Sync() }
