package registry

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Role says what a file is for. It maps onto a ModelPack layer media type.
type Role string

const (
	RoleWeights   Role = "weights" // *.safetensors shards
	RoleConfig    Role = "config"  // config.json, tokenizer, index, chat template
	RoleDoc       Role = "doc"     // README, LICENSE, USAGE_POLICY
	RoleOther     Role = "other"
	RoleTokenizer Role = "tokenizer" // tokenizer.json and friends
)

// File is one file of a model snapshot. Path is slash-separated and relative
// to the snapshot root; it has been checked by CleanPath.
//
// SHA256 is the content digest (lower-case hex). A source that cannot give it
// before the download (a Hugging Face non-LFS file, a plain directory listing
// that has not been hashed) leaves it empty and sets GitSHA1 where it knows
// the git blob id; the transfer engine computes SHA256 as the bytes arrive and
// checks GitSHA1 too.
type File struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256,omitempty"`
	GitSHA1 string `json:"gitSha1,omitempty"`
	Role    Role   `json:"role,omitempty"`
}

// Manifest is a model snapshot: what every package between Resolve and the
// runtime speaks. It maps one to one onto an OCI manifest (see oci.go).
type Manifest struct {
	Name     string `json:"name"`     // e.g. "openai/gpt-oss-20b"
	Revision string `json:"revision"` // the immutable revision (a 40-hex commit for HF)
	Format   string `json:"format"`   // "hf", "original", "metal" or "custom"
	Source   string `json:"source"`   // where it came from, credentials stripped
	Files    []File `json:"files"`
}

// TotalSize is the sum of the file sizes.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Lookup returns the file with the given path.
func (m *Manifest) Lookup(p string) (File, bool) {
	for _, f := range m.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

var (
	hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// IsSHA256Hex reports whether s is 64 lower-case hex digits.
func IsSHA256Hex(s string) bool { return hex64.MatchString(s) }

// IsCommit reports whether s is a 40-hex git commit id.
func IsCommit(s string) bool { return hex40.MatchString(s) }

// maxFileSize bounds a declared size: no gpt-oss file is near it, and it keeps
// arithmetic on sizes far from overflow. A listing claiming more is hostile.
const maxFileSize = 1 << 42 // 4 TiB

// Validate checks a manifest that came from outside (a server listing, a file
// on disk, a registry): every path is clean and relative, no path repeats or
// is a directory of another, sizes are sane, digests are well formed. Sources
// call it before returning a manifest; the cache calls it before trusting one.
func (m *Manifest) Validate() error {
	if m.Name == "" {
		return fmt.Errorf("%w: manifest has no name", ErrInvalidManifest)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("%w: manifest %s lists no files", ErrInvalidManifest, m.Name)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		clean, err := CleanPath(f.Path)
		if err != nil {
			return err
		}
		if clean != f.Path {
			return fmt.Errorf("%w: path %q is not in canonical form (%q)", ErrInvalidManifest, f.Path, clean)
		}
		if seen[f.Path] {
			return fmt.Errorf("%w: path %q listed twice", ErrInvalidManifest, f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 || f.Size > maxFileSize {
			return fmt.Errorf("%w: %s: implausible size %d", ErrInvalidManifest, f.Path, f.Size)
		}
		if f.SHA256 != "" && !IsSHA256Hex(f.SHA256) {
			return fmt.Errorf("%w: %s: malformed sha256 %q", ErrInvalidManifest, f.Path, f.SHA256)
		}
		if f.GitSHA1 != "" && !IsCommit(f.GitSHA1) {
			return fmt.Errorf("%w: %s: malformed git sha1 %q", ErrInvalidManifest, f.Path, f.GitSHA1)
		}
	}
	// A file may not also be a directory of another file ("a" and "a/b").
	for p := range seen {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if seen[d] {
				return fmt.Errorf("%w: %q is both a file and a directory", ErrInvalidManifest, d)
			}
		}
	}
	return nil
}

// SortFiles orders the files by path, the canonical order for digests.
func (m *Manifest) SortFiles() {
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
}

// CleanPath checks a path that came from outside and returns it in canonical
// slash form. It rejects absolute paths, "..", empty elements, backslashes,
// NUL and other control characters, so that joining the result under a
// directory can never leave that directory.
func CleanPath(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: unsafe path %q: %s", ErrInvalidManifest, p, why)
	}
	if p == "" {
		return bad("empty")
	}
	if len(p) > 4096 {
		return bad("too long")
	}
	if strings.HasPrefix(p, "/") || (len(p) >= 2 && p[1] == ':') {
		return bad("absolute")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return bad("control character or backslash")
		}
	}
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "..":
			return bad("parent directory element")
		case "":
			return bad("empty element")
		case ".":
			return bad("dot element")
		}
	}
	return p, nil
}

// MarshalIndent is json.MarshalIndent for a manifest, files sorted.
func (m *Manifest) MarshalIndent() ([]byte, error) {
	c := *m
	c.Files = append([]File(nil), m.Files...)
	c.SortFiles()
	return json.MarshalIndent(&c, "", "  ")
}
