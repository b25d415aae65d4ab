package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/gptoss/gptoss/registry"
)

// Target writes a model snapshot under a prefix of a bucket: every file at
// prefix/<path> with its sha256 in the object metadata, then
// gptoss-manifest.json, last. It implements registry.Target and
// registry.Describer.
type Target struct {
	b      Bucket
	prefix string

	once     sync.Once
	mu       sync.Mutex
	existing *registry.Manifest // the manifest already there, if any
	errOnce  error
}

// NewTarget returns the target for the snapshot under prefix in b.
func NewTarget(b Bucket, prefix string) (*Target, error) {
	p, err := CleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("%s: prefix: %w", b.Describe(), err)
	}
	return &Target{b: b, prefix: p}, nil
}

// Describe names the location, without credentials.
func (t *Target) Describe() string { return Location(t.b, t.prefix) }

// load reads the manifest already under the prefix, once. A missing one is
// not an error; an unreadable one is (a mirror must not silently replace
// what it cannot read).
func (t *Target) load(ctx context.Context) (*registry.Manifest, error) {
	t.once.Do(func() {
		// A List rather than a Head: it tells a missing bucket (an error)
		// from a missing manifest (an empty listing).
		key := Join(t.prefix, ManifestName)
		objs, err := t.b.List(ctx, key)
		if err != nil {
			t.errOnce = err
			return
		}
		var o Object
		ok := false
		for _, x := range objs {
			if x.Key == key {
				o, ok = x, true
			}
		}
		if !ok {
			return
		}
		if o.Size > MaxManifestSize {
			t.errOnce = fmt.Errorf("%w: %s/%s is %d bytes", registry.ErrInvalidManifest, t.Describe(), ManifestName, o.Size)
			return
		}
		rc, err := t.b.Open(ctx, key, 0, o.Size)
		if err != nil {
			t.errOnce = err
			return
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			t.errOnce = err
			return
		}
		m, err := ParseManifest(data)
		if err != nil {
			t.errOnce = fmt.Errorf("%s/%s: %w (delete it, or mirror to another prefix)", t.Describe(), ManifestName, err)
			return
		}
		t.mu.Lock()
		t.existing = m
		t.mu.Unlock()
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.existing, t.errOnce
}

// Prepare checks, before any upload, that the bucket is reachable with the
// credentials given and that the prefix does not hold another model: a
// prefix is one model's snapshot. Formats and revisions of the same model
// may share it (a newer revision replaces the manifest at Commit).
func (t *Target) Prepare(ctx context.Context, m *registry.Manifest) error {
	old, err := t.load(ctx)
	if err != nil {
		return err
	}
	if old != nil && !strings.EqualFold(old.Name, m.Name) {
		return &registry.Permanent{Err: fmt.Errorf("%w: %s already holds %s; mirror %s to another prefix",
			registry.ErrUnsupported, t.Describe(), old.Name, m.Name)}
	}
	return nil
}

// Stat reports whether the file is already there with the same content: an
// object of the same size whose sha256 metadata matches, or, for an object
// without that metadata, one the existing manifest lists with this sha256.
func (t *Target) Stat(ctx context.Context, f registry.File) (bool, error) {
	if !registry.IsSHA256Hex(f.SHA256) {
		return false, &registry.Permanent{Err: fmt.Errorf("%w: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	o, ok, err := t.b.Head(ctx, Join(t.prefix, f.Path))
	if err != nil || !ok || o.Size != f.Size {
		return false, err
	}
	if o.SHA256 != "" {
		return o.SHA256 == f.SHA256, nil
	}
	old, err := t.load(ctx)
	if err != nil || old == nil {
		return false, nil // cannot tell: upload again
	}
	of, ok := old.Lookup(f.Path)
	return ok && of.SHA256 == f.SHA256 && of.Size == f.Size, nil
}

// Put uploads one file (the bucket splits it into parts).
func (t *Target) Put(ctx context.Context, f registry.File, r io.ReaderAt) error {
	if !registry.IsSHA256Hex(f.SHA256) {
		return &registry.Permanent{Err: fmt.Errorf("%w: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	if f.Path == ManifestName {
		return &registry.Permanent{Err: fmt.Errorf("%w: a model file may not be called %s", registry.ErrInvalidManifest, ManifestName)}
	}
	if err := t.b.Put(ctx, Join(t.prefix, f.Path), r, f.Size, f.SHA256); err != nil {
		return fmt.Errorf("upload %s: %w", f.Path, err)
	}
	return nil
}

// Commit writes gptoss-manifest.json. When the prefix already holds a
// manifest of the same model and revision (another format mirrored
// earlier), the two file lists are merged, so one prefix can carry every
// format of a revision; the format is then "custom" and a pull selects.
func (t *Target) Commit(ctx context.Context, m *registry.Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	out := *m
	out.Files = append([]registry.File(nil), m.Files...)
	old, err := t.load(ctx)
	if err != nil {
		return err
	}
	if old != nil && strings.EqualFold(old.Name, m.Name) && old.Revision == m.Revision {
		for _, f := range old.Files {
			if _, ok := out.Lookup(f.Path); !ok {
				out.Files = append(out.Files, f)
			}
		}
		if old.Format != m.Format {
			out.Format = "custom"
		}
	}
	for _, f := range out.Files {
		if !registry.IsSHA256Hex(f.SHA256) {
			return fmt.Errorf("%w: %s has no sha256", registry.ErrInvalidManifest, f.Path)
		}
	}
	data, err := MarshalManifest(&out)
	if err != nil {
		return err
	}
	sum := registry.Digest(data)
	if err := t.b.Put(ctx, Join(t.prefix, ManifestName), bytes.NewReader(data), int64(len(data)), strings.TrimPrefix(sum, "sha256:")); err != nil {
		return fmt.Errorf("writing %s: %w", ManifestName, err)
	}
	t.mu.Lock()
	t.existing = &out // the next format of this mirror merges with it
	t.mu.Unlock()
	return nil
}

var (
	_ registry.Target    = (*Target)(nil)
	_ registry.Describer = (*Target)(nil)
)
