package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Scheme names a kind of source.
const (
	SchemeHF    = "hf"
	SchemeLocal = "file"
)

// Ref is a parsed model reference.
type Ref struct {
	Scheme   string // SchemeHF or SchemeLocal
	Repo     string // "openai/gpt-oss-20b" for hf; the directory for file
	Revision string // branch, tag or commit; "" means the default ("main")
	Format   string // a key of Model.Formats; "" means the model's default or every file
	Include  []string
	Exclude  []string
	Model    *Model // the catalog entry, or nil for an arbitrary repository
}

// String is the canonical form of the reference.
func (r Ref) String() string {
	s := r.Scheme + "://" + r.Repo
	if r.Scheme == SchemeLocal {
		s = r.Repo
	}
	if r.Revision != "" {
		s += "@" + r.Revision
	}
	return s
}

// Name is the model name used in the cache: the repository id for hf, the
// catalog repo when a catalog model is pulled from elsewhere.
func (r Ref) Name() string {
	if r.Model != nil {
		return r.Model.Repo
	}
	if r.Scheme == SchemeLocal {
		return "local/" + filepath.Base(filepath.Clean(r.Repo))
	}
	return r.Repo
}

// Parse reads a model reference:
//
//	20b, 120b, gpt-oss-20b, openai/gpt-oss-20b   catalog models (Hugging Face)
//	hf://org/repo[@rev]                          any Hugging Face model repo
//	org/repo[@rev]                               the same, without the scheme
//	./dir, /abs/dir, file:///abs/dir             a plain directory
//
// A suffix "@rev" pins a branch, tag or commit.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("%w: empty", ErrInvalidRef)
	}
	if strings.HasPrefix(s, "file://") {
		return Ref{Scheme: SchemeLocal, Repo: strings.TrimPrefix(s, "file://")}, nil
	}
	if isPathLike(s) {
		return Ref{Scheme: SchemeLocal, Repo: s}, nil
	}
	scheme := SchemeHF
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, s = s[:i], s[i+3:]
		if scheme != SchemeHF {
			return Ref{}, fmt.Errorf("%w: %s://… names a place, not a model: give the model and the place, e.g. gptoss pull 20b --from %s://%s", ErrInvalidRef, scheme, scheme, s)
		}
	}
	name, rev := s, ""
	if i := strings.LastIndex(s, "@"); i >= 0 {
		name, rev = s[:i], s[i+1:]
		if rev == "" {
			return Ref{}, fmt.Errorf("%w: %q: empty revision after @", ErrInvalidRef, s)
		}
		if strings.ContainsAny(rev, " \t\n") || strings.Contains(rev, "..") {
			return Ref{}, fmt.Errorf("%w: %q: bad revision", ErrInvalidRef, rev)
		}
	}
	if m := Lookup(name); m != nil {
		return Ref{Scheme: SchemeHF, Repo: m.Repo, Revision: rev, Model: m}, nil
	}
	if err := checkRepoID(name); err != nil {
		return Ref{}, err
	}
	return Ref{Scheme: SchemeHF, Repo: name, Revision: rev}, nil
}

func isPathLike(s string) bool {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasPrefix(s, "~/") || s == "." || s == ".." {
		return true
	}
	return false
}

// checkRepoID accepts "org/name" made of letters, digits, '-', '_', '.'.
func checkRepoID(id string) error {
	parts := strings.Split(id, "/")
	if len(parts) != 2 {
		if _, err := os.Stat(id); err == nil {
			return fmt.Errorf("%w: %q: to use a directory, write ./%s", ErrInvalidRef, id, id)
		}
		return fmt.Errorf("%w: %q: want 20b, 120b, org/repo or a directory", ErrInvalidRef, id)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || len(p) > 96 {
			return fmt.Errorf("%w: %q: bad repository id", ErrInvalidRef, id)
		}
		for _, r := range p {
			ok := r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			if !ok {
				return fmt.Errorf("%w: %q: bad character %q in repository id", ErrInvalidRef, id, r)
			}
		}
	}
	return nil
}
