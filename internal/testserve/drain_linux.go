//go:build linux

package testserve

import (
	"net"
	"syscall"
	"unsafe"
)

// unsent reports how many bytes written to c the peer has not acknowledged
// yet (SIOCOUTQ), so a connection reset can wait until the peer has every
// byte that was sent.
func unsent(c *net.TCPConn) (int, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int(n), true
}
