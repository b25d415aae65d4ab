package fetch

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFetch downloads 2 × 64 MiB from an in-memory source into a fresh
// cache on disk: ranged parts, writes, prefix hashing, journal, publish.
// The MB/s it reports is the engine's ceiling on this machine.
func BenchmarkFetch(b *testing.B) {
	m, src := fixture(b,
		spec{"model-00001-of-00002.safetensors", 64 << 20, withSHA256},
		spec{"model-00002-of-00002.safetensors", 64 << 20, withSHA256},
	)
	src.chunk = 64 << 10
	for _, conns := range []int{4, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			e := New(Options{Connections: conns})
			b.SetBytes(m.TotalSize())
			for b.Loop() {
				b.StopTimer()
				s := newStore(b)
				mm := copyManifest(m)
				b.StartTimer()
				if err := e.Fetch(context.Background(), src, mm, s, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(s.Root)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkPrefixHash compares the two ways the engine could hash a file as
// it lands: reading the written prefix back from the (page-cached) partial
// file, as it does, or hashing the bytes in memory.
func BenchmarkPrefixHash(b *testing.B) {
	const size = 64 << 20
	data := content("hash", size)
	path := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, defaultBufSize)
	b.Run("readat", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			h := sha256.New()
			for off := int64(0); off < size; off += int64(len(buf)) {
				n, _ := f.ReadAt(buf, off)
				h.Write(buf[:n])
			}
			h.Sum(nil)
		}
	})
	b.Run("memory", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			h := sha256.New()
			for off := 0; off < size; off += len(buf) {
				h.Write(data[off : off+len(buf)])
			}
			h.Sum(nil)
		}
	})
}
