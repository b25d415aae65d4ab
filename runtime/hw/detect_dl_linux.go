//go:build linux && (amd64 || arm64)

package hw

import (
	"os"
	"strings"

	"github.com/ebitengine/purego"
)

// library is a shared library opened with dlopen (through purego, no cgo).
type library struct {
	name   string
	handle uintptr
}

// openLibrary dlopens name, a path or a soname for the loader to search.
// On failure, missing reports that the file is not there at all, as opposed
// to there and unloadable.
func openLibrary(name string) (lib *library, missing bool, err error) {
	h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		if strings.ContainsRune(name, '/') { // a path: the loader does not search
			_, serr := os.Stat(name)
			missing = os.IsNotExist(serr)
		} else {
			missing = strings.Contains(err.Error(), "No such file or directory")
		}
		return nil, missing, err
	}
	return &library{name: name, handle: h}, false, nil
}

// bind points each function variable in fns (name → pointer to a func
// variable) at the library's symbol of that name. A symbol the library
// lacks leaves its variable nil, for the caller to report.
func (l *library) bind(fns map[string]any) {
	for name, fptr := range fns {
		sym, err := purego.Dlsym(l.handle, name)
		if err != nil || sym == 0 {
			continue
		}
		purego.RegisterFunc(fptr, sym)
	}
}
