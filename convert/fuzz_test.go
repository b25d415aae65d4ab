package convert

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are the golden files' headers (with as many data bytes as fit
// the fuzzer's taste: none, so the offsets fail) plus small valid files.
func fuzzSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, p := range []string{
		"../testdata/golden/tiny/model-00000-of-00001.safetensors",
		"../testdata/golden/tiny/model-00001-of-00001.safetensors",
		"../testdata/golden/tiny/original/model.safetensors",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		n := binary.LittleEndian.Uint64(b[:8])
		seeds = append(seeds, b[:8+n])
	}
	seeds = append(seeds,
		stFile("{}", nil),
		stFile(hdr(`"__metadata__":{"format":"pt"}`, tensorJSON("a", "BF16", "[2,2]", 0, 8), tensorJSON("b", "U8", "[3,1]", 8, 11)), make([]byte, 11)),
		stFile(hdr(tensorJSON("s", "F32", "[]", 0, 4), tensorJSON("e", "F16", "[0]", 4, 4)), []byte{1, 2, 3, 4}),
		stFile(hdr(tensorJSON("blocks", "U8", "[1,2,1,16]", 0, 32), tensorJSON("scales", "U8", "[1,2,1]", 32, 34)), make([]byte, 34)),
	)
	return seeds
}

// FuzzOpenFile: OpenFile never panics on any file, and whatever it accepts
// is a file whose tensors tile the data section exactly.
func FuzzOpenFile(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	dir := f.TempDir() // one directory per worker: t.TempDir per input is slow
	f.Fuzz(func(t *testing.T, b []byte) {
		fh, err := os.CreateTemp(dir, "*.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		p := fh.Name()
		defer os.Remove(p)
		_, err = fh.Write(b)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		sf, err := OpenFile(p)
		if err != nil {
			return
		}
		defer sf.Close()
		checkTiling(t, sf, b)
	})
}

// checkTiling asserts the invariants of an accepted file.
func checkTiling(t *testing.T, sf *File, b []byte) {
	t.Helper()
	hlen := binary.LittleEndian.Uint64(b[:8])
	if hlen > MaxHeaderSize || hlen > uint64(len(b)-8) {
		t.Fatalf("accepted header length %d for a %d-byte file", hlen, len(b))
	}
	at := int64(8 + hlen)
	seen := map[string]bool{}
	for _, ti := range sf.Tensors {
		if ti.Name == "" || ti.Name == "__metadata__" || seen[ti.Name] {
			t.Fatalf("bad or repeated name %q", ti.Name)
		}
		seen[ti.Name] = true
		es, ok := DTypeSize[ti.DType]
		if !ok {
			t.Fatalf("%s: accepted dtype %q", ti.Name, ti.DType)
		}
		n := int64(1)
		for _, d := range ti.Shape {
			if d < 0 {
				t.Fatalf("%s: negative dim in %v", ti.Name, ti.Shape)
			}
			n *= d
		}
		if n != ti.Elements() || n*es != ti.Size || ti.Size < 0 {
			t.Fatalf("%s: %v × %s is not %d bytes", ti.Name, ti.Shape, ti.DType, ti.Size)
		}
		if ti.Start != at {
			t.Fatalf("%s starts at %d, the previous tensor ends at %d", ti.Name, ti.Start, at)
		}
		v := sf.Bytes(ti)
		if int64(len(v)) != ti.Size || (ti.Size > 0 && v[0] != b[ti.Start]) {
			t.Fatalf("%s: view does not match the file", ti.Name)
		}
		at += ti.Size
	}
	if at != int64(len(b)) {
		t.Fatalf("tensors end at %d, the file has %d bytes", at, len(b))
	}
}

func TestFuzzSeedsValid(t *testing.T) {
	// The valid seeds must pass (so the fuzzer starts from the accepting path).
	seeds := fuzzSeeds(t)
	for i, s := range seeds[3:] {
		p := filepath.Join(t.TempDir(), "f.safetensors")
		os.WriteFile(p, s, 0o644)
		sf, err := OpenFile(p)
		if err != nil {
			t.Fatalf("seed %d: %v", i+3, err)
		}
		checkTiling(t, sf, s)
		sf.Close()
	}
}
