package ocilayout_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/ocilayout"
)

// A converted layout travels as a referrer of its model and survives adding
// another model; it is copied into a cache checked against its sha256, and
// a blob that lies is never recorded.
func TestConvertedLayoutReferrer(t *testing.T) {
	for _, kind := range []string{"dir", "tar"} {
		t.Run(kind, func(t *testing.T) {
			store, m, _ := cached(t, "org/conv")
			layoutBytes := randBytes("layout", 200<<10+7)
			lh, err := store.PutBlob(layoutBytes)
			if err != nil {
				t.Fatal(err)
			}
			to := filepath.Join(t.TempDir(), "out")
			if kind == "tar" {
				to += ".tar"
			}
			tg, err := ocilayout.NewTarget(to)
			if err != nil {
				t.Fatal(err)
			}
			// Commit refuses a layout whose blob is not there.
			tg.Converted = &ocilayout.Converted{Version: 1, SHA256: lh, Size: int64(len(layoutBytes))}
			if _, err := engine().Mirror(context.Background(), store, m, tg, nil); !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("commit without the layout blob: %v", err)
			}
			f, _ := os.Open(store.BlobPath(lh))
			defer f.Close()
			if err := tg.Put(context.Background(), registry.File{Path: "gpu-layout", SHA256: lh, Size: int64(len(layoutBytes))}, f); err != nil {
				t.Fatal(err)
			}
			if _, err := engine().Mirror(context.Background(), store, m, tg, nil); err != nil {
				t.Fatal(err)
			}
			// Another model added later keeps the first one's layout.
			store2, m2, _ := cached(t, "org/other")
			tg2, err := ocilayout.NewTarget(to)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := engine().Mirror(context.Background(), store2, m2, tg2, nil); err != nil {
				t.Fatal(err)
			}
			src, err := ocilayout.NewSource(to)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := src.Models()
			if err != nil || len(ms) != 2 {
				t.Fatalf("models %v %v", ms, err)
			}
			for _, mm := range ms {
				c, ok, err := src.Converted(mm, 1)
				if err != nil {
					t.Fatal(err)
				}
				if want := mm.Name == "org/conv"; ok != want {
					t.Errorf("%s: converted %v", mm.Name, ok)
					continue
				}
				if ok && (c.SHA256 != lh || c.Size != int64(len(layoutBytes)) || c.Version != 1) {
					t.Errorf("converted %+v", c)
				}
				if _, ok, _ := src.Converted(mm, 2); ok {
					t.Error("a v1 layout found as v2")
				}
			}
			var conv ocilayout.Model
			for _, mm := range ms {
				if mm.Name == "org/conv" {
					conv = mm
				}
			}
			// Into a fresh cache: the blob is checked as it is copied.
			dst, _, _ := cached(t, "org/dst")
			ents, err := dst.List()
			if err != nil || len(ents) == 0 {
				t.Fatalf("list: %v", err)
			}
			c, _, _ := src.Converted(conv, 1)
			r, err := src.Open(context.Background(), registry.File{Path: "gpu-layout", SHA256: c.SHA256, Size: c.Size}, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			err = dst.AddConverted(ents[0].Digest, 1, r, c.SHA256, c.Size)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			if h, ok := dst.Converted(ents[0].Digest, 1); !ok || h != lh {
				t.Errorf("recorded %s %v", h, ok)
			}
			// A lying stream is refused and not recorded.
			bad, _, _ := cached(t, "org/bad")
			bents, _ := bad.List()
			lie := append([]byte(nil), layoutBytes...)
			lie[100] ^= 1
			err = bad.AddConverted(bents[0].Digest, 1, strings.NewReader(string(lie)), lh, int64(len(lie)))
			if !errors.Is(err, registry.ErrDigestMismatch) {
				t.Errorf("lying layout: %v", err)
			}
			if _, ok := bad.Converted(bents[0].Digest, 1); ok || bad.HasBlob(lh, int64(len(lie))) {
				t.Error("a lying layout was published")
			}
		})
	}
}
