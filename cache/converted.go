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
	"strconv"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// A converted (GPU-ready) layout is a blob like any other, recorded as an
// OCI referrer of the model manifest it was made from. The referrer
// manifest blob is a valid OCI artifact manifest (artifactType
// registry.ArtifactTypeLayout(version), empty config, the layout as its one layer,
// "subject" the model manifest). Its descriptor, with annotations naming the
// subject, the version and the layout blob, is listed in referrers.json, an
// OCI index beside index.json (index.json lists models only, one entry per
// model, as other tools expect). Both are written under the "index" lock. A
// layout is kept while its model entry exists: GC drops referrers whose
// subject is gone from index.json, and then their blobs.
func withPrefix(d string) string {
	if strings.HasPrefix(d, "sha256:") {
		return d
	}
	return "sha256:" + d
}

// Converted returns the layout blob (sha256 hex) recorded for the model
// manifest manifestDigest (hex, with or without "sha256:") at this layout
// version, when it is recorded and the blob is present.
func (s *Store) Converted(manifestDigest string, version int) (blobHex string, ok bool) {
	idx, err := s.readRefs()
	if err != nil {
		return "", false
	}
	subject, at := withPrefix(manifestDigest), registry.ArtifactTypeLayout(version)
	for _, d := range idx.Manifests {
		if d.ArtifactType != at || d.Annotations[registry.AnnotationLayoutSubject] != subject {
			continue
		}
		hexd := strings.TrimPrefix(d.Annotations[registry.AnnotationLayoutBlob], "sha256:")
		if !registry.IsSHA256Hex(hexd) {
			continue
		}
		if fi, err := os.Stat(s.BlobPath(hexd)); err == nil && fi.Mode().IsRegular() {
			return hexd, true
		}
	}
	return "", false
}

// SetConverted records blobHex (already published, size bytes) as the
// layout of this version for the model manifest manifestDigest, replacing
// an earlier record for the same model and version.
func (s *Store) SetConverted(manifestDigest string, version int, blobHex string, size int64) error {
	if !s.HasBlob(blobHex, size) {
		return fmt.Errorf("cache: layout blob %s is not published", blobHex)
	}
	subject := withPrefix(manifestDigest)
	subjectHex := strings.TrimPrefix(subject, "sha256:")
	if !registry.IsSHA256Hex(subjectHex) {
		return fmt.Errorf("cache: bad manifest digest %q", manifestDigest)
	}
	subjectSize := int64(0)
	if fi, err := os.Stat(s.BlobPath(subjectHex)); err == nil {
		subjectSize = fi.Size()
	} else {
		return fmt.Errorf("cache: converted model manifest %s: %w", subjectHex, err)
	}
	emptyHex, err := s.PutBlob([]byte("{}"))
	if err != nil {
		return err
	}
	at := registry.ArtifactTypeLayout(version)
	ann := map[string]string{
		registry.AnnotationLayoutSubject: subject,
		registry.AnnotationLayoutVersion: strconv.Itoa(version),
		registry.AnnotationLayoutBlob:    "sha256:" + blobHex,
	}
	man, err := json.MarshalIndent(registry.OCIManifest{
		SchemaVersion: 2, MediaType: registry.MediaTypeOCIManifest, ArtifactType: at,
		Config:      registry.Descriptor{MediaType: registry.MediaTypeEmpty, Digest: "sha256:" + emptyHex, Size: 2},
		Layers:      []registry.Descriptor{{MediaType: at, Digest: "sha256:" + blobHex, Size: size}},
		Subject:     &registry.Descriptor{MediaType: registry.MediaTypeOCIManifest, Digest: subject, Size: subjectSize},
		Annotations: ann,
	}, "", "  ")
	if err != nil {
		return err
	}
	mhex, err := s.PutBlob(man)
	if err != nil {
		return err
	}
	unlock, err := s.Lock(context.Background(), "index")
	if err != nil {
		return err
	}
	defer unlock()
	refs, err := s.readRefs()
	if err != nil {
		return err
	}
	func(idx *ociIndex) {
		keep := idx.Manifests[:0]
		for _, d := range idx.Manifests {
			if !(d.ArtifactType == at && d.Annotations[registry.AnnotationLayoutSubject] == subject) {
				keep = append(keep, d)
			}
		}
		idx.Manifests = append(keep, registry.Descriptor{
			MediaType: registry.MediaTypeOCIManifest, ArtifactType: at,
			Digest: "sha256:" + mhex, Size: int64(len(man)), Annotations: ann,
		})
	}(refs)
	return s.writeRefs(refs)
}

// AddConverted copies a layout of size bytes from r into the cache,
// checking it hashes to blobHex (a layout that does not is never
// published), and records it with SetConverted as the layout of this
// version for the model manifest manifestDigest. A blob already in the
// cache is not copied again.
func (s *Store) AddConverted(manifestDigest string, version int, r io.Reader, blobHex string, size int64) error {
	if !registry.IsSHA256Hex(blobHex) || size < 0 {
		return fmt.Errorf("cache: bad layout blob %q (%d bytes)", blobHex, size)
	}
	if !s.HasBlob(blobHex, size) {
		tmp, err := os.CreateTemp(filepath.Join(s.Root, "partial"), "layout-*.tmp")
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, size+1))
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != size {
			err = fmt.Errorf("%w: layout sha256:%s: %d bytes, want %d", registry.ErrSizeMismatch, blobHex, n, size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); err == nil && got != blobHex {
			err = fmt.Errorf("%w: layout hashes to sha256:%s, want sha256:%s", registry.ErrDigestMismatch, got, blobHex)
		}
		if err == nil {
			err = s.Publish(tmp.Name(), blobHex)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	return s.SetConverted(manifestDigest, version, blobHex, size)
}

const refsFile = "referrers.json"

// readRefs reads referrers.json (empty when absent).
func (s *Store) readRefs() (*ociIndex, error) {
	var idx ociIndex
	err := readJSON(filepath.Join(s.Root, refsFile), &idx)
	if errors.Is(err, os.ErrNotExist) {
		return &ociIndex{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []registry.Descriptor{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: %s: %w", refsFile, err)
	}
	return &idx, nil
}

func (s *Store) writeRefs(idx *ociIndex) error {
	b, err := jsonIndent(idx)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(s.Root, refsFile), b, 0o644)
}

// gcLayouts, called by GC under the index lock with index.json read, keeps
// alive the layout referrers whose subject model is in index.json (their
// manifest, config and layout blobs) and drops the others from
// referrers.json.
func (s *Store) gcLayouts(idx *ociIndex, live map[string]bool) error {
	models := map[string]bool{}
	for _, d := range idx.Manifests {
		models[d.Digest] = true
	}
	refs, err := s.readRefs()
	if err != nil {
		return err
	}
	keep := refs.Manifests[:0:0]
	for _, d := range refs.Manifests {
		if !registry.IsLayoutReferrer(d) || !models[d.Annotations[registry.AnnotationLayoutSubject]] {
			continue
		}
		keep = append(keep, d)
		mhex := strings.TrimPrefix(d.Digest, "sha256:")
		live[mhex] = true
		b, err := s.ReadBlob(mhex, maxManifestSize)
		if err != nil {
			continue // a missing referrer manifest keeps nothing alive
		}
		var rm registry.OCIManifest
		if err := json.Unmarshal(b, &rm); err != nil {
			continue
		}
		live[strings.TrimPrefix(rm.Config.Digest, "sha256:")] = true
		for _, l := range rm.Layers {
			live[strings.TrimPrefix(l.Digest, "sha256:")] = true
		}
	}
	if len(keep) == len(refs.Manifests) {
		return nil
	}
	refs.Manifests = keep
	return s.writeRefs(refs)
}
