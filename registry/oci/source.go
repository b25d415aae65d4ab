package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// Media types beyond ModelPack's that Resolve understands.
const (
	MediaTypeOCIIndex          = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest    = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList        = "application/vnd.docker.distribution.manifest.list.v2+json"
	ArtifactTypeKitOps         = "application/vnd.kitops.modelkit.manifest.v1+json"
	MediaTypeKitOpsConfig      = "application/vnd.kitops.modelkit.config.v1+json"
	mediaTypeKitOpsPrefix      = "application/vnd.kitops.modelkit."
	mediaTypeDockerAIPrefix    = "application/vnd.docker.ai."
	mediaTypeModelPackPrefix   = "application/vnd.cncf.model."
	AnnotationTitle            = "org.opencontainers.image.title"
	mediaTypeDockerAIConfigPre = "application/vnd.docker.ai.model.config."
)

// kind classifies a manifest: "modelpack", "kitops", "docker", or "".
func kind(om *registry.OCIManifest) string {
	at, cfg := om.ArtifactType, om.Config.MediaType
	switch {
	case at == registry.ArtifactTypeModel || cfg == registry.MediaTypeModelConfig:
		return "modelpack"
	case at == ArtifactTypeKitOps || cfg == MediaTypeKitOpsConfig:
		return "kitops"
	case strings.HasPrefix(cfg, mediaTypeDockerAIConfigPre):
		return "docker"
	}
	return ""
}

// isTar reports whether a layer media type is an archive (or compressed),
// which gptoss cannot map onto a single file yet.
func isTar(mt string) bool {
	return strings.HasSuffix(mt, ".tar") || strings.Contains(mt, ".tar+") || strings.Contains(mt, "+gzip") ||
		strings.Contains(mt, "+zstd") || strings.HasSuffix(mt, ".tar.gz") || strings.HasSuffix(mt, "dir.tar")
}

// Resolve fetches the manifest and maps its layers to files. The revision
// is the gptoss revision annotation when there is one (a mirror keeps the
// Hub commit), else the first 40 hex digits of the manifest digest.
func (c *Client) Resolve(ctx context.Context, ref registry.Ref) (*registry.Manifest, error) {
	om, digest, err := c.fetchManifest(ctx)
	if err != nil {
		return nil, err
	}
	k := kind(om)
	if k == "" {
		at := om.ArtifactType
		if at == "" {
			at = "none, config " + om.Config.MediaType
		}
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s is not a model artifact (artifact type %s); gptoss reads CNCF ModelPack (%s), KitOps ModelKits and Docker Model Runner models",
			registry.ErrUnsupported, c.ref, at, registry.ArtifactTypeModel)}
	}
	m := &registry.Manifest{
		Name:     om.Annotations[registry.AnnotationName],
		Revision: om.Annotations[registry.AnnotationRevision],
		Format:   om.Annotations[registry.AnnotationFormat],
	}
	if ref.Repo != "" {
		m.Name = ref.Name()
	}
	if m.Name == "" {
		m.Name = c.ref.Repo
	}
	if m.Format == "" {
		m.Format = "custom"
	}
	if m.Revision == "" || strings.ContainsAny(m.Revision, "/ \t\n") || strings.Contains(m.Revision, "..") {
		m.Revision = strings.TrimPrefix(digest, "sha256:")[:40]
	}
	for _, l := range om.Layers {
		mt := l.MediaType
		p := l.Annotations[registry.AnnotationFilepath]
		if p == "" {
			p = l.Annotations[AnnotationTitle]
		}
		if isTar(mt) {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s: layer %s (%s) is an archive; gptoss reads raw-file layers only for now (repack with one uncompressed file per layer, e.g. modctl build --raw)",
				registry.ErrUnsupported, c.ref, shortDigest(l.Digest), mt)}
		}
		if !strings.HasPrefix(mt, mediaTypeModelPackPrefix) && !strings.HasPrefix(mt, mediaTypeKitOpsPrefix) &&
			!strings.HasPrefix(mt, mediaTypeDockerAIPrefix) && mt != "application/octet-stream" {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s: layer %s has media type %q, not a model file", registry.ErrUnsupported, c.ref, shortDigest(l.Digest), mt)}
		}
		if p == "" && k == "docker" {
			p = dockerDefaultName(mt)
		}
		if p == "" {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s: layer %s (%s) has no file path annotation (%s or %s)",
				registry.ErrInvalidManifest, c.ref, shortDigest(l.Digest), mt, registry.AnnotationFilepath, AnnotationTitle)}
		}
		clean, err := registry.CleanPath(p)
		if err != nil {
			return nil, &registry.Permanent{Err: err}
		}
		hexd, ok := strings.CutPrefix(l.Digest, "sha256:")
		if !ok || !registry.IsSHA256Hex(hexd) {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s: layer digest %q is not sha256", registry.ErrUnsupported, c.ref, l.Digest)}
		}
		f := registry.File{Path: clean, Size: l.Size, SHA256: hexd,
			GitSHA1: l.Annotations[registry.AnnotationGitSHA1], Role: registry.Role(l.Annotations[registry.AnnotationRole])}
		if f.GitSHA1 != "" && !registry.IsCommit(f.GitSHA1) {
			f.GitSHA1 = ""
		}
		m.Files = append(m.Files, f)
	}
	if err := m.Validate(); err != nil {
		return nil, &registry.Permanent{Err: err}
	}
	if r := ref.Revision; registry.IsCommit(r) && r != m.Revision {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s holds revision %s, not %s", registry.ErrNotFound, c.ref, m.Revision, r)}
	}
	c.mu.Lock()
	c.resolved = digest
	c.mu.Unlock()
	return m, nil
}

// dockerDefaultName names the layers of Docker Model Runner's first
// layout (config v0.1), which carry no file path: one file per media type.
func dockerDefaultName(mt string) string {
	switch strings.TrimPrefix(mt, mediaTypeDockerAIPrefix) {
	case "gguf.v3":
		return "model.gguf"
	case "license":
		return "LICENSE"
	case "mmproj":
		return "model.mmproj"
	case "chat.template.jinja":
		return "chat_template.jinja"
	}
	return ""
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// fetchManifest GETs and checks the manifest named by the reference.
func (c *Client) fetchManifest(ctx context.Context) (*registry.OCIManifest, string, error) {
	u := c.url("manifests", c.ref.reference())
	resp, err := c.do(ctx, request{op: "manifest", method: http.MethodGet, url: u, header: http.Header{
		"Accept": {registry.MediaTypeOCIManifest + ", " + MediaTypeDockerManifest + ", " + MediaTypeOCIIndex + ", " + MediaTypeDockerList},
	}})
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", c.httpError("manifest", u, resp)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", c.ref, err)
	}
	if len(body) > maxManifestSize {
		return nil, "", &registry.Permanent{Err: fmt.Errorf("%w: %s: manifest larger than %d bytes", registry.ErrInvalidManifest, c.ref, maxManifestSize)}
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if c.ref.Digest != "" && digest != c.ref.Digest {
		return nil, "", &registry.Permanent{Err: fmt.Errorf("%w: manifest of %s has digest %s", registry.ErrDigestMismatch, c.ref, digest)}
	}
	var om registry.OCIManifest
	if err := json.Unmarshal(body, &om); err != nil {
		return nil, "", &registry.Permanent{Err: fmt.Errorf("%w: %s: %v", registry.ErrInvalidManifest, c.ref, err)}
	}
	mt := om.MediaType
	if mt == "" {
		mt = strings.TrimSpace(strings.Split(resp.Header.Get("Content-Type"), ";")[0])
	}
	switch mt {
	case MediaTypeOCIIndex, MediaTypeDockerList:
		return nil, "", &registry.Permanent{Err: fmt.Errorf("%w: %s is an image index (several manifests); name one manifest by its digest", registry.ErrUnsupported, c.ref)}
	case registry.MediaTypeOCIManifest, MediaTypeDockerManifest, "":
	default:
		return nil, "", &registry.Permanent{Err: fmt.Errorf("%w: %s: manifest media type %q", registry.ErrUnsupported, c.ref, mt)}
	}
	if om.SchemaVersion != 2 {
		return nil, "", &registry.Permanent{Err: fmt.Errorf("%w: %s: schemaVersion %d", registry.ErrInvalidManifest, c.ref, om.SchemaVersion)}
	}
	return &om, digest, nil
}

const maxRedirects = 5

// Open reads [off, off+n) of a file's blob with a ranged GET, following
// redirects (to a storage backend or CDN) without sending credentials to
// another host.
func (c *Client) Open(ctx context.Context, f registry.File, off, n int64) (io.ReadCloser, error) {
	if off < 0 || off > f.Size || (n >= 0 && off+n > f.Size) {
		return nil, &registry.Permanent{Err: fmt.Errorf("oci: range %d+%d outside %s (%d bytes)", off, n, f.Path, f.Size)}
	}
	if n < 0 {
		n = f.Size - off
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	if !registry.IsSHA256Hex(f.SHA256) {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: oci: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	hdr := http.Header{}
	if !(off == 0 && n == f.Size) {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	hdr.Set("Accept-Encoding", "identity")
	u := c.url("blobs", "sha256:"+f.SHA256)
	op := "download " + f.Path
	resp, err := c.do(ctx, request{op: op, method: http.MethodGet, url: u, header: hdr})
	if err != nil {
		return nil, err
	}
	cur, _ := url.Parse(u)
	for hop := 0; ; hop++ {
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := cur.Parse(resp.Header.Get("Location"))
			drain(resp)
			if err != nil || (loc.Scheme != "http" && loc.Scheme != "https") || hop >= maxRedirects {
				return nil, &registry.Permanent{Err: fmt.Errorf("oci: %s: bad or too many redirects", f.Path)}
			}
			cur = loc
			if loc.Host == c.ref.Host {
				resp, err = c.do(ctx, request{op: op, method: http.MethodGet, url: loc.String(), header: hdr})
			} else {
				// Another host (object storage, a CDN): the URL carries its
				// own signature; never send our credentials there.
				var req *http.Request
				req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
				if err == nil {
					for k, v := range hdr {
						req.Header[k] = v
					}
					req.Header.Set("User-Agent", c.ua)
					resp, err = c.http.Do(req)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%s: %s", op, strings.ReplaceAll(err.Error(), loc.String(), redact(loc)))
			}
			continue
		case http.StatusOK, http.StatusPartialContent:
			if err := registry.CheckRange(resp, f, off, n, "registry"); err != nil {
				resp.Body.Close()
				return nil, err
			}
			return registry.ExactReader(resp.Body, resp.Body, n), nil
		}
		return nil, c.httpError(op, cur.String(), resp)
	}
}
