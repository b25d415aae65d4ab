package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ModelPack (CNCF model-spec) media types and annotations.
// Reference: https://github.com/modelpack/model-spec/blob/main/docs/spec.md
const (
	MediaTypeOCIManifest  = "application/vnd.oci.image.manifest.v1+json"
	ArtifactTypeModel     = "application/vnd.cncf.model.manifest.v1+json"
	MediaTypeModelConfig  = "application/vnd.cncf.model.config.v1+json"
	MediaTypeWeightRaw    = "application/vnd.cncf.model.weight.v1.raw"
	MediaTypeWeightConfig = "application/vnd.cncf.model.weight.config.v1.raw"
	MediaTypeDocRaw       = "application/vnd.cncf.model.doc.v1.raw"
	MediaTypeCodeRaw      = "application/vnd.cncf.model.code.v1.raw"

	AnnotationFilepath = "org.cncf.model.filepath"
	AnnotationRefName  = "org.opencontainers.image.ref.name"
	AnnotationCreated  = "org.opencontainers.image.created"
	AnnotationTitle    = "org.opencontainers.image.title" // the file name oras and kit write a layer to

	// gptoss's own annotations on the manifest.
	AnnotationName     = "org.gptoss.model.name"
	AnnotationRevision = "org.gptoss.model.revision"
	AnnotationFormat   = "org.gptoss.model.format"
	AnnotationSource   = "org.gptoss.model.source"
	AnnotationGitSHA1  = "org.gptoss.file.gitsha1"
	AnnotationRole     = "org.gptoss.file.role"
)

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// OCIManifest is an OCI image manifest carrying a ModelPack artifact.
type OCIManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Subject       *Descriptor       `json:"subject,omitempty"` // OCI 1.1 referrers: the manifest this one is about
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// A converted GPU-ready layout (gptoss convert) is stored and carried as an
// OCI referrer of the model manifest it was made from: an OCIManifest with
// artifactType ArtifactTypeLayout(version), the empty config, the layout
// file as its one layer and Subject the model manifest. The index entries
// that list such referrers carry these annotations, so a reader finds a
// model's layout without opening every manifest.
const (
	AnnotationLayoutSubject = "org.gptoss.layout.subject" // "sha256:<model manifest>"
	AnnotationLayoutVersion = "org.gptoss.layout.version"
	AnnotationLayoutBlob    = "org.gptoss.layout.blob" // "sha256:<layout blob>"
	MediaTypeEmpty          = "application/vnd.oci.empty.v1+json"
	EmptyJSON               = "{}" // the content of the empty config
	layoutArtifactPrefix    = "application/vnd.gptoss.layout."
)

// ArtifactTypeLayout is the artifact type of a converted layout of this
// version.
func ArtifactTypeLayout(version int) string {
	return layoutArtifactPrefix + "v" + strconv.Itoa(version)
}

// IsLayoutReferrer reports whether an index entry lists a converted layout
// (and not a model manifest).
func IsLayoutReferrer(d Descriptor) bool {
	return strings.HasPrefix(d.ArtifactType, layoutArtifactPrefix)
}

// ModelConfig is the ModelPack config blob (the fields gptoss fills).
type ModelConfig struct {
	Descriptor struct {
		CreatedAt string   `json:"createdAt,omitempty"`
		Name      string   `json:"name,omitempty"`
		Family    string   `json:"family,omitempty"`
		Vendor    string   `json:"vendor,omitempty"`
		Revision  string   `json:"revision,omitempty"`
		SourceURL string   `json:"sourceURL,omitempty"`
		Licenses  []string `json:"licenses,omitempty"`
	} `json:"descriptor"`
	Config struct {
		Architecture string `json:"architecture,omitempty"`
		Format       string `json:"format,omitempty"`
		ParamSize    string `json:"paramSize,omitempty"`
		Precision    string `json:"precision,omitempty"`
		Quantization string `json:"quantization,omitempty"`
	} `json:"config"`
	ModelFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diffIds"`
	} `json:"modelfs"`
}

// RoleOf guesses a file's role from its path.
func RoleOf(p string) Role {
	base := p[strings.LastIndex(p, "/")+1:]
	switch {
	case strings.HasSuffix(base, ".safetensors"), strings.HasSuffix(base, ".bin"), strings.HasSuffix(base, ".gguf"):
		return RoleWeights
	case strings.HasPrefix(base, "tokenizer") || base == "special_tokens_map.json" || base == "chat_template.jinja":
		return RoleTokenizer
	case strings.HasSuffix(base, ".json") || strings.HasSuffix(base, ".jinja"):
		return RoleConfig
	case base == "LICENSE" || base == "USAGE_POLICY" || strings.HasSuffix(base, ".md"):
		return RoleDoc
	}
	return RoleOther
}

func mediaTypeOf(f File) string {
	role := f.Role
	if role == "" {
		role = RoleOf(f.Path)
	}
	switch role {
	case RoleWeights:
		return MediaTypeWeightRaw
	case RoleConfig, RoleTokenizer:
		return MediaTypeWeightConfig
	case RoleDoc:
		return MediaTypeDocRaw
	}
	return MediaTypeCodeRaw
}

// Digest returns the "sha256:<hex>" digest of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ToOCI renders the manifest as a ModelPack OCI manifest plus its config
// blob. Every file must have its SHA256. The result is deterministic for a
// given manifest and created time.
func (m *Manifest) ToOCI(created time.Time) (manifest, config []byte, err error) {
	c := *m
	c.Files = append([]File(nil), m.Files...)
	c.SortFiles()
	var cfg ModelConfig
	cfg.Descriptor.Name = c.Name
	cfg.Descriptor.Revision = c.Revision
	cfg.Descriptor.SourceURL = c.Source
	if !created.IsZero() {
		cfg.Descriptor.CreatedAt = created.UTC().Format(time.RFC3339)
	}
	cfg.Config.Format = "safetensors"
	if strings.Contains(c.Name, "gpt-oss") {
		cfg.Descriptor.Family = "gpt-oss"
		cfg.Descriptor.Vendor = "OpenAI"
		cfg.Descriptor.Licenses = []string{"Apache-2.0"}
		cfg.Config.Architecture = "transformer"
		cfg.Config.Precision = "bfloat16"
		cfg.Config.Quantization = "mxfp4"
		if mod := Lookup(c.Name); mod != nil {
			cfg.Config.ParamSize = strings.ToLower(mod.Params)
		}
	}
	cfg.ModelFS.Type = "layers"
	om := OCIManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: ArtifactTypeModel,
		Annotations: map[string]string{
			AnnotationName: c.Name, AnnotationRevision: c.Revision, AnnotationFormat: c.Format, AnnotationSource: c.Source,
		}}
	if !created.IsZero() {
		om.Annotations[AnnotationCreated] = created.UTC().Format(time.RFC3339)
	}
	for _, f := range c.Files {
		if !IsSHA256Hex(f.SHA256) {
			return nil, nil, fmt.Errorf("%w: %s has no sha256", ErrInvalidManifest, f.Path)
		}
		d := Descriptor{MediaType: mediaTypeOf(f), Digest: "sha256:" + f.SHA256, Size: f.Size,
			Annotations: map[string]string{AnnotationFilepath: f.Path, AnnotationTitle: f.Path}}
		if f.GitSHA1 != "" {
			d.Annotations[AnnotationGitSHA1] = f.GitSHA1
		}
		if f.Role != "" {
			d.Annotations[AnnotationRole] = string(f.Role)
		}
		om.Layers = append(om.Layers, d)
		cfg.ModelFS.DiffIDs = append(cfg.ModelFS.DiffIDs, d.Digest)
	}
	if config, err = json.Marshal(&cfg); err != nil {
		return nil, nil, err
	}
	om.Config = Descriptor{MediaType: MediaTypeModelConfig, Digest: Digest(config), Size: int64(len(config))}
	if manifest, err = json.Marshal(&om); err != nil {
		return nil, nil, err
	}
	return manifest, config, nil
}

// FromOCI reads a ModelPack OCI manifest back into a Manifest and validates
// it: every layer needs a sha256 digest and a safe file path annotation.
func FromOCI(data []byte) (*Manifest, error) {
	var om OCIManifest
	if err := json.Unmarshal(data, &om); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	m := &Manifest{
		Name: om.Annotations[AnnotationName], Revision: om.Annotations[AnnotationRevision],
		Format: om.Annotations[AnnotationFormat], Source: om.Annotations[AnnotationSource],
	}
	for _, l := range om.Layers {
		hexd, ok := strings.CutPrefix(l.Digest, "sha256:")
		if !ok {
			return nil, fmt.Errorf("%w: layer digest %q is not sha256", ErrInvalidManifest, l.Digest)
		}
		p := l.Annotations[AnnotationFilepath]
		m.Files = append(m.Files, File{Path: p, Size: l.Size, SHA256: hexd,
			GitSHA1: l.Annotations[AnnotationGitSHA1], Role: Role(l.Annotations[AnnotationRole])})
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
