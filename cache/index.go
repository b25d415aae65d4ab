package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gptoss/gptoss/registry"
)

const mediaTypeIndex = "application/vnd.oci.image.index.v1+json"

type ociIndex struct {
	SchemaVersion int                   `json:"schemaVersion"`
	MediaType     string                `json:"mediaType,omitempty"`
	Manifests     []registry.Descriptor `json:"manifests"`
}

// AnnotationRequested records the revision a user asked for ("main"), so
// an offline pull of the same reference finds the commit it resolved to.
const AnnotationRequested = "org.gptoss.model.requested"

// maxManifestSize bounds manifest and index reads.
const maxManifestSize = 16 << 20

// Entry is one model manifest in the cache.
type Entry struct {
	Manifest  *registry.Manifest
	Digest    string // sha256 hex of the OCI manifest blob
	Requested string // the revision the user asked for ("main"), if recorded
	Created   time.Time
}

// Tag is the OCI ref name of an entry: "<name>:<format>-<rev12>".
func (e Entry) Tag() string { return tagOf(e.Manifest) }

func tagOf(m *registry.Manifest) string {
	rev := m.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return m.Name + ":" + m.Format + "-" + rev
}

func (s *Store) readIndex() (*ociIndex, error) {
	var idx ociIndex
	if err := readJSON(filepath.Join(s.Root, "index.json"), &idx); err != nil {
		return nil, fmt.Errorf("cache: index.json: %w", err)
	}
	return &idx, nil
}

func (s *Store) writeIndex(idx *ociIndex) error {
	b, err := jsonIndent(idx)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(s.Root, "index.json"), b, 0o644)
}

// updateIndex changes index.json under the index lock, atomically.
func (s *Store) updateIndex(change func(*ociIndex)) error {
	unlock, err := s.Lock(context.Background(), "index")
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	change(idx)
	return s.writeIndex(idx)
}

// dropTags returns ds without the descriptors whose ref name is in tags.
func dropTags(ds []registry.Descriptor, tags map[string]bool) []registry.Descriptor {
	keep := ds[:0]
	for _, d := range ds {
		if !tags[d.Annotations[registry.AnnotationRefName]] {
			keep = append(keep, d)
		}
	}
	return keep
}

// RevisionFor derives a revision for a manifest whose source has none (a
// plain directory): the first 40 hex digits of the sha256 of its sorted file
// list with digests, so the same content always gets the same revision.
func RevisionFor(m *registry.Manifest) string {
	c := *m
	c.Files = append([]registry.File(nil), m.Files...)
	c.SortFiles()
	h := sha256.New()
	for _, f := range c.Files {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", f.Path, f.Size, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// Commit records a fetched manifest: every file's blob must already be
// published. It writes the config and OCI manifest blobs, builds the
// snapshot directory, then adds the manifest to index.json (replacing an
// entry with the same name, format and revision). requested is the revision
// the user asked for ("main"), kept for offline lookups.
func (s *Store) Commit(m *registry.Manifest, requested string) (*Entry, error) {
	if m.Revision == "" {
		m.Revision = RevisionFor(m)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if !s.HasBlob(f.SHA256, f.Size) {
			return nil, fmt.Errorf("cache: commit %s: blob for %s missing", m.Name, f.Path)
		}
	}
	now := time.Now()
	// No time in the manifest blob: the same snapshot gets the same digest on
	// every machine (the pull time lives in index.json).
	man, cfg, err := m.ToOCI(time.Time{})
	if err != nil {
		return nil, err
	}
	if _, err := s.PutBlob(cfg); err != nil {
		return nil, err
	}
	md, err := s.PutBlob(man)
	if err != nil {
		return nil, err
	}
	if err := s.linkSnapshot(m); err != nil {
		return nil, err
	}
	tag := tagOf(m)
	ann := map[string]string{
		registry.AnnotationRefName:  tag,
		registry.AnnotationName:     m.Name,
		registry.AnnotationRevision: m.Revision,
		registry.AnnotationFormat:   m.Format,
		registry.AnnotationCreated:  now.UTC().Format(time.RFC3339),
	}
	if requested != "" {
		ann[AnnotationRequested] = requested
	}
	err = s.updateIndex(func(idx *ociIndex) {
		idx.Manifests = dropTags(idx.Manifests, map[string]bool{tag: true})
		idx.Manifests = append(idx.Manifests, registry.Descriptor{
			MediaType: registry.MediaTypeOCIManifest, ArtifactType: registry.ArtifactTypeModel,
			Digest: "sha256:" + md, Size: int64(len(man)), Annotations: ann,
		})
	})
	if err != nil {
		return nil, err
	}
	return &Entry{Manifest: m, Digest: md, Requested: requested, Created: now}, nil
}

// SnapshotDir is the directory of plain files for a manifest.
func (s *Store) SnapshotDir(m *registry.Manifest) string {
	return filepath.Join(s.Root, "snapshots", filepath.FromSlash(m.Name), m.Revision)
}

// snapshotTmp marks a snapshot link being made (gc removes leftovers).
const snapshotTmp = ".gptoss-tmp-"

var tmpSeq atomic.Uint64

// linkSnapshot hard-links every file of m into its snapshot directory,
// replacing each link atomically (link to a temp name, rename). Files of
// other formats of the same revision stay, as in the Hugging Face cache.
func (s *Store) linkSnapshot(m *registry.Manifest) error {
	if _, err := registry.CleanPath(m.Name); err != nil {
		return err
	}
	dir := s.SnapshotDir(m)
	for _, f := range m.Files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if fi, err := os.Stat(dst); err == nil {
			if bi, err := os.Stat(s.BlobPath(f.SHA256)); err == nil && os.SameFile(fi, bi) {
				continue
			}
		}
		// A name of this process's own: two pulls of one revision link the
		// same files at once, and a shared temp name lets one rename the
		// other's link away.
		tmp := fmt.Sprintf("%s%s%d-%d", dst, snapshotTmp, os.Getpid(), tmpSeq.Add(1))
		os.Remove(tmp)
		if err := os.Link(s.BlobPath(f.SHA256), tmp); err != nil {
			// A filesystem without hard links: fall back to a relative symlink.
			rel, rerr := filepath.Rel(filepath.Dir(dst), s.BlobPath(f.SHA256))
			if rerr != nil {
				return err
			}
			if err := os.Symlink(rel, tmp); err != nil {
				return fmt.Errorf("cache: snapshot %s: %w", f.Path, err)
			}
		}
		err := os.Rename(tmp, dst)
		// When another pull has just put the same link at dst, rename(2)
		// of two links to one file succeeds doing nothing: drop ours.
		os.Remove(tmp)
		if err != nil {
			return err
		}
	}
	return nil
}

// List returns the cached model manifests, newest first.
func (s *Store) List() ([]Entry, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range idx.Manifests {
		hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
		if !ok || !registry.IsSHA256Hex(hexd) {
			continue
		}
		b, err := s.ReadBlob(hexd, maxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("cache: manifest %s: %w", d.Annotations[registry.AnnotationRefName], err)
		}
		m, err := registry.FromOCI(b)
		if err != nil {
			return nil, fmt.Errorf("cache: manifest %s: %w", d.Annotations[registry.AnnotationRefName], err)
		}
		created, _ := time.Parse(time.RFC3339, d.Annotations[registry.AnnotationCreated])
		out = append(out, Entry{Manifest: m, Digest: hexd, Requested: d.Annotations[AnnotationRequested], Created: created})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Find returns the newest entry for name whose format matches (any when
// format is "") and whose revision matches rev: a commit (prefix of at least
// 7 hex digits), the requested name it was pulled as ("main"), or any when
// rev is "".
func (s *Store) Find(name, format, rev string) (*Entry, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	for i, e := range all {
		m := e.Manifest
		if m.Name != name || (format != "" && m.Format != format) {
			continue
		}
		if rev == "" || e.Requested == rev || (len(rev) >= 7 && strings.HasPrefix(m.Revision, rev)) {
			return &all[i], nil
		}
	}
	what := name
	if format != "" {
		what += " (format " + format + ")"
	}
	if rev != "" {
		what += "@" + rev
	}
	return nil, fmt.Errorf("%s is not in the cache (%s): %w", what, s.Root, registry.ErrNotFound)
}

// Remove deletes entries from index.json and their snapshot files; blobs no
// longer referenced are deleted by GC. It returns the removed entries.
func (s *Store) Remove(match func(Entry) bool) ([]Entry, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	gone := map[string]bool{}
	var removed []Entry
	for _, e := range all {
		if match(e) {
			gone[tagOf(e.Manifest)] = true
			removed = append(removed, e)
		}
	}
	if err := s.updateIndex(func(idx *ociIndex) { idx.Manifests = dropTags(idx.Manifests, gone) }); err != nil {
		return nil, err
	}
	for _, e := range removed {
		if err := s.unlinkSnapshot(e.Manifest, all); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// unlinkSnapshot removes m's files from its snapshot directory unless
// another remaining entry of the same revision lists the same path.
func (s *Store) unlinkSnapshot(m *registry.Manifest, all []Entry) error {
	dir := s.SnapshotDir(m)
	for _, f := range m.Files {
		shared := false
		for _, o := range all {
			om := o.Manifest
			if om != m && om.Name == m.Name && om.Revision == m.Revision && om.Format != m.Format {
				if _, ok := om.Lookup(f.Path); ok {
					shared = true
				}
			}
		}
		if !shared {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	pruneEmptyDirs(filepath.Join(s.Root, "snapshots"))
	return nil
}

// pruneEmptyDirs removes empty directories below root (not root itself).
func pruneEmptyDirs(root string) {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != root {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // fails on non-empty directories, as wanted
	}
}

// GCResult says what GC removed.
type GCResult struct {
	Blobs, Partials int
	Bytes           int64
}

// GCOptions select what GC removes besides unreferenced blobs.
type GCOptions struct {
	Partials bool // also delete resumable partial downloads
}

// ErrBusy means another gptoss process holds the cache for a pull.
var ErrBusy = errors.New("cache is in use by a running pull")

// GC deletes blobs that no manifest in index.json references, stale temp
// files, dangling snapshot links and, with opts.Partials, resumable partial
// downloads that no process is working on. It takes the "gc" lock
// exclusively: every pull holds it shared (HoldForPull) from its first
// download to its commit, so GC never deletes a blob that a running pull has
// published but not yet committed; while a pull runs GC returns ErrBusy.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	var res GCResult
	gcUnlock, ok, err := s.tryFlock("gc", true)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, ErrBusy
	}
	defer gcUnlock()
	unlock, err := s.Lock(ctx, "index")
	if err != nil {
		return res, err
	}
	defer unlock()
	all, err := s.List()
	if err != nil {
		return res, err
	}
	live := map[string]bool{}
	idx, err := s.readIndex()
	if err != nil {
		return res, err
	}
	for _, d := range idx.Manifests {
		live[strings.TrimPrefix(d.Digest, "sha256:")] = true
	}
	if err := s.gcLayouts(idx, live); err != nil { // converted.go
		return res, err
	}
	for _, e := range all {
		b, err := s.ReadBlob(e.Digest, maxManifestSize)
		if err != nil {
			return res, err
		}
		var om registry.OCIManifest
		if err := jsonUnmarshal(b, &om); err != nil {
			return res, err
		}
		live[strings.TrimPrefix(om.Config.Digest, "sha256:")] = true
		for _, f := range e.Manifest.Files {
			live[f.SHA256] = true
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.Root, "blobs", "sha256"))
	if err != nil {
		return res, err
	}
	for _, d := range ents {
		if live[d.Name()] {
			continue
		}
		p := filepath.Join(s.Root, "blobs", "sha256", d.Name())
		if fi, err := os.Stat(p); err == nil {
			res.Bytes += fi.Size()
		}
		if err := os.Remove(p); err == nil {
			res.Blobs++
		}
	}
	// Partial downloads whose lock is free belong to no running process.
	pents, err := os.ReadDir(filepath.Join(s.Root, "partial"))
	if err != nil {
		return res, err
	}
	for _, d := range pents {
		name := d.Name()
		key := strings.TrimSuffix(strings.TrimSuffix(name, ".part"), ".journal")
		if strings.HasSuffix(name, ".tmp") {
			key = ""
		} else if !opts.Partials {
			continue
		}
		if key != "" && key != name {
			u, ok, _ := s.TryLock("blob-" + key)
			if !ok {
				continue
			}
			u()
		}
		p := filepath.Join(s.Root, "partial", name)
		if fi, err := os.Stat(p); err == nil {
			res.Bytes += fi.Size()
		}
		if os.Remove(p) == nil {
			res.Partials++
		}
	}
	// Snapshot links whose blob is gone.
	filepath.WalkDir(filepath.Join(s.Root, "snapshots"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, serr := os.Stat(p); serr != nil || strings.Contains(filepath.Base(p), snapshotTmp) {
				os.Remove(p)
			}
		}
		return nil
	})
	pruneEmptyDirs(filepath.Join(s.Root, "snapshots"))
	return res, nil
}

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// OpenBlob opens a published blob for reading.
func (s *Store) OpenBlob(hex string) (io.ReadSeekCloser, error) {
	f, err := os.Open(s.BlobPath(hex))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", hex, registry.ErrNotFound)
	}
	return f, err
}
