//go:build linux || darwin || freebsd

package hw

import "golang.org/x/sys/unix"

// statDisk returns the bytes available to unprivileged users and the size
// of the filesystem holding dir; zeros when statfs fails.
func statDisk(dir string) (free, total int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	bsize := int64(st.Bsize)
	return int64(st.Bavail) * bsize, int64(st.Blocks) * bsize
}
