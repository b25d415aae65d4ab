package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"syscall"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// Plan says what a Fetch of a manifest into a store has to do.
type Plan struct {
	Files        []FilePlan // one per manifest file, in manifest order
	TotalBytes   int64      // size of all files
	CachedBytes  int64      // bytes of files already in the cache
	ResumedBytes int64      // bytes already in resumable partial downloads
	NeedBytes    int64      // bytes left to download
	DiskBytes    int64      // disk space the download still has to take
	FreeBytes    int64      // free space on the cache's filesystem
}

// FilePlan is one file of a Plan.
type FilePlan struct {
	File    registry.File
	Key     string // the partial/lock key (see doc.go)
	Cached  bool   // already in the cache
	Resumed int64  // bytes already downloaded into a partial
}

// FileKey names the partial download and lock of f: its sha256 when known,
// else "git-" + its git blob id, else "p-" and a hash of the model, revision,
// path and size.
func FileKey(m *registry.Manifest, f registry.File) string {
	switch {
	case f.SHA256 != "":
		return f.SHA256
	case f.GitSHA1 != "":
		return "git-" + f.GitSHA1
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%d", m.Name, m.Revision, f.Path, f.Size))
	return "p-" + hex.EncodeToString(h[:])[:40]
}

// cachedSHA returns the sha256 under which f is already in dst, if it is:
// by its own sha256, or through the alias of its git blob id.
func cachedSHA(dst *cache.Store, f registry.File) (string, bool) {
	sha := f.SHA256
	if sha == "" && f.GitSHA1 != "" {
		sha, _ = dst.Alias(f.GitSHA1)
	}
	if sha != "" && dst.HasBlob(sha, f.Size) {
		return sha, true
	}
	return "", false
}

// Plan computes what is missing from dst — files not in the cache, less the
// bytes already in resumable partials — and checks that the cache's
// filesystem has room for it. When it has not, Plan returns the plan and an
// error wrapping cache.ErrNoSpace that gives the numbers; nothing has been
// downloaded then.
func (e *Engine) Plan(m *registry.Manifest, dst *cache.Store) (Plan, error) {
	var p Plan
	seen := make(map[string]bool)
	for _, f := range m.Files {
		fp := FilePlan{File: f, Key: FileKey(m, f)}
		p.TotalBytes += f.Size
		if sha, ok := cachedSHA(dst, f); ok {
			fp.Cached = true
			fp.File.SHA256 = sha
			p.CachedBytes += f.Size
		} else if !seen[fp.Key] {
			seen[fp.Key] = true
			partPath, err := dst.PartialPath(fp.Key, ".part")
			if err != nil {
				return p, err
			}
			journalPath, _ := dst.PartialPath(fp.Key, ".journal")
			allocated := int64(0)
			if j, err := readJournal(journalPath, fp.Key, f); err == nil && j != nil {
				if fi, err := os.Stat(partPath); err == nil && fi.Size() == f.Size {
					fp.Resumed = j.doneBytes()
				}
			}
			if fi, err := os.Stat(partPath); err == nil {
				allocated = min(allocatedBytes(fi), f.Size)
			}
			p.ResumedBytes += fp.Resumed
			p.NeedBytes += f.Size - fp.Resumed
			p.DiskBytes += f.Size - allocated
		}
		p.Files = append(p.Files, fp)
	}
	free, err := e.freeSpace(dst)
	if err != nil {
		return p, err
	}
	p.FreeBytes = free
	if p.DiskBytes > free {
		return p, fmt.Errorf("%w: need %s more, %s free on %s", cache.ErrNoSpace,
			HumanBytes(p.DiskBytes), HumanBytes(free), dst.Root)
	}
	return p, nil
}

// allocatedBytes is the disk space a file takes (its blocks), which for a
// preallocated partial is its full size and for a sparse one what was written.
func allocatedBytes(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
