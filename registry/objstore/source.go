package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/gptoss/gptoss/registry"
)

// MaxManifestSize bounds the gptoss-manifest.json a pull reads.
const MaxManifestSize = 16 << 20

// KnownFunc returns the sha256 that the publisher of model name is known to
// have for the file at path of size bytes (registry.KnownSHA256, the local
// cache's earlier verified pulls …), or false.
type KnownFunc func(name, path string, size int64) (sha256hex string, ok bool)

// SourceOptions steer a Source. The zero value is ready to use.
type SourceOptions struct {
	// Known supplies digests for a prefix without a manifest; nil means
	// registry.KnownSHA256 (the catalog).
	Known KnownFunc
}

// Source reads a model snapshot stored under a prefix of a bucket: the
// files at prefix/<path>, and, when a mirror wrote it, the manifest at
// prefix/gptoss-manifest.json. It implements registry.Source and
// registry.Describer.
type Source struct {
	b      Bucket
	prefix string
	o      SourceOptions

	mu        sync.Mutex
	unchecked []string // paths of the last Resolve with no digest to check
	manifest  bool     // the last Resolve found a gptoss manifest
}

// NewSource returns the source for the snapshot under prefix in b.
func NewSource(b Bucket, prefix string, o SourceOptions) (*Source, error) {
	p, err := CleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("%s: prefix: %w", b.Describe(), err)
	}
	if o.Known == nil {
		o.Known = registry.KnownSHA256
	}
	return &Source{b: b, prefix: p, o: o}, nil
}

// Describe names the location, without credentials.
func (s *Source) Describe() string { return Location(s.b, s.prefix) }

// Unchecked lists the files of the last Resolve that had no digest to be
// checked against (no manifest entry, no sha256 metadata, not known to the
// catalog): the pull computes their sha256 but cannot say it is the right
// one. The CLI reports the ones it pulled.
func (s *Source) Unchecked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unchecked...)
}

// HasManifest reports whether the last Resolve read a gptoss manifest.
func (s *Source) HasManifest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.manifest
}

// Resolve lists the prefix. With a gptoss-manifest.json there, the manifest
// is the snapshot (its sha256s are checked as the bytes arrive); every file
// it names must be present with its size, and an object whose sha256
// metadata disagrees with it is refused. Without one, the listing is the
// snapshot: sha256 from object metadata, else from Known, else none (see
// Unchecked), and the revision is derived from the keys, sizes and ETags,
// so it changes when an object does and a resumed pull of an unchanged
// prefix finds its partial files.
func (s *Source) Resolve(ctx context.Context, ref registry.Ref) (*registry.Manifest, error) {
	loc := s.Describe()
	objs, err := s.b.List(ctx, s.prefix)
	if err != nil {
		return nil, err
	}
	byPath := map[string]Object{}
	var skipped []string
	for _, o := range objs {
		rel, ok := relKey(s.prefix, o.Key)
		if !ok {
			if !strings.HasSuffix(o.Key, "/") {
				skipped = append(skipped, o.Key)
			}
			continue
		}
		byPath[rel] = o
	}
	if len(byPath) == 0 {
		return nil, fmt.Errorf("%w: %s: no objects under this prefix (check the bucket and prefix)", registry.ErrNotFound, loc)
	}
	var m *registry.Manifest
	if mo, ok := byPath[ManifestName]; ok {
		delete(byPath, ManifestName)
		if m, err = s.readManifest(ctx, mo, byPath, ref); err != nil {
			return nil, err
		}
	} else {
		m = s.fromListing(ref, byPath)
	}
	if len(skipped) > 0 && len(m.Files) == 0 {
		return nil, fmt.Errorf("%w: %s: no usable objects (unsafe keys such as %q)", registry.ErrInvalidManifest, loc, skipped[0])
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	return m, nil
}

func (s *Source) readManifest(ctx context.Context, mo Object, byPath map[string]Object, ref registry.Ref) (*registry.Manifest, error) {
	loc := s.Describe()
	if mo.Size > MaxManifestSize {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s/%s is %d bytes, more than a manifest can be", registry.ErrInvalidManifest, loc, ManifestName, mo.Size)}
	}
	rc, err := s.b.Open(ctx, mo.Key, 0, mo.Size)
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", loc, ManifestName, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", loc, ManifestName, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", loc, ManifestName, err)
	}
	if ref.Model != nil && !strings.EqualFold(m.Name, ref.Name()) {
		return nil, fmt.Errorf("%w: %s holds %s, not %s", registry.ErrNotFound, loc, m.Name, ref.Name())
	}
	if r := ref.Revision; r != "" && r != m.Revision && !(len(r) >= 7 && strings.HasPrefix(m.Revision, r)) {
		return nil, fmt.Errorf("%w: %s holds %s @ %s, not revision %s", registry.ErrNotFound, loc, m.Name, m.Revision, r)
	}
	var missing []string
	var unchecked []string
	for i, f := range m.Files {
		o, ok := byPath[f.Path]
		if !ok {
			missing = append(missing, f.Path)
			continue
		}
		if o.Size != f.Size {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s/%s is %d bytes, %s says %d: the object was replaced after the mirror (mirror again)",
				registry.ErrSizeMismatch, loc, f.Path, o.Size, ManifestName, f.Size)}
		}
		if o.SHA256 != "" && f.SHA256 != "" && o.SHA256 != f.SHA256 {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s/%s: its sha256 metadata is %s, %s says %s: the object was replaced after the mirror (mirror again)",
				registry.ErrDigestMismatch, loc, f.Path, o.SHA256, ManifestName, f.SHA256)}
		}
		if f.SHA256 == "" {
			m.Files[i].SHA256 = o.SHA256
			if o.SHA256 == "" {
				unchecked = append(unchecked, f.Path)
			}
		}
	}
	if len(missing) > 0 {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s: %d files of %s are missing (%s): an unfinished or damaged mirror (mirror again)",
			registry.ErrNotFound, loc, len(missing), ManifestName, strings.Join(firstN(missing, 3), ", "))}
	}
	s.mu.Lock()
	s.unchecked, s.manifest = unchecked, true
	s.mu.Unlock()
	return m, nil
}

func (s *Source) fromListing(ref registry.Ref, byPath map[string]Object) *registry.Manifest {
	m := &registry.Manifest{Name: ref.Name(), Format: "custom", Source: s.Describe()}
	h := sha256.New()
	var unchecked []string
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		o := byPath[p]
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\n", p, o.Size, o.ETag, o.SHA256)
		f := registry.File{Path: p, Size: o.Size, SHA256: o.SHA256}
		if f.SHA256 == "" {
			if d, ok := s.o.Known(m.Name, p, o.Size); ok && registry.IsSHA256Hex(d) {
				f.SHA256 = d
			} else {
				unchecked = append(unchecked, p)
			}
		}
		m.Files = append(m.Files, f)
	}
	// Not a git commit (IsCommit is false): a name for this exact listing.
	m.Revision = "listing-" + hex.EncodeToString(h.Sum(nil))[:16]
	s.mu.Lock()
	s.unchecked, s.manifest = unchecked, false
	s.mu.Unlock()
	return m
}

// Open reads a byte range of a file of the snapshot.
func (s *Source) Open(ctx context.Context, f registry.File, off, n int64) (io.ReadCloser, error) {
	if _, err := registry.CleanPath(f.Path); err != nil {
		return nil, &registry.Permanent{Err: err}
	}
	if n < 0 {
		n = f.Size - off
	}
	if off < 0 || off+n > f.Size {
		return nil, &registry.Permanent{Err: fmt.Errorf("%s: range %d+%d outside its %d bytes", f.Path, off, n, f.Size)}
	}
	rc, err := s.b.Open(ctx, Join(s.prefix, f.Path), off, n)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", f.Path, err)
	}
	return rc, nil
}

// ParseManifest reads a gptoss-manifest.json and validates it.
func ParseManifest(data []byte) (*registry.Manifest, error) {
	var doc manifestDoc
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", registry.ErrInvalidManifest, err)
	}
	if doc.Schema != manifestSchema {
		return nil, fmt.Errorf("%w: schemaVersion %d (this gptoss reads %d; upgrade gptoss)", registry.ErrInvalidManifest, doc.Schema, manifestSchema)
	}
	m := doc.Manifest
	if err := m.Validate(); err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if f.Path == ManifestName {
			return nil, fmt.Errorf("%w: the manifest lists itself", registry.ErrInvalidManifest)
		}
	}
	return &m, nil
}

// manifestSchema is the version of gptoss-manifest.json.
const manifestSchema = 1

// manifestDoc is gptoss-manifest.json: the registry.Manifest fields plus a
// schema version.
type manifestDoc struct {
	Schema int `json:"schemaVersion"`
	registry.Manifest
}

// MarshalManifest encodes m as gptoss-manifest.json (files sorted).
func MarshalManifest(m *registry.Manifest) ([]byte, error) {
	c := *m
	c.Files = append([]registry.File(nil), m.Files...)
	c.SortFiles()
	b, err := json.MarshalIndent(manifestDoc{Schema: manifestSchema, Manifest: c}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

var _ registry.Source = (*Source)(nil)
var _ registry.Describer = (*Source)(nil)
