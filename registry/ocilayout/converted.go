package ocilayout

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// A model's converted GPU-ready layout (gptoss convert) travels in a layout
// as an OCI referrer of the model manifest, the way the gptoss cache keeps
// it: an OCI manifest with artifactType registry.ArtifactTypeLayout(version), the
// empty config, the layout file as its one layer and "subject" the model
// manifest's descriptor. index.json lists it (after its model) with the
// same artifactType and annotations naming the subject, the version, the
// layout blob and the model's ref name, so an import finds it without
// reading every manifest. Tools that only know models skip it (Models does).
const (
	AnnotationLayoutModel = "org.gptoss.layout.model" // the model's ref name "<name>:<format>"
)

// Converted names a converted layout blob: its layout version, sha256 (hex)
// and size.
type Converted struct {
	Version int
	SHA256  string
	Size    int64
}

// putReferrer writes the referrer manifest of c for the model manifest
// subject (and the empty config) and returns its index entry.
func (t *Target) putReferrer(c *Converted, subject registry.Descriptor, ref string) (registry.Descriptor, error) {
	var d registry.Descriptor
	if !registry.IsSHA256Hex(c.SHA256) || !t.has(c.SHA256, c.Size) {
		return d, fmt.Errorf("%w: the converted layout sha256:%s is not in %s", registry.ErrNotFound, c.SHA256, t.Path)
	}
	ed, err := t.putBytes([]byte(registry.EmptyJSON))
	if err != nil {
		return d, err
	}
	at := registry.ArtifactTypeLayout(c.Version)
	ann := map[string]string{
		registry.AnnotationLayoutSubject: subject.Digest,
		registry.AnnotationLayoutVersion: strconv.Itoa(c.Version),
		registry.AnnotationLayoutBlob:    "sha256:" + c.SHA256,
	}
	sub := registry.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	man, err := json.MarshalIndent(registry.OCIManifest{
		SchemaVersion: 2, MediaType: registry.MediaTypeOCIManifest, ArtifactType: at,
		Config:      registry.Descriptor{MediaType: registry.MediaTypeEmpty, Digest: ed, Size: int64(len(registry.EmptyJSON))},
		Layers:      []registry.Descriptor{{MediaType: at, Digest: "sha256:" + c.SHA256, Size: c.Size}},
		Subject:     &sub,
		Annotations: ann,
	}, "", "  ")
	if err != nil {
		return d, err
	}
	md, err := t.putBytes(man)
	if err != nil {
		return d, err
	}
	idxAnn := map[string]string{AnnotationLayoutModel: ref}
	for k, v := range ann {
		idxAnn[k] = v
	}
	return registry.Descriptor{MediaType: registry.MediaTypeOCIManifest, ArtifactType: at,
		Digest: md, Size: int64(len(man)), Annotations: idxAnn}, nil
}

// Converted returns the converted layout of this version that the layout
// carries for model m, if any. The referrer manifest must hash to its index
// entry, name m's manifest as its subject and hold one sha256 layer whose
// blob is in the layout; the blob's bytes are checked as they are copied
// (open it with Open, its SHA256 and Size).
func (s *Source) Converted(m Model, version int) (*Converted, bool, error) {
	b, err := s.read(IndexFile, MaxIndexSize)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", s.path, err)
	}
	idx, err := parseIndex(b)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", s.path, err)
	}
	at := registry.ArtifactTypeLayout(version)
	for i := len(idx.Manifests) - 1; i >= 0; i-- { // the last entry wins
		d := idx.Manifests[i]
		if d.ArtifactType != at || d.Annotations[registry.AnnotationLayoutSubject] != m.Digest {
			continue
		}
		c, err := s.readReferrer(d, m.Digest, version)
		if err != nil {
			return nil, false, fmt.Errorf("%s: converted layout of %s (%s): %w", s.path, m.Name, m.Format, err)
		}
		return c, true, nil
	}
	return nil, false, nil
}

func (s *Source) readReferrer(d registry.Descriptor, subject string, version int) (*Converted, error) {
	hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok || !registry.IsSHA256Hex(hexd) {
		return nil, fmt.Errorf("%w: digest %q is not sha256", registry.ErrInvalidManifest, d.Digest)
	}
	if d.Size < 0 || d.Size > MaxManifestSize {
		return nil, fmt.Errorf("%w: referrer %s: size %d", registry.ErrInvalidManifest, d.Digest, d.Size)
	}
	b, err := s.read(blobDir+hexd, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size || registry.Digest(b) != d.Digest {
		return nil, fmt.Errorf("%w: referrer %s does not match its descriptor in index.json", registry.ErrDigestMismatch, d.Digest)
	}
	var rm registry.OCIManifest
	if err := json.Unmarshal(b, &rm); err != nil {
		return nil, fmt.Errorf("%w: referrer %s: %v", registry.ErrInvalidManifest, d.Digest, err)
	}
	at := registry.ArtifactTypeLayout(version)
	if rm.ArtifactType != at || rm.Subject == nil || rm.Subject.Digest != subject || len(rm.Layers) != 1 {
		return nil, fmt.Errorf("%w: referrer %s is not a %s layout of %s with one layer", registry.ErrInvalidManifest, d.Digest, at, subject)
	}
	l := rm.Layers[0]
	lh, ok := strings.CutPrefix(l.Digest, "sha256:")
	if !ok || !registry.IsSHA256Hex(lh) || l.Size <= 0 {
		return nil, fmt.Errorf("%w: referrer %s: layer %q (%d bytes)", registry.ErrInvalidManifest, d.Digest, l.Digest, l.Size)
	}
	if s.tar != nil {
		if e, ok := s.tar.entries[blobDir+lh]; !ok || e.size != l.Size {
			return nil, fmt.Errorf("%w: the layout blob %s is not in the tar (or has another size)", registry.ErrNotFound, l.Digest)
		}
	}
	return &Converted{Version: version, SHA256: lh, Size: l.Size}, nil
}
