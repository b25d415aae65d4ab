//go:build !linux

package testserve

import "net"

// unsent is not available here: the caller falls back to a short wait.
func unsent(c *net.TCPConn) (int, bool) { return 0, false }
