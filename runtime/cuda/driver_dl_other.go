//go:build !(linux && (amd64 || arm64))

package cuda

import "errors"

func bindLibrary(lib string, fns map[string]any) ([]string, error) {
	return nil, errors.New("the CUDA engine runs on linux/amd64 and linux/arm64 only")
}
