//go:build !(linux && (amd64 || arm64))

package hw

// detectCUDA does nothing where NVIDIA GPU detection is not supported.
func detectCUDA(lib string, m *Machine) string { return "" }
