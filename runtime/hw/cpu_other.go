//go:build !linux

package hw

// usableCPUs returns nil (all CPUs) where there is no affinity mask to read.
func usableCPUs() map[int]bool { return nil }
