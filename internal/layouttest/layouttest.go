// Package layouttest gives tests a GPU-ready layout (convert.Layout) of a
// checkpoint, the way the engines load one.
//
// It is apart from internal/fixture because convert's own tests import
// internal/fixture: fixture cannot import convert.
package layouttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/fixture"
)

// Open converts the checkpoint in dir (the HF or the original layout) into
// a layout file under tb.TempDir and opens it; it is closed at cleanup.
func Open(tb testing.TB, dir string) *convert.Layout {
	tb.Helper()
	ck, err := convert.OpenCheckpoint(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer ck.Close()
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "model.layout")
	if _, _, err := convert.WriteLayoutFile(path, ck, cfg, "sha256:test"); err != nil {
		tb.Fatal(err)
	}
	l, err := convert.OpenLayout(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// Tiny is Open of the cached fixture checkpoint (fixture.Tiny: random
// weights, tiny dims).
func Tiny(tb testing.TB) *convert.Layout {
	tb.Helper()
	return Open(tb, fixture.Cached(tb, fixture.Tiny()))
}
