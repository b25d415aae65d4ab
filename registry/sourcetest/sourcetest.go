package sourcetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// BigFile is the fixture file the range and cancellation checks read.
const BigFile = "model-00001-of-00001.safetensors"

// Files returns the fixture: a few small JSON/text files, a nested one, and
// BigFile (1 MiB + 4099 bytes of seeded random data). The same bytes on
// every call.
func Files() map[string][]byte {
	rng := rand.New(rand.NewPCG(6, 3))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	return map[string][]byte{
		"config.json":                []byte(`{"architectures":["GptOssForCausalLM"],"num_hidden_layers":2}` + "\n"),
		"tokenizer.json":             blob(3001),
		"original/config.json":       []byte(`{"num_hidden_layers":2}` + "\n"),
		"original/model.safetensors": blob(70_001),
		BigFile:                      blob(1<<20 + 4099),
		"README.md":                  []byte("# fixture\n"),
	}
}

// Backend is one instance of a backend loaded with the fixture.
type Backend struct {
	// Source serves the fixture; Ref resolves to it.
	Source registry.Source
	Ref    registry.Ref
	// Digests: the source knows every file's digest before download
	// (SHA256, or GitSHA1 for small files on a Hub).
	Digests bool
	// MissingModel asks the backend for a model it does not have (another
	// prefix, repository, tag or directory) and returns the error.
	MissingModel func(ctx context.Context) error
	// Denied provokes a refused access (a token without permission on the
	// data, wrong credentials) and returns the error; nil when the backend
	// has no such notion, with DeniedNA saying why.
	Denied   func(ctx context.Context) error
	DeniedNA string
	// Secrets must never appear in error messages.
	Secrets []string
	// Pace, when set, caps the server's body rate (bytes/s; 0 lifts the
	// cap), so that a read is still mid-body when the suite cancels it: on
	// loopback a whole body can otherwise arrive before the transport acts
	// on the cancellation. LocalReads declares a source that reads this
	// machine's disk, where a context-aware reader makes the check exact
	// without pacing. With neither, mid-body cancellation cannot be checked
	// deterministically and the suite fails: give one.
	Pace       func(bytesPerSec int64)
	LocalReads bool
}

// Setup loads files into a fresh instance of the backend.
type Setup func(t *testing.T, files map[string][]byte) Backend

// Run runs the conformance suite against the backend setup builds.
func Run(t *testing.T, setup Setup) {
	files := Files()
	b := setup(t, files)
	if b.Source == nil {
		t.Fatal("sourcetest: the setup returned no Source")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var m *registry.Manifest
	checkErr := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("error is not one line: %q", msg)
		}
		for _, s := range b.Secrets {
			if s != "" && strings.Contains(msg, s) {
				t.Errorf("error reveals a secret: %q", msg)
			}
		}
	}

	ok := t.Run("resolve", func(t *testing.T) {
		var err error
		m, err = b.Source.Resolve(ctx, b.Ref)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", b.Ref, err)
		}
		if err := m.Validate(); err != nil {
			t.Errorf("the manifest does not validate: %v", err)
		}
		var got, want []string
		for _, f := range m.Files {
			got = append(got, f.Path)
		}
		for p := range files {
			want = append(want, p)
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("files:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		for _, f := range m.Files {
			data := files[f.Path]
			if f.Size != int64(len(data)) {
				t.Errorf("%s: size %d, want %d", f.Path, f.Size, len(data))
			}
			if f.SHA256 != "" && f.SHA256 != sha256hex(data) {
				t.Errorf("%s: sha256 %s, want %s", f.Path, f.SHA256, sha256hex(data))
			}
			if f.GitSHA1 != "" && f.SHA256 == "" && f.GitSHA1 != registry.GitBlobID(data) {
				t.Errorf("%s: git blob sha1 %s, want %s", f.Path, f.GitSHA1, registry.GitBlobID(data))
			}
			if b.Digests && f.SHA256 == "" && f.GitSHA1 == "" {
				t.Errorf("%s: no digest, but the source is declared to know them", f.Path)
			}
		}
		m2, err := b.Source.Resolve(ctx, b.Ref)
		if err != nil {
			t.Fatalf("second Resolve: %v", err)
		}
		if m2.Revision != m.Revision || len(m2.Files) != len(m.Files) {
			t.Errorf("two Resolves disagree: %s (%d files) vs %s (%d files)", m.Revision, len(m.Files), m2.Revision, len(m2.Files))
		}
	})
	if !ok {
		return // every other check needs the listing
	}
	big, _ := m.Lookup(BigFile)
	data := files[BigFile]
	size := int64(len(data))

	t.Run("ranges", func(t *testing.T) {
		type rng struct {
			name   string
			off, n int64
		}
		cases := []rng{
			{"whole", 0, size},
			{"whole-n<0", 0, -1},
			{"start", 0, 1000},
			{"first-byte", 0, 1},
			{"middle", size/2 - 333, 4096},
			{"end", size - 777, 777},
			{"last-byte", size - 1, 1},
			{"to-end-from-middle", size / 3, -1},
			{"zero-length-middle", size / 2, 0},
			{"zero-length-at-end", size, 0},
		}
		read := func(c rng) error {
			rc, err := b.Source.Open(ctx, big, c.off, c.n)
			if err != nil {
				return fmt.Errorf("Open(%d, %d): %w", c.off, c.n, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("read(%d, %d): %w", c.off, c.n, err)
			}
			end := size
			if c.n >= 0 {
				end = c.off + c.n
			}
			if !bytes.Equal(got, data[c.off:end]) {
				return fmt.Errorf("range (%d, %d): %d bytes, not the right ones (want %d)", c.off, c.n, len(got), end-c.off)
			}
			return nil
		}
		for _, c := range cases {
			if err := read(c); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		// Concurrently, as the transfer engine does.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		const parts = 8
		for i := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				off := size * int64(i) / parts
				if err := read(rng{"part", off, size*int64(i+1)/parts - off}); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent: %v", err)
		}
		// Every small file whole.
		for _, f := range m.Files {
			if f.Path == BigFile {
				continue
			}
			rc, err := b.Source.Open(ctx, f, 0, -1)
			if err != nil {
				t.Errorf("%s: %v", f.Path, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, files[f.Path]) {
				t.Errorf("%s: %d bytes, %v", f.Path, len(got), err)
			}
		}
		// Past the end: an error at Open or while reading, never bytes.
		rc, err := b.Source.Open(ctx, big, size-10, 20)
		if err == nil {
			got, rerr := io.ReadAll(rc)
			rc.Close()
			if rerr == nil {
				t.Errorf("a range past the end gave %d bytes and no error", len(got))
			}
		}
		checkErr(t, err)
	})

	t.Run("not-found-file", func(t *testing.T) {
		ghost := []byte("this file is not in the fixture")
		f := registry.File{Path: "no/such/file.safetensors", Size: int64(len(ghost)), SHA256: sha256hex(ghost)}
		err := openAndRead(ctx, b.Source, f)
		if !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("a missing file: %v, want ErrNotFound", err)
		}
		checkErr(t, err)
	})

	t.Run("not-found-model", func(t *testing.T) {
		if b.MissingModel == nil {
			t.Fatal("the harness gives no MissingModel: every backend can be asked for a model it does not have")
		}
		err := b.MissingModel(ctx)
		if !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("a missing model: %v, want ErrNotFound", err)
		}
		checkErr(t, err)
	})

	t.Run("permission-denied", func(t *testing.T) {
		if b.Denied == nil {
			if b.DeniedNA == "" {
				t.Fatal("the harness gives neither Denied nor DeniedNA")
			}
			t.Logf("not applicable: %s", b.DeniedNA)
			return
		}
		err := b.Denied(ctx)
		if !errors.Is(err, registry.ErrForbidden) && !errors.Is(err, registry.ErrUnauthorized) {
			t.Errorf("refused access: %v, want ErrForbidden or ErrUnauthorized", err)
		}
		checkErr(t, err)
	})

	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := openAndRead(cctx, b.Source, big)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Open with a cancelled context: %v, want context.Canceled", err)
		}
		// Cancel mid-body: the rest must not arrive.
		switch {
		case b.Pace != nil:
			b.Pace(256 << 10) // 1 MiB takes 4 s: the read is mid-body when cancelled
			defer b.Pace(0)
		case b.LocalReads:
		default:
			t.Fatal("the harness gives neither Pace nor LocalReads: mid-body cancellation cannot be checked")
		}
		cctx, cancel = context.WithCancel(ctx)
		defer cancel()
		rc, err := b.Source.Open(cctx, big, 0, -1)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer rc.Close()
		head := make([]byte, 100)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatalf("first bytes: %v", err)
		}
		cancel()
		n, err := io.Copy(io.Discard, rc)
		if err == nil {
			t.Errorf("reading on after cancel delivered the remaining %d bytes without an error", n)
		}
	})
}

// openAndRead opens the whole file and reads it, returning the first error.
func openAndRead(ctx context.Context, s registry.Source, f registry.File) error {
	rc, err := s.Open(ctx, f, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
