package registry

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
)

// NewGitBlobHash returns a SHA-1 that, fed the size bytes of a file, sums to
// its git blob id (the object id Hugging Face lists for non-LFS files):
// sha1("blob <size>\x00" + content).
func NewGitBlobHash(size int64) hash.Hash {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.FormatInt(size, 10) + "\x00"))
	return h
}

// GitBlobID is the git blob id of b.
func GitBlobID(b []byte) string {
	h := NewGitBlobHash(int64(len(b)))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// LFSPointer is the git-lfs pointer file that stands in a repository for a
// large file (its git blob id is the Hub's oid for an LFS file).
func LFSPointer(sha256hex string, size int64) string {
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha256hex, size)
}
