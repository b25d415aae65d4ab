package ocilayout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// Source reads models from an OCI layout directory or tar. It implements
// registry.Source and registry.Describer.
type Source struct {
	path string    // the directory or the tar
	tar  *tarIndex // nil for a directory
}

// Model is one model manifest in a layout.
type Model struct {
	Name, Format, Revision string
	Requested              string // the revision it was pulled as ("main"), if recorded
	RefName                string // org.opencontainers.image.ref.name
	Digest                 string // "sha256:…" of the OCI manifest
	Created                time.Time
	Manifest               *registry.Manifest
}

// NewSource opens the layout at p (a directory, or a tar named *.tar). A tar
// is scanned at once and refused if any entry is unsafe (see scanTar).
func NewSource(p string) (*Source, error) {
	abs, err := expand(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", registry.ErrNotFound, err)
	}
	s := &Source{path: abs}
	switch {
	case fi.IsDir():
		if !Is(abs) {
			return nil, fmt.Errorf("%w: %s has no %s", ErrNotLayout, abs, LayoutFile)
		}
		if _, err := os.Stat(filepath.Join(abs, IndexFile)); err != nil {
			return nil, fmt.Errorf("%w: %s has no %s: an export that did not finish? (run it again)", registry.ErrNotFound, abs, IndexFile)
		}
	case fi.Mode().IsRegular():
		if s.tar, err = scanTar(abs); err != nil {
			return nil, err
		}
		for _, n := range []string{LayoutFile, IndexFile} {
			if _, ok := s.tar.entries[n]; !ok {
				return nil, fmt.Errorf("%w: %s: the tar has no %s", ErrNotLayout, abs, n)
			}
		}
	default:
		return nil, fmt.Errorf("%w: %s is neither a directory nor a tar", ErrNotLayout, abs)
	}
	b, err := s.read(LayoutFile, 4096)
	if err != nil {
		return nil, err
	}
	var lay struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &lay); err != nil || lay.Version == "" {
		return nil, fmt.Errorf("%w: %s: bad %s", ErrNotLayout, abs, LayoutFile)
	}
	return s, nil
}

// Describe names the layout.
func (s *Source) Describe() string { return s.path }

// read reads a small file of the layout by its slash path.
func (s *Source) read(name string, max int64) ([]byte, error) {
	if s.tar != nil {
		return s.tar.readSmall(name, max)
	}
	return readSmallFile(filepath.Join(s.path, filepath.FromSlash(name)), max)
}

// Models lists the model manifests of the layout in index order. Entries of
// other kinds (container images, nested indexes) are skipped; a model
// manifest that does not hash to its descriptor, is too large, or is not a
// valid ModelPack manifest fails the whole listing.
func (s *Source) Models() ([]Model, error) {
	b, err := s.read(IndexFile, MaxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	idx, err := parseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	var out []Model
	for _, d := range idx.Manifests {
		if d.MediaType != registry.MediaTypeOCIManifest {
			continue
		}
		if d.ArtifactType != "" && d.ArtifactType != registry.ArtifactTypeModel {
			continue
		}
		m, err := s.model(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.path, err)
		}
		if m != nil {
			out = append(out, *m)
		}
	}
	return out, nil
}

// model reads and checks the manifest a descriptor points at. It returns
// nil for a manifest that is not a model (another artifact type).
func (s *Source) model(d registry.Descriptor) (*Model, error) {
	hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok || !registry.IsSHA256Hex(hexd) {
		return nil, fmt.Errorf("%w: index.json: digest %q is not sha256", registry.ErrInvalidManifest, d.Digest)
	}
	if d.Size < 0 || d.Size > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest %s: size %d (at most %d)", registry.ErrInvalidManifest, d.Digest, d.Size, MaxManifestSize)
	}
	b, err := s.read(blobDir+hexd, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if int64(len(b)) != d.Size || registry.Digest(b) != d.Digest {
		return nil, fmt.Errorf("%w: manifest %s does not match its descriptor in index.json", registry.ErrDigestMismatch, d.Digest)
	}
	var om registry.OCIManifest
	if err := json.Unmarshal(b, &om); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", registry.ErrInvalidManifest, d.Digest, err)
	}
	if om.ArtifactType != registry.ArtifactTypeModel && om.Config.MediaType != registry.MediaTypeModelConfig {
		return nil, nil
	}
	refName := d.Annotations[registry.AnnotationRefName]
	// A ModelPack manifest written by another tool may lack gptoss's
	// annotations: take the name from the index's ref name.
	if om.Annotations[registry.AnnotationName] == "" {
		name := d.Annotations[registry.AnnotationName]
		if name == "" {
			name = refName
			if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
				name = name[:i]
			}
		}
		if name == "" {
			return nil, fmt.Errorf("%w: manifest %s has no model name (annotation %s or %s)", registry.ErrInvalidManifest, d.Digest, registry.AnnotationName, registry.AnnotationRefName)
		}
		if om.Annotations == nil {
			om.Annotations = map[string]string{}
		}
		om.Annotations[registry.AnnotationName] = name
		if b, err = json.Marshal(&om); err != nil {
			return nil, err
		}
	}
	m, err := registry.FromOCI(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if _, err := registry.CleanPath(m.Name); err != nil {
		return nil, fmt.Errorf("manifest %s: model name: %w", d.Digest, err)
	}
	if m.Format == "" {
		m.Format = "custom"
	}
	m.Source = s.path
	created := d.Annotations[registry.AnnotationCreated]
	if created == "" {
		created = om.Annotations[registry.AnnotationCreated]
	}
	t, _ := time.Parse(time.RFC3339, created)
	requested := d.Annotations[AnnotationRequested]
	if !plausibleRevision(requested) {
		requested = "" // not something a user asked for; ignore it
	}
	return &Model{Name: m.Name, Format: m.Format, Revision: m.Revision, Requested: requested,
		RefName: refName, Digest: d.Digest, Created: t, Manifest: m}, nil
}

// Pick chooses the model a reference asks for among ms: same name (any
// name for a bare path reference, so `gptoss pull ./x.tar` takes the only
// model), the requested format (or the catalog's default; any format when
// none matches, so that selection can narrow a fuller snapshot), and the
// revision if one is pinned (a commit prefix of 7+ digits, the full
// revision, or the name it was pulled as, e.g. "main"). Among several, the
// newest wins, then the last in index.json.
func Pick(ms []Model, ref registry.Ref) (*Model, error) {
	anyName := ref.Scheme == registry.SchemeLocal && ref.Model == nil
	format := ref.Format
	if format == "" && ref.Model != nil && len(ref.Include) == 0 {
		format = ref.Model.DefaultFormat
	}
	var byName []Model
	for _, m := range ms {
		if !anyName && m.Name != ref.Name() {
			continue
		}
		if r := ref.Revision; r != "" && r != m.Revision && r != m.Requested && !(len(r) >= 7 && strings.HasPrefix(m.Revision, r)) {
			continue
		}
		byName = append(byName, m)
	}
	cands := byName
	if format != "" {
		var same []Model
		for _, m := range byName {
			if m.Format == format {
				same = append(same, m)
			}
		}
		if len(same) > 0 {
			cands = same
		}
	}
	if len(cands) == 0 {
		what := ref.Name()
		if anyName {
			what = "a model"
		}
		if format != "" {
			what += " (format " + format + ")"
		}
		if ref.Revision != "" {
			what += "@" + ref.Revision
		}
		var have []string
		for _, m := range ms {
			have = append(have, fmt.Sprintf("%s (%s) @ %s", m.Name, m.Format, m.Revision))
		}
		if len(have) == 0 {
			have = []string{"no models"}
		}
		return nil, fmt.Errorf("%w: %s is not in this layout; it has %s", registry.ErrNotFound, what, strings.Join(have, ", "))
	}
	best := len(cands) - 1
	for i := len(cands) - 2; i >= 0; i-- {
		if cands[i].Created.After(cands[best].Created) {
			best = i
		}
	}
	return &cands[best], nil
}

// Resolve returns the manifest of the model ref names (see Pick), with the
// sha256 of every file.
func (s *Source) Resolve(ctx context.Context, ref registry.Ref) (*registry.Manifest, error) {
	ms, err := s.Models()
	if err != nil {
		return nil, err
	}
	m, err := Pick(ms, ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	out := *m.Manifest
	out.Files = append([]registry.File(nil), m.Manifest.Files...)
	return &out, nil
}

// Open reads a byte range of a file's blob (blobs/sha256/<f.SHA256>). The
// bytes are not hashed here: the transfer engine checks them.
func (s *Source) Open(ctx context.Context, f registry.File, off, n int64) (io.ReadCloser, error) {
	if !registry.IsSHA256Hex(f.SHA256) {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	if off < 0 || off > f.Size || (n >= 0 && off+n > f.Size) {
		return nil, &registry.Permanent{Err: fmt.Errorf("ocilayout: range %d+%d outside %s", off, n, f.Path)}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n < 0 {
		n = f.Size - off
	}
	name := blobDir + f.SHA256
	var (
		fh   *os.File
		base int64
		size int64
	)
	if s.tar != nil {
		var e tarEntry
		var err error
		if fh, e, err = s.tar.open(name); err != nil {
			return nil, permanentIfNotFound(err, f)
		}
		base, size = e.off, e.size
	} else {
		p := filepath.Join(s.path, filepath.FromSlash(name))
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, permanentIfNotFound(fmt.Errorf("%w: %v", registry.ErrNotFound, err), f)
		}
		if !fi.Mode().IsRegular() {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s is not a regular file", registry.ErrInvalidManifest, p)}
		}
		if fh, err = os.Open(p); err != nil {
			return nil, err
		}
		size = fi.Size()
	}
	if size != f.Size {
		fh.Close()
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: blob of %s is %d bytes, the manifest says %d", registry.ErrSizeMismatch, f.Path, size, f.Size)}
	}
	return registry.ExactReader(registry.ContextReader(ctx, io.NewSectionReader(fh, base+off, n)), fh, n), nil
}

func permanentIfNotFound(err error, f registry.File) error {
	if registry.IsPermanent(err) {
		return &registry.Permanent{Err: fmt.Errorf("blob of %s: %w", f.Path, err)}
	}
	return err
}

// plausibleRevision accepts a branch, tag or commit name: at most 255
// printable characters without spaces, backslashes or "..".
func plausibleRevision(r string) bool {
	if r == "" || len(r) > 255 || strings.Contains(r, "..") {
		return false
	}
	for _, c := range r {
		if c <= ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
