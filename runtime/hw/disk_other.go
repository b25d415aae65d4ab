//go:build !(linux || darwin || freebsd)

package hw

// statDisk reports nothing where statfs is not wired up.
func statDisk(dir string) (free, total int64) { return 0, 0 }
