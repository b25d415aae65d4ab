package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// Aliases map a git blob id (the sha1 a Hugging Face listing gives for a
// non-LFS file) onto the sha256 of the same content, so a file that is
// already in the cache is recognised although its listing names no sha256.
// Each alias is a tiny file aliases/git-sha1/<sha1> holding the sha256 hex,
// written atomically after the transfer engine has verified both digests.
// An alias is only a hint: callers still check HasBlob.

func (s *Store) aliasPath(gitSHA1 string) string {
	return filepath.Join(s.Root, "aliases", "git-sha1", gitSHA1)
}

// SetAlias records that the content with git blob id gitSHA1 has the given
// sha256 (both lower-case hex).
func (s *Store) SetAlias(gitSHA1, sha256 string) error {
	if !registry.IsCommit(gitSHA1) || !registry.IsSHA256Hex(sha256) {
		return fmt.Errorf("cache: bad alias %q -> %q", gitSHA1, sha256)
	}
	p := s.aliasPath(gitSHA1)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return WriteFileAtomic(p, []byte(sha256+"\n"), 0o644)
}

// Alias returns the sha256 recorded for a git blob id.
func (s *Store) Alias(gitSHA1 string) (sha256 string, ok bool) {
	if !registry.IsCommit(gitSHA1) {
		return "", false
	}
	b, err := os.ReadFile(s.aliasPath(gitSHA1))
	if err != nil || len(b) > 128 {
		return "", false
	}
	h := strings.TrimSpace(string(b))
	if !registry.IsSHA256Hex(h) {
		return "", false
	}
	return h, true
}
