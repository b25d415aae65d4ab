package databricks

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gptoss/gptoss/internal/dbxtest"
)

const benchSize = 256 << 20

// BenchmarkPut uploads 256 MiB to the test workspace on loopback: one
// single-shot PUT, and the multipart path (64 MiB parts, 4 in flight).
func BenchmarkPut(b *testing.B) {
	data := randBytes(benchSize)
	for _, bc := range []struct {
		name string
		part int64
	}{{"single", benchSize + 1}, {"multipart-64MiB", 64 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			s := dbxtest.Start(b, dbxtest.Options{})
			s.AddVolume("main", "ml", "models")
			v, _ := NewVolume(Location{Catalog: "main", Schema: "ml", Volume: "models"}, Options{Host: s.URL, Token: "t", PartSize: bc.part, Concurrency: 4})
			b.SetBytes(benchSize)
			for b.Loop() {
				if err := v.Put(context.Background(), "bench.bin", bytes.NewReader(data), benchSize, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead reads 256 MiB as 8 parallel ranged GETs, as the transfer
// engine does.
func BenchmarkRead(b *testing.B) {
	s := dbxtest.Start(b, dbxtest.Options{})
	vol := s.AddVolume("main", "ml", "models")
	if err := os.WriteFile(filepath.Join(vol, "bench.bin"), randBytes(benchSize), 0o644); err != nil {
		b.Fatal(err)
	}
	v, _ := NewVolume(Location{Catalog: "main", Schema: "ml", Volume: "models"}, Options{Host: s.URL, Token: "t"})
	const conns = 8
	b.SetBytes(benchSize)
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rc, err := v.Open(context.Background(), "bench.bin", int64(i)*benchSize/conns, benchSize/conns)
				if err != nil {
					b.Error(err)
					return
				}
				defer rc.Close()
				if n, err := io.Copy(io.Discard, rc); err != nil || n != benchSize/conns {
					b.Error(n, err)
				}
			}()
		}
		wg.Wait()
	}
}
