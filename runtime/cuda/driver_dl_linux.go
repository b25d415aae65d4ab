//go:build linux && (amd64 || arm64)

package cuda

import "github.com/ebitengine/purego"

// bindLibrary dlopens lib and binds each symbol in fns (name → pointer to a
// func variable); it returns the names the library lacks.
func bindLibrary(lib string, fns map[string]any) (missing []string, err error) {
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	for name, fptr := range fns {
		sym, err := purego.Dlsym(h, name)
		if err != nil || sym == 0 {
			missing = append(missing, name)
			continue
		}
		purego.RegisterFunc(fptr, sym)
	}
	return missing, nil
}
