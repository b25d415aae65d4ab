package convert

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func TestGoldenBothLayouts(t *testing.T) {
	for _, dir := range []string{"../testdata/golden/tiny", "../testdata/golden/tiny/original"} {
		c, err := OpenCheckpoint(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(c.Names()) == 0 {
			t.Fatalf("%s: no tensors", dir)
		}
		for _, n := range c.Names() {
			ti, _ := c.Tensor(n)
			if int64(len(c.Bytes(ti))) != ti.Size {
				t.Fatalf("%s: bad view", n)
			}
		}
		t.Logf("%s: %d tensors", dir, len(c.Names()))
		c.Close()
	}
}

// stFile assembles a safetensors file: the 8-byte little-endian length of
// header, header, then data.
func stFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// tensorJSON is one header entry.
func tensorJSON(name, dtype, shape string, begin, end int64) string {
	return fmt.Sprintf(`%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, dtype, shape, begin, end)
}

func hdr(entries ...string) string { return "{" + strings.Join(entries, ",") + "}" }

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantFormat asserts err is ErrFormat and its message holds every substring.
func wantFormat(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want ErrFormat with %q", subs)
	}
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("error %v is not ErrFormat", err)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func TestOpenFileHostile(t *testing.T) {
	lenOnly := func(n uint64, rest int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, n)
		return append(b, make([]byte, rest)...)
	}
	cases := []struct {
		name string
		file []byte
		want []string
	}{
		{"empty", nil, []string{"0 bytes, shorter than the 8-byte header length"}},
		{"short", []byte{1, 0, 0}, []string{"3 bytes, shorter than the 8-byte header length"}},
		{"header past EOF", lenOnly(1000, 10), []string{"header length 1000 runs past the end of the file (18 bytes)"}},
		{"header length huge", lenOnly(1<<63, 10), []string{fmt.Sprintf("header length %d exceeds the %d-byte limit", uint64(1<<63), MaxHeaderSize)}},
		{"header over limit", lenOnly(MaxHeaderSize+1, 10), []string{fmt.Sprintf("header length %d exceeds the %d-byte limit", MaxHeaderSize+1, MaxHeaderSize)}},
		{"not JSON", stFile("{nope", nil), []string{"header is not a JSON object"}},
		{"JSON array", stFile("[]", nil), []string{"header is not a JSON object"}},
		{"JSON null", stFile("null", nil), []string{"header is not a JSON object"}},
		{"empty header", stFile("", nil), []string{"header is not a JSON object"}},
		{"trailing JSON", stFile("{} {}", nil), []string{"header is not a JSON object: data after the closing brace"}},
		{"truncated JSON", stFile(`{"a":{"dtype":"U8"`, nil), []string{"header is not a JSON object"}},
		{"duplicate name", stFile(hdr(tensorJSON("a", "U8", "[4]", 0, 4), tensorJSON("a", "BF16", "[2]", 0, 4)), make([]byte, 4)),
			[]string{`header names "a" more than once`}},
		{"duplicate field", stFile(`{"w":{"dtype":"U8","shape":[2],"dtype":"BF16","data_offsets":[0,2]}}`, make([]byte, 2)),
			[]string{`tensor "w": field "dtype" appears more than once`}},
		{"unknown dtype", stFile(hdr(tensorJSON("w", "F7", "[4]", 0, 4)), make([]byte, 4)), []string{`tensor "w": unknown dtype "F7"`}},
		{"lower-case dtype", stFile(hdr(tensorJSON("w", "bf16", "[2]", 0, 4)), make([]byte, 4)), []string{`tensor "w": unknown dtype "bf16"`}},
		{"unknown field", stFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}`, make([]byte, 1)),
			[]string{`tensor "w"`, `unknown field "extra"`}},
		{"tensor not an object", stFile(`{"w":[1,2]}`, nil), []string{`tensor "w"`}},
		{"no data_offsets", stFile(`{"w":{"dtype":"U8","shape":[1]}}`, make([]byte, 1)), []string{`tensor "w": no data_offsets`}},
		{"three offsets", stFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, make([]byte, 1)), []string{`tensor "w": data_offsets [0 1 2] is not [begin, end]`}},
		{"one offset", stFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[1]}}`, make([]byte, 1)), []string{`tensor "w": data_offsets [1] is not [begin, end]`}},
		{"empty name", stFile(hdr(tensorJSON("", "U8", "[1]", 0, 1)), make([]byte, 1)), []string{"a tensor has an empty name"}},
		{"bad metadata", stFile(`{"__metadata__":{"format":1}}`, nil), []string{"__metadata__ is not a string map"}},
		{"shape/size mismatch", stFile(hdr(tensorJSON("w", "BF16", "[3]", 0, 4)), make([]byte, 4)),
			[]string{`tensor "w": shape [3] × BF16 is 6 bytes, data_offsets span 4`}},
		{"shape/size mismatch 2d", stFile(hdr(tensorJSON("w", "F32", "[2,3]", 0, 20)), make([]byte, 20)),
			[]string{`tensor "w": shape [2 3] × F32 is 24 bytes, data_offsets span 20`}},
		{"end outside the file", stFile(hdr(tensorJSON("w", "U8", "[16]", 0, 16)), make([]byte, 8)),
			[]string{`tensor "w": data_offsets [0, 16] outside the 8 data bytes`}},
		{"begin outside the file", stFile(hdr(tensorJSON("w", "U8", "[0]", 9, 9)), make([]byte, 8)),
			[]string{`tensor "w": data_offsets [9, 9] outside the 8 data bytes`}},
		{"negative begin", stFile(hdr(tensorJSON("w", "U8", "[4]", -4, 0)), make([]byte, 8)),
			[]string{`tensor "w": data_offsets [-4, 0] outside the 8 data bytes`}},
		{"end before begin", stFile(hdr(tensorJSON("w", "U8", "[0]", 4, 2)), make([]byte, 8)),
			[]string{`tensor "w": data_offsets [4, 2] outside the 8 data bytes`}},
		{"huge end", stFile(hdr(tensorJSON("w", "U8", "[1]", 0, 1<<62)), make([]byte, 8)),
			[]string{`tensor "w": data_offsets [0, 4611686018427387904] outside the 8 data bytes`}},
		{"offset beyond int64", stFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,99999999999999999999]}}`, make([]byte, 1)),
			[]string{`tensor "w"`}},
		{"overlap", stFile(hdr(tensorJSON("a", "U8", "[8]", 0, 8), tensorJSON("b", "U8", "[8]", 4, 12)), make([]byte, 12)),
			[]string{`tensor "b" overlaps the tensor before it`}},
		{"same span twice", stFile(hdr(tensorJSON("a", "U8", "[4]", 0, 4), tensorJSON("b", "U8", "[4]", 0, 4)), make([]byte, 4)),
			[]string{`tensor "b" overlaps the tensor before it`}},
		{"gap", stFile(hdr(tensorJSON("a", "U8", "[4]", 0, 4), tensorJSON("b", "U8", "[4]", 8, 12)), make([]byte, 12)),
			[]string{`4 unclaimed bytes before tensor "b"`}},
		{"gap at the start", stFile(hdr(tensorJSON("a", "U8", "[4]", 2, 6)), make([]byte, 6)),
			[]string{`2 unclaimed bytes before tensor "a"`}},
		{"trailing bytes", stFile(hdr(tensorJSON("a", "U8", "[4]", 0, 4)), make([]byte, 7)),
			[]string{"3 bytes after the last tensor belong to no tensor"}},
		{"data but no tensors", stFile("{}", make([]byte, 5)), []string{"5 bytes after the last tensor belong to no tensor"}},
		{"negative dim", stFile(hdr(tensorJSON("w", "U8", "[-1,4]", 0, 4)), make([]byte, 4)), []string{`tensor "w": bad shape [-1 4]`}},
		{"negative dims cancel", stFile(hdr(tensorJSON("w", "U8", "[-2,-2]", 0, 4)), make([]byte, 4)), []string{`tensor "w": bad shape [-2 -2]`}},
		{"huge dims", stFile(hdr(tensorJSON("w", "BF16", "[1099511627776,1099511627776]", 0, 0)), nil),
			[]string{`tensor "w": bad shape [1099511627776 1099511627776]`}},
		// 2^32 · 2^32 · 2 wraps to 0 in int64 arithmetic: it must not match an empty span.
		{"dims overflow to zero", stFile(hdr(tensorJSON("w", "U8", "[4294967296,4294967296,2]", 0, 0)), nil),
			[]string{`tensor "w": bad shape [4294967296 4294967296 2]`}},
		{"dim beyond int64", stFile(`{"w":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,0]}}`, nil), []string{`tensor "w"`}},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, dir, fmt.Sprintf("%d.safetensors", i), c.file)
			f, err := OpenFile(p)
			if err == nil {
				f.Close()
			}
			wantFormat(t, err, c.want...)
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestOpenFileValidEdgeCases(t *testing.T) {
	dir := t.TempDir()
	// Header padded with spaces (as writers do to align the data), a scalar,
	// an empty tensor sharing its offset, metadata, entries out of order.
	h := hdr(`"__metadata__":{"format":"pt"}`,
		tensorJSON("b", "BF16", "[2,2]", 2, 10),
		tensorJSON("a", "BF16", "[]", 0, 2),
		tensorJSON("empty", "F32", "[0,7]", 10, 10),
		tensorJSON("c", "E8M0", "[3]", 10, 13))
	for len(h)%8 != 0 {
		h += " "
	}
	p := writeFile(t, dir, "ok.safetensors", stFile(h, []byte("0123456789abc")))
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for _, ti := range f.Tensors {
		names = append(names, ti.Name)
		if ti.File != "ok.safetensors" {
			t.Errorf("%s: File = %q", ti.Name, ti.File)
		}
	}
	if got := strings.Join(names, ","); got != "a,b,empty,c" {
		t.Errorf("tensor order %s", got)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	base := int64(8 + len(h))
	if a := f.Tensors[0]; a.Start != base || a.Size != 2 || string(f.Bytes(a)) != "01" || a.Elements() != 1 {
		t.Errorf("scalar: %+v %q", a, f.Bytes(a))
	}
	if b := f.Tensors[1]; string(f.Bytes(b)) != "23456789" || b.Elements() != 4 {
		t.Errorf("b: %+v %q", b, f.Bytes(b))
	}
	if c := f.Tensors[3]; string(f.Bytes(c)) != "abc" {
		t.Errorf("c: %q", f.Bytes(c))
	}
	if e := f.Tensors[2]; e.Size != 0 || len(f.Bytes(e)) != 0 || e.Elements() != 0 {
		t.Errorf("empty: %+v", e)
	}

	// No tensors at all is a valid (empty) file.
	p = writeFile(t, dir, "none.safetensors", stFile("{}", nil))
	g, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Tensors) != 0 {
		t.Errorf("tensors: %v", g.Tensors)
	}
	g.Close()
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBytesZeroCopy(t *testing.T) {
	c, err := OpenCheckpoint("../testdata/golden/tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range c.Names() {
		ti, _ := c.Tensor(name)
		f := c.Files[ti.File]
		a, b := c.Bytes(ti), f.Bytes(ti)
		if len(a) != int(ti.Size) || len(b) != int(ti.Size) || ti.Size == 0 {
			t.Fatalf("%s: views of %d and %d bytes, tensor has %d", name, len(a), len(b), ti.Size)
		}
		// The same backing array (no copy), inside the one mapping of the file.
		if unsafe.SliceData(a) != unsafe.SliceData(b) {
			t.Fatalf("%s: two calls returned different backing arrays", name)
		}
		if unsafe.SliceData(a) != &f.data[ti.Start] || cap(a) != len(f.data)-int(ti.Start) {
			t.Fatalf("%s: Bytes is not a view into the mapping", name)
		}
		raw, err := os.ReadFile(filepath.Join(c.Dir, ti.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, raw[ti.Start:ti.Start+ti.Size]) {
			t.Fatalf("%s: view differs from the file's bytes", name)
		}
	}
}

// writeCheckpoint writes shards (name → header entries, each tensor U8 with
// 4 bytes at consecutive offsets) and, when index is not empty, the index.
func writeCheckpoint(t *testing.T, shards map[string][]string, index string) string {
	t.Helper()
	dir := t.TempDir()
	for name, tensors := range shards {
		var es []string
		for i, tn := range tensors {
			es = append(es, tensorJSON(tn, "U8", "[4]", int64(4*i), int64(4*i+4)))
		}
		writeFile(t, dir, name, stFile(hdr(es...), make([]byte, 4*len(tensors))))
	}
	if index != "" {
		writeFile(t, dir, "model.safetensors.index.json", []byte(index))
	}
	return dir
}

func TestOpenCheckpointHostile(t *testing.T) {
	two := map[string][]string{"a.safetensors": {"x", "y"}, "b.safetensors": {"z"}}
	cases := []struct {
		name   string
		shards map[string][]string
		index  string
		want   []string
	}{
		{"duplicate across shards, no index", map[string][]string{"a.safetensors": {"x", "y"}, "b.safetensors": {"y"}}, "",
			[]string{`tensor "y" is in more than one shard`}},
		{"duplicate across shards, index", map[string][]string{"a.safetensors": {"x", "y"}, "b.safetensors": {"y"}},
			`{"weight_map":{"x":"a.safetensors","y":"a.safetensors","z":"b.safetensors"}}`,
			[]string{`tensor "y" is in more than one shard`}},
		{"index names ../x", two, `{"weight_map":{"x":"../x","y":"a.safetensors","z":"b.safetensors"}}`,
			[]string{`index names shard "../x" outside the checkpoint directory`}},
		{"index names a subdirectory", two, `{"weight_map":{"x":"sub/a.safetensors"}}`,
			[]string{`index names shard "sub/a.safetensors" outside the checkpoint directory`}},
		{"index names an absolute path", two, `{"weight_map":{"x":"/etc/passwd"}}`,
			[]string{`index names shard "/etc/passwd" outside the checkpoint directory`}},
		{"index names ..", two, `{"weight_map":{"x":".."}}`, []string{`index names shard ".." outside the checkpoint directory`}},
		{"index names an empty shard", two, `{"weight_map":{"x":""}}`, []string{`index names shard "" outside the checkpoint directory`}},
		{"index entry for a missing tensor", two,
			`{"weight_map":{"x":"a.safetensors","y":"a.safetensors","z":"b.safetensors","ghost":"b.safetensors"}}`,
			[]string{`the index puts tensor "ghost" in b.safetensors, which does not have it`}},
		{"tensor in another shard than the index says", two,
			`{"weight_map":{"x":"a.safetensors","y":"b.safetensors","z":"b.safetensors"}}`,
			[]string{`tensor "y" is in a.safetensors but the index says "b.safetensors"`}},
		{"tensor the index does not list", two, `{"weight_map":{"x":"a.safetensors","z":"b.safetensors"}}`,
			[]string{`tensor "y" is in a.safetensors but the index does not list it`}},
		{"index not JSON", two, `{"weight_map":`, []string{"model.safetensors.index.json"}},
		{"index with an empty weight_map", two, `{"weight_map":{}}`, []string{"no safetensors files in"}},
		{"no shards", map[string][]string{}, "", []string{"no safetensors files in"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ck, err := OpenCheckpoint(writeCheckpoint(t, c.shards, c.index))
			if err == nil {
				ck.Close()
			}
			wantFormat(t, err, c.want...)
		})
	}

	// A hostile shard inside a checkpoint is reported with its own message.
	dir := writeCheckpoint(t, two, "")
	writeFile(t, dir, "b.safetensors", stFile(hdr(tensorJSON("z", "Q4", "[4]", 0, 4)), make([]byte, 4)))
	_, err := OpenCheckpoint(dir)
	wantFormat(t, err, "b.safetensors", `tensor "z": unknown dtype "Q4"`)
}

func TestOpenCheckpointValid(t *testing.T) {
	two := map[string][]string{"a.safetensors": {"x", "y"}, "b.safetensors": {"z"}}
	for _, index := range []string{"", `{"metadata":{"total_size":12},"weight_map":{"x":"a.safetensors","y":"a.safetensors","z":"b.safetensors"}}`} {
		dir := writeCheckpoint(t, two, index)
		// Files the index does not name are not part of the checkpoint.
		if index != "" {
			writeFile(t, dir, "stray.safetensors", []byte("not safetensors"))
		}
		c, err := OpenCheckpoint(dir)
		if err != nil {
			t.Fatalf("index %q: %v", index, err)
		}
		if got := strings.Join(c.Names(), ","); got != "x,y,z" {
			t.Errorf("names %s", got)
		}
		if z, ok := c.Tensor("z"); !ok || z.File != "b.safetensors" || len(c.Bytes(z)) != 4 {
			t.Errorf("z: %+v %v", z, ok)
		}
		if _, ok := c.Tensor("w"); ok {
			t.Error("found a tensor that is not there")
		}
		if len(c.Files) != 2 {
			t.Errorf("files: %v", c.Files)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}
