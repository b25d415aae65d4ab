package ocilayout

import (
	"archive/tar"
	"bufio"
	"bytes"
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
	"sync"
	"time"

	"github.com/gptoss/gptoss/internal/fsutil"
	"github.com/gptoss/gptoss/registry"
)

// Target writes models into an OCI layout directory or tar. It implements
// registry.Target; fetch.Engine.Mirror drives it.
//
// Directory: blobs land in DIR/blobs/sha256 (temp file, sha256 checked,
// fsync, rename); Commit writes the config and manifest blobs, then
// index.json (atomically), so the layout shows the model only when every
// blob is there. Models already in index.json stay; one with the same ref
// name ("<name>:<format>") is replaced. Stat trusts an existing blob of the
// right size: a re-export uploads only what is missing.
//
// Tar (a path ending in .tar): blobs are staged in PATH.staging/ (kept
// across an interrupted export, so a re-run resumes) and Commit writes the
// whole tar to a temp file beside it and renames it into place, then removes
// the staging directory. The tar needs the space of the model twice while
// it is written. An existing tar's blobs count as present (Stat) and are
// copied into the new tar, so exporting a second model adds to it; when
// nothing changed, the tar is not rewritten. Entries are sorted by name,
// with mtime 0, uid/gid 0, mode 0644/0755 and no user names: the same
// models give the same bytes.
type Target struct {
	Path string // the directory or tar, absolute

	// Requested, when set, is recorded in the next Commit's index entry
	// (AnnotationRequested): the revision the model was pulled as.
	Requested string
	// Created, when set, dates the manifest and its index entry. Zero keeps
	// the output reproducible.
	Created time.Time
	// Converted, when set, is the converted GPU-ready layout of the next
	// Commit's model: its blob must already be in the layout (Put); Commit
	// records it as a referrer of the model manifest (see converted.go).
	Converted *Converted

	dir string    // where blobs go: Path, or the staging dir of a tar
	tar bool      // Path is a tar
	old *tarIndex // the existing tar at Path, if any

	mu sync.Mutex // serialises Commit
}

// NewTarget prepares the layout at p: a tar when p ends in .tar, else a
// directory (created if missing; an existing one must be empty or a layout).
func NewTarget(p string) (*Target, error) {
	abs, err := expand(p)
	if err != nil {
		return nil, err
	}
	t := &Target{Path: abs, dir: abs}
	if IsTarPath(abs) {
		t.tar, t.dir = true, abs+".staging"
		if fi, err := os.Stat(abs); err == nil {
			if !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("%w: %s exists and is not a file", ErrNotLayout, abs)
			}
			if t.old, err = scanTar(abs); err != nil {
				return nil, fmt.Errorf("%s exists and cannot be added to: %w", abs, err)
			}
			for _, n := range []string{LayoutFile, IndexFile} {
				if _, ok := t.old.entries[n]; !ok {
					return nil, fmt.Errorf("%w: %s exists and has no %s; refusing to overwrite it", ErrNotLayout, abs, n)
				}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return nil, err
		}
	} else if ents, err := os.ReadDir(abs); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(abs, LayoutFile)); err != nil {
			return nil, fmt.Errorf("%w: %s is a non-empty directory without %s; refusing to write into it", ErrNotLayout, abs, LayoutFile)
		}
	}
	if err := t.prepare(); err != nil {
		return nil, err
	}
	return t, nil
}

// prepare creates the blob directory and the oci-layout file.
func (t *Target) prepare() error {
	if err := os.MkdirAll(filepath.Join(t.dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	lp := filepath.Join(t.dir, LayoutFile)
	if _, err := os.Stat(lp); err == nil {
		return nil
	}
	return fsutil.WriteFileAtomic(lp, []byte(layoutJSON), 0o644)
}

func (t *Target) blobPath(hexd string) string {
	return filepath.Join(t.dir, "blobs", "sha256", hexd)
}

// Describe names the layout.
func (t *Target) Describe() string { return t.Path }

// Stat reports whether the blob of f is already in the layout (or in the
// existing tar), with the right size.
func (t *Target) Stat(ctx context.Context, f registry.File) (bool, error) {
	if !registry.IsSHA256Hex(f.SHA256) {
		return false, &registry.Permanent{Err: fmt.Errorf("%w: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	return t.has(f.SHA256, f.Size), nil
}

func (t *Target) has(hexd string, size int64) bool {
	if fi, err := os.Lstat(t.blobPath(hexd)); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
		return true
	}
	if t.old != nil {
		if e, ok := t.old.entries[blobDir+hexd]; ok && e.size == size {
			return true
		}
	}
	return false
}

// Put copies f.Size bytes from r into blobs/sha256/<f.SHA256>, hashing them
// on the way: a blob that does not hash to f.SHA256 is never published.
func (t *Target) Put(ctx context.Context, f registry.File, r io.ReaderAt) error {
	if !registry.IsSHA256Hex(f.SHA256) {
		return &registry.Permanent{Err: fmt.Errorf("%w: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	if err := t.prepare(); err != nil { // a tar's staging dir is removed at each Commit
		return err
	}
	tmp, err := os.CreateTemp(t.dir, ".gptoss-put-*.tmp")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), registry.ContextReader(ctx, io.NewSectionReader(r, 0, f.Size)), buf)
	if err != nil {
		return fmt.Errorf("put %s: %w", f.Path, err)
	}
	if n != f.Size {
		return &registry.Permanent{Err: fmt.Errorf("%w: %s: read %d bytes, want %d", registry.ErrSizeMismatch, f.Path, n, f.Size)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return &registry.Permanent{Err: fmt.Errorf("%w: %s hashes to %s, want %s", registry.ErrDigestMismatch, f.Path, got, f.SHA256)}
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), t.blobPath(f.SHA256)); err != nil {
		return err
	}
	ok = true
	fsutil.SyncDir(filepath.Dir(t.blobPath(f.SHA256)))
	return nil
}

// putBytes writes a small blob (config, manifest) unless it is there.
func (t *Target) putBytes(b []byte) (string, error) {
	d := registry.Digest(b)
	hexd := strings.TrimPrefix(d, "sha256:")
	if t.has(hexd, int64(len(b))) {
		return d, nil
	}
	return d, fsutil.WriteFileAtomic(t.blobPath(hexd), b, 0o644)
}

// Commit writes m's config and ModelPack manifest blobs and adds the
// manifest to index.json under the ref name "<name>:<format>" (replacing an
// entry of that name). Every file's blob must be there. For a tar it then
// writes the tar.
func (t *Target) Commit(ctx context.Context, m *registry.Manifest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := m.Validate(); err != nil {
		return err
	}
	if err := t.prepare(); err != nil {
		return err
	}
	for _, f := range m.Files {
		if !registry.IsSHA256Hex(f.SHA256) || !t.has(f.SHA256, f.Size) {
			return fmt.Errorf("%w: commit %s: the blob of %s is not in %s", registry.ErrNotFound, m.Name, f.Path, t.Path)
		}
	}
	man, cfg, err := m.ToOCI(t.Created)
	if err != nil {
		return err
	}
	if _, err := t.putBytes(cfg); err != nil {
		return err
	}
	md, err := t.putBytes(man)
	if err != nil {
		return err
	}
	ref := m.Name + ":" + m.Format
	ann := map[string]string{
		registry.AnnotationRefName:  ref,
		registry.AnnotationName:     m.Name,
		registry.AnnotationFormat:   m.Format,
		registry.AnnotationRevision: m.Revision,
	}
	if t.Requested != "" {
		ann[AnnotationRequested] = t.Requested
	}
	if !t.Created.IsZero() {
		ann[registry.AnnotationCreated] = t.Created.UTC().Format(time.RFC3339)
	}
	var oldIdx []byte
	if t.tar && t.old != nil {
		oldIdx, err = t.old.readSmall(IndexFile, MaxIndexSize)
	} else if !t.tar {
		oldIdx, err = readSmallFile(filepath.Join(t.dir, IndexFile), MaxIndexSize)
		if errors.Is(err, registry.ErrNotFound) {
			oldIdx, err = nil, nil
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", t.Path, err)
	}
	idx := &index{SchemaVersion: 2, MediaType: MediaTypeIndex}
	if oldIdx != nil {
		if idx, err = parseIndex(oldIdx); err != nil {
			return fmt.Errorf("%s: %w", t.Path, err)
		}
		idx.MediaType = MediaTypeIndex
	}
	keep := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if d.Annotations[registry.AnnotationRefName] != ref {
			keep = append(keep, d)
		}
	}
	modelDesc := registry.Descriptor{
		MediaType: registry.MediaTypeOCIManifest, ArtifactType: registry.ArtifactTypeModel,
		Digest: md, Size: int64(len(man)), Annotations: ann,
	}
	keep = append(keep, modelDesc)
	// Converted layouts stay while their model does (and is not given a
	// new one now).
	models := map[string]bool{}
	for _, d := range keep {
		if !registry.IsLayoutReferrer(d) {
			models[d.Digest] = true
		}
	}
	idx.Manifests = keep[:0]
	for _, d := range keep {
		if registry.IsLayoutReferrer(d) {
			subj := d.Annotations[registry.AnnotationLayoutSubject]
			if !models[subj] || (t.Converted != nil && subj == md && d.ArtifactType == registry.ArtifactTypeLayout(t.Converted.Version)) {
				continue
			}
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	if t.Converted != nil {
		ld, err := t.putReferrer(t.Converted, modelDesc, ref)
		if err != nil {
			return err
		}
		idx.Manifests = append(idx.Manifests, ld)
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if !t.tar {
		return fsutil.WriteFileAtomic(filepath.Join(t.dir, IndexFile), b, 0o644)
	}
	return t.writeTar(ctx, b, oldIdx)
}

// writeTar writes the tar at Path from the staging directory and the
// previous tar, then removes the staging directory.
func (t *Target) writeTar(ctx context.Context, idx, oldIdx []byte) error {
	type blob struct {
		path  string   // in the staging dir, or
		entry tarEntry // in the old tar
		size  int64
	}
	blobs := map[string]blob{}
	fresh := 0
	ents, err := os.ReadDir(filepath.Join(t.dir, "blobs", "sha256"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !registry.IsSHA256Hex(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		blobs[e.Name()] = blob{path: filepath.Join(t.dir, "blobs", "sha256", e.Name()), size: fi.Size()}
		fresh++
	}
	if t.old != nil {
		for name, e := range t.old.entries {
			h, ok := strings.CutPrefix(name, blobDir)
			if !ok || !registry.IsSHA256Hex(h) {
				continue
			}
			if b, dup := blobs[h]; dup && b.size == e.size {
				fresh--
				continue
			}
			blobs[h] = blob{entry: e, size: e.size}
		}
	}
	if fresh == 0 && bytes.Equal(idx, oldIdx) {
		return os.RemoveAll(t.dir) // nothing new: keep the tar as it is
	}
	hexes := make([]string, 0, len(blobs))
	for h := range blobs {
		hexes = append(hexes, h)
	}
	sort.Strings(hexes)

	tmp, err := os.CreateTemp(filepath.Dir(t.Path), "."+filepath.Base(t.Path)+".*.tmp")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	tw := tar.NewWriter(bw)
	epoch := time.Unix(0, 0).UTC()
	hdr := func(name string, typ byte, size int64) error {
		mode := int64(0o644)
		if typ == tar.TypeDir {
			mode = 0o755
		}
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Size: size, Mode: mode, ModTime: epoch})
	}
	for _, d := range []string{"blobs/", blobDir} {
		if err := hdr(d, tar.TypeDir, 0); err != nil {
			return err
		}
	}
	var old *os.File
	if t.old != nil {
		if old, _, err = t.old.open(LayoutFile); err != nil {
			return err
		}
		defer old.Close()
	}
	buf := make([]byte, 1<<20)
	for _, h := range hexes {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := blobs[h]
		if err := hdr(blobDir+h, tar.TypeReg, b.size); err != nil {
			return err
		}
		var n int64
		if b.path != "" {
			f, err := os.Open(b.path)
			if err != nil {
				return err
			}
			n, err = io.CopyBuffer(tw, io.LimitReader(f, b.size), buf)
			f.Close()
			if err != nil {
				return fmt.Errorf("writing %s: blob %s: %w", t.Path, h, err)
			}
		} else if n, err = io.CopyBuffer(tw, io.NewSectionReader(old, b.entry.off, b.entry.size), buf); err != nil {
			return fmt.Errorf("writing %s: blob %s: %w", t.Path, h, err)
		}
		if n != b.size {
			return fmt.Errorf("writing %s: blob %s: %d of %d bytes (changed while exporting?)", t.Path, h, n, b.size)
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{IndexFile, idx}, {LayoutFile, []byte(layoutJSON)}} {
		if err := hdr(f.name, tar.TypeReg, int64(len(f.data))); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), t.Path); err != nil {
		return err
	}
	ok = true
	fsutil.SyncDir(filepath.Dir(t.Path))
	if t.old, err = scanTar(t.Path); err != nil {
		return err
	}
	return os.RemoveAll(t.dir)
}
