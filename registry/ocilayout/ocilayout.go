// Package ocilayout reads and writes models as an OCI image layout
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md),
// either a directory or a tar of one: `gptoss export 20b --to DIR|FILE.tar`
// and `gptoss import` / `gptoss pull 20b --from DIR|FILE.tar`.
//
// A layout holds:
//
//	oci-layout          {"imageLayoutVersion":"1.0.0"}
//	index.json          an OCI image index; one descriptor per model manifest,
//	                    annotated with org.opencontainers.image.ref.name
//	                    "<name>:<format>" and gptoss's name/format/revision
//	blobs/sha256/<hex>  every file, config and manifest, named by its sha256
//
// Each model is a CNCF ModelPack manifest (registry.Manifest.ToOCI): one raw
// layer per file, its path in the org.cncf.model.filepath annotation. The
// gptoss cache is itself such a layout, so `--from $OTHER_GPTOSS_HOME` works.
//
// Target (export) writes blobs atomically after checking their sha256 and
// writes the manifest and index.json last. A tar target is staged in a
// directory beside it (FILE.tar.staging) and written at Commit in one pass:
// entries sorted by name, mtime 0, uid/gid 0, no user or group names, so the
// same content gives the same bytes (PAX headers only for files over 8 GiB).
//
// Source (import) reads index.json and the manifests, never trusting them:
// sizes are bounded, a manifest must hash to its descriptor, every path goes
// through registry.CleanPath, and a tar is scanned once up front, refusing
// links, devices, absolute or ".." names and duplicates before anything is
// read or written. Blob contents are checked by the transfer engine
// (package fetch) as they arrive: a layer whose digest lies is never
// published. A tar is never extracted: byte ranges are read in place.
package ocilayout

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

const (
	// LayoutFile and IndexFile are the two files at the root of a layout.
	LayoutFile = "oci-layout"
	IndexFile  = "index.json"

	// MediaTypeIndex is the media type of index.json.
	MediaTypeIndex = "application/vnd.oci.image.index.v1+json"

	// AnnotationRequested records the revision the model was pulled as
	// ("main") in the exporting cache, so that an import keeps it and an
	// offline `gptoss pull 20b` finds the model. Same key as the cache's.
	AnnotationRequested = "org.gptoss.model.requested"

	// MaxIndexSize and MaxManifestSize bound what is read into memory from
	// a layout that came from elsewhere.
	MaxIndexSize    = 4 << 20
	MaxManifestSize = 4 << 20
	// maxModels bounds the manifests of one index; maxTarEntries the
	// entries of a tar.
	maxModels     = 1024
	maxTarEntries = 1 << 20

	layoutJSON = `{"imageLayoutVersion":"1.0.0"}`
	blobDir    = "blobs/sha256/"
)

// ErrNotLayout says a path is not an OCI image layout (or a tar of one).
var ErrNotLayout = errors.New("not an OCI image layout")

// index is index.json.
type index struct {
	SchemaVersion int                   `json:"schemaVersion"`
	MediaType     string                `json:"mediaType,omitempty"`
	Manifests     []registry.Descriptor `json:"manifests"`
}

// IsTarPath reports whether p names a layout tar (by its .tar suffix).
func IsTarPath(p string) bool { return strings.EqualFold(filepath.Ext(p), ".tar") }

// Is reports whether p is an OCI layout: a directory holding an oci-layout
// file (NewSource then wants index.json too: a layout without it is an
// unfinished export), or an existing regular file named *.tar.
func Is(p string) bool {
	p, err := expand(p)
	if err != nil {
		return false
	}
	fi, err := os.Stat(p)
	if err != nil {
		return false
	}
	if fi.Mode().IsRegular() {
		return IsTarPath(p)
	}
	if !fi.IsDir() {
		return false
	}
	fi, err = os.Stat(filepath.Join(p, LayoutFile))
	return err == nil && fi.Mode().IsRegular()
}

// expand turns ~/ into the home directory and makes p absolute.
func expand(p string) (string, error) {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(h, p[2:])
		}
	}
	return filepath.Abs(p)
}

func parseIndex(b []byte) (*index, error) {
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w: index.json: %v", registry.ErrInvalidManifest, err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: index.json: schemaVersion %d, want 2", registry.ErrInvalidManifest, idx.SchemaVersion)
	}
	if len(idx.Manifests) > maxModels {
		return nil, fmt.Errorf("%w: index.json lists %d manifests (at most %d)", registry.ErrInvalidManifest, len(idx.Manifests), maxModels)
	}
	return &idx, nil
}

// tarEntry is where a regular file's bytes lie in a tar.
type tarEntry struct {
	off, size int64
}

// tarIndex is the table of contents of a layout tar, built once.
type tarIndex struct {
	path    string
	size    int64 // of the tar file when scanned
	entries map[string]tarEntry
}

// scanTar reads the headers of a tar (seeking over the data) and records
// where each regular file's bytes are. It refuses, with the entry's name,
// anything that extracting the tar could turn against the machine or that
// makes the layout ambiguous: absolute names, "..", links, devices, FIFOs,
// sparse files and duplicate names. Directories are accepted and ignored.
func scanTar(path string) (*tarIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", registry.ErrNotFound, err)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNotLayout, path)
	}
	bad := func(name, why string) error {
		return fmt.Errorf("%w: %s: tar entry %q: %s; refusing the whole archive", registry.ErrInvalidManifest, path, name, why)
	}
	ti := &tarIndex{path: path, size: fi.Size(), entries: map[string]tarEntry{}}
	seen := map[string]bool{}
	tr := tar.NewReader(f)
	for n := 0; ; n++ {
		if n > maxTarEntries {
			return nil, fmt.Errorf("%w: %s: more than %d tar entries", registry.ErrInvalidManifest, path, maxTarEntries)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: reading tar: %v", registry.ErrInvalidManifest, path, err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // pax global header (git archive writes one); carries no file
		}
		name := strings.TrimPrefix(h.Name, "./")
		isDir := h.Typeflag == tar.TypeDir
		clean := strings.TrimSuffix(name, "/")
		if clean == "" || clean == "." {
			if isDir {
				continue // the archive's root
			}
			return nil, bad(h.Name, "empty name")
		}
		if _, err := registry.CleanPath(clean); err != nil {
			return nil, bad(h.Name, "unsafe name (absolute, \"..\", or odd characters)")
		}
		if seen[clean] {
			return nil, bad(h.Name, "appears twice")
		}
		seen[clean] = true
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // TypeRegA is how old tars mark files
		case tar.TypeSymlink:
			return nil, bad(h.Name, fmt.Sprintf("is a symbolic link (to %q)", h.Linkname))
		case tar.TypeLink:
			return nil, bad(h.Name, fmt.Sprintf("is a hard link (to %q)", h.Linkname))
		case tar.TypeChar, tar.TypeBlock:
			return nil, bad(h.Name, "is a device")
		case tar.TypeFifo:
			return nil, bad(h.Name, "is a FIFO")
		case tar.TypeGNUSparse:
			return nil, bad(h.Name, "is a sparse file")
		default:
			return nil, bad(h.Name, fmt.Sprintf("has unsupported type %q", h.Typeflag))
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, bad(h.Name, "is a sparse file")
			}
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		if h.Size < 0 || off+h.Size > ti.size {
			return nil, bad(h.Name, "runs past the end of the archive")
		}
		ti.entries[clean] = tarEntry{off: off, size: h.Size}
	}
	return ti, nil
}

// sectionOf opens the tar and returns a reader over the bytes of entry name.
func (ti *tarIndex) open(name string) (*os.File, tarEntry, error) {
	e, ok := ti.entries[name]
	if !ok {
		return nil, e, fmt.Errorf("%w: %s has no %s", registry.ErrNotFound, ti.path, name)
	}
	f, err := os.Open(ti.path)
	if err != nil {
		return nil, e, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, e, err
	}
	if fi.Size() != ti.size {
		f.Close()
		return nil, e, &registry.Permanent{Err: fmt.Errorf("%w: %s changed while in use (%d bytes, was %d)", registry.ErrSizeMismatch, ti.path, fi.Size(), ti.size)}
	}
	return f, e, nil
}

// readSmall reads a whole entry of at most max bytes.
func (ti *tarIndex) readSmall(name string, max int64) ([]byte, error) {
	f, e, err := ti.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if e.size > max {
		return nil, fmt.Errorf("%w: %s in %s is %d bytes (at most %d)", registry.ErrInvalidManifest, name, ti.path, e.size, max)
	}
	b := make([]byte, e.size)
	if _, err := f.ReadAt(b, e.off); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", ti.path, name, err)
	}
	return b, nil
}

// readSmallFile reads a regular file (not a symlink) of at most max bytes.
func readSmallFile(p string, max int64) ([]byte, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", registry.ErrNotFound, err)
		}
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", registry.ErrInvalidManifest, p)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%w: %s is %d bytes (at most %d)", registry.ErrInvalidManifest, p, fi.Size(), max)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", registry.ErrInvalidManifest, p, max)
	}
	return b, nil
}
