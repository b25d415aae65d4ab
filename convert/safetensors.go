// Package convert reads safetensors checkpoints (memory-mapped, zero-copy)
// and writes the layouts gptoss and other runtimes load.
package convert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrFormat means a checkpoint file is malformed or hostile.
var ErrFormat = errors.New("invalid safetensors")

// MaxHeaderSize bounds the JSON header of a safetensors file (the format
// itself caps it at 100 MB; real gpt-oss headers are under 100 KB).
const MaxHeaderSize = 100 << 20

// DTypeSize gives the element size in bytes of the dtypes gptoss accepts.
var DTypeSize = map[string]int64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "E8M0": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// TensorInfo describes one tensor of a checkpoint.
type TensorInfo struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	File  string  `json:"file"`  // the shard it is in, relative to the checkpoint directory
	Start int64   `json:"start"` // byte offset in the file (absolute, header included)
	Size  int64   `json:"size"`
}

// Elements is the product of the shape.
func (t TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is one memory-mapped safetensors file.
type File struct {
	Path     string
	Tensors  []TensorInfo // sorted by offset
	Metadata map[string]string
	data     []byte
}

// OpenFile maps a safetensors file and validates its header: bounded size,
// valid JSON, known dtypes, shape × dtype = byte span, spans inside the file,
// no overlaps and no gaps (every data byte belongs to exactly one tensor).
func OpenFile(path string) (*File, error) {
	data, err := mapFile(path, 8, func(size int64) error {
		return fmt.Errorf("%w: %s: %d bytes, shorter than the 8-byte header length", ErrFormat, path, size)
	})
	if err != nil {
		return nil, err
	}
	sf := &File{Path: path, data: data}
	if err := sf.parse(filepath.Base(path)); err != nil {
		sf.Close()
		return nil, err
	}
	return sf, nil
}

func (sf *File) parse(name string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrFormat, sf.Path, fmt.Sprintf(format, a...))
	}
	size := int64(len(sf.data))
	hlen := binary.LittleEndian.Uint64(sf.data[:8])
	if hlen > MaxHeaderSize {
		return bad("header length %d exceeds the %d-byte limit", hlen, MaxHeaderSize)
	}
	if int64(hlen) > size-8 {
		return bad("header length %d runs past the end of the file (%d bytes)", hlen, size)
	}
	base := 8 + int64(hlen)
	raw, dup, err := objectEntries(sf.data[8:base])
	if err != nil {
		return bad("header is not a JSON object: %v", err)
	}
	if dup != "" {
		return bad("header names %q more than once", dup)
	}
	for _, e := range raw {
		name, msg := e.name, e.msg
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return bad("__metadata__ is not a string map: %v", err)
			}
			continue
		}
		var h struct {
			DType       string  `json:"dtype"`
			Shape       []int64 `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		if _, dup, err := objectEntries(msg); err == nil && dup != "" {
			return bad("tensor %q: field %q appears more than once", name, dup)
		}
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			return bad("tensor %q: %v", name, err)
		}
		if name == "" {
			return bad("a tensor has an empty name")
		}
		es, ok := DTypeSize[h.DType]
		if !ok {
			return bad("tensor %q: unknown dtype %q", name, h.DType)
		}
		if h.DataOffsets == nil {
			return bad("tensor %q: no data_offsets", name)
		}
		if len(h.DataOffsets) != 2 {
			return bad("tensor %q: data_offsets %v is not [begin, end]", name, h.DataOffsets)
		}
		n := int64(1)
		for _, d := range h.Shape {
			if d < 0 || (d > 0 && n > (1<<50)/d) {
				return bad("tensor %q: bad shape %v", name, h.Shape)
			}
			n *= d
		}
		begin, end := h.DataOffsets[0], h.DataOffsets[1]
		if begin < 0 || end < begin || end > size-base {
			return bad("tensor %q: data_offsets [%d, %d] outside the %d data bytes", name, begin, end, size-base)
		}
		if n*es != end-begin {
			return bad("tensor %q: shape %v × %s is %d bytes, data_offsets span %d", name, h.Shape, h.DType, n*es, end-begin)
		}
		sf.Tensors = append(sf.Tensors, TensorInfo{Name: name, DType: h.DType, Shape: h.Shape, File: name,
			Start: base + begin, Size: end - begin})
	}
	sort.Slice(sf.Tensors, func(i, j int) bool {
		a, b := sf.Tensors[i], sf.Tensors[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.Size != b.Size { // an empty tensor may share its offset with the next one
			return a.Size < b.Size
		}
		return a.Name < b.Name
	})
	at := base
	for i := range sf.Tensors {
		t := &sf.Tensors[i]
		t.File = name
		if t.Start < at {
			return bad("tensor %q overlaps the tensor before it", t.Name)
		}
		if t.Start > at {
			return bad("%d unclaimed bytes before tensor %q", t.Start-at, t.Name)
		}
		at = t.Start + t.Size
	}
	if at != size {
		return bad("%d bytes after the last tensor belong to no tensor", size-at)
	}
	return nil
}

type headerEntry struct {
	name string
	msg  json.RawMessage
}

// objectEntries splits a JSON object into its entries, in file order. A key
// may appear only once (dup names the first repeated key): with duplicate
// keys, readers that keep the first and readers that keep the last would
// see different tensors.
func objectEntries(b []byte) (entries []headerEntry, dup string, err error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, "", err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, "", fmt.Errorf("it starts with %v", tok)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, "", err
		}
		name, _ := tok.(string)
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			return nil, "", err
		}
		if seen[name] {
			return nil, name, nil
		}
		seen[name] = true
		entries = append(entries, headerEntry{name, msg})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", errors.New("data after the closing brace")
	}
	return entries, "", nil
}

// mapFile maps a whole file read-only; a file shorter than min gets the
// error tooShort makes (before anything is mapped).
func mapFile(path string, min int64, tooShort func(size int64) error) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < min || fi.Size() == 0 {
		return nil, tooShort(fi.Size())
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return data, nil
}

// Bytes returns the tensor's bytes, a view into the mapping (valid until
// Close; never write to it).
func (sf *File) Bytes(t TensorInfo) []byte { return sf.data[t.Start : t.Start+t.Size] }

// Close unmaps the file.
func (sf *File) Close() error {
	if sf.data == nil {
		return nil
	}
	err := unix.Munmap(sf.data)
	sf.data = nil
	return err
}

// Checkpoint is a set of safetensors files read as one: the shards named by
// a model.safetensors.index.json, or every *.safetensors in a directory.
type Checkpoint struct {
	Dir     string
	Files   map[string]*File // by name relative to Dir
	tensors map[string]TensorInfo
	names   []string
}

// OpenCheckpoint opens dir: through model.safetensors.index.json when it
// exists (its weight_map must agree with the shards), else every
// *.safetensors file in dir. A tensor name may appear only once.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	c := &Checkpoint{Dir: dir, Files: map[string]*File{}, tensors: map[string]TensorInfo{}}
	var weightMap map[string]string
	var shards []string
	if b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("%w: %s/model.safetensors.index.json: %v", ErrFormat, dir, err)
		}
		weightMap = idx.WeightMap
		seen := map[string]bool{}
		for _, f := range weightMap {
			if f != filepath.Base(f) || f == "." || f == ".." {
				return nil, fmt.Errorf("%w: index names shard %q outside the checkpoint directory", ErrFormat, f)
			}
			if !seen[f] {
				seen[f] = true
				shards = append(shards, f)
			}
		}
	} else {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".safetensors") {
				shards = append(shards, e.Name())
			}
		}
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("%w: no safetensors files in %s", ErrFormat, dir)
	}
	sort.Strings(shards)
	for _, s := range shards {
		f, err := OpenFile(filepath.Join(dir, s))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Files[s] = f
		for _, t := range f.Tensors {
			if _, dup := c.tensors[t.Name]; dup {
				c.Close()
				return nil, fmt.Errorf("%w: tensor %q is in more than one shard", ErrFormat, t.Name)
			}
			if want, listed := weightMap[t.Name]; weightMap != nil && !listed {
				c.Close()
				return nil, fmt.Errorf("%w: tensor %q is in %s but the index does not list it", ErrFormat, t.Name, s)
			} else if weightMap != nil && want != s {
				c.Close()
				return nil, fmt.Errorf("%w: tensor %q is in %s but the index says %q", ErrFormat, t.Name, s, weightMap[t.Name])
			}
			c.tensors[t.Name] = t
			c.names = append(c.names, t.Name)
		}
	}
	for name, s := range weightMap {
		if _, ok := c.tensors[name]; !ok {
			c.Close()
			return nil, fmt.Errorf("%w: the index puts tensor %q in %s, which does not have it", ErrFormat, name, s)
		}
	}
	sort.Strings(c.names)
	return c, nil
}

// Names lists the tensor names, sorted.
func (c *Checkpoint) Names() []string { return c.names }

// Tensor returns a tensor's description.
func (c *Checkpoint) Tensor(name string) (TensorInfo, bool) {
	t, ok := c.tensors[name]
	return t, ok
}

// Bytes returns a tensor's bytes, zero-copy from the mapping.
func (c *Checkpoint) Bytes(t TensorInfo) []byte { return c.Files[t.File].Bytes(t) }

// Close unmaps every file.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.Files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
