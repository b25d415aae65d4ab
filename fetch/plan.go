package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

// cachedSHA returns the sha256 under which f (keyed key in manifest m) is
// already in dst, if it is: by its own sha256, through the alias of its git
// blob id, or, for a file without either, through the finished record an
// earlier Fetch of the same file left (see finishedSHA).
func cachedSHA(dst *cache.Store, m *registry.Manifest, f registry.File, key string) (string, bool) {
	sha := f.SHA256
	if sha == "" && f.GitSHA1 != "" {
		sha, _ = dst.Alias(f.GitSHA1)
	}
	if sha == "" && f.GitSHA1 == "" {
		sha, _ = finishedSHA(dst, m, f, key)
	}
	if sha != "" && dst.HasBlob(sha, f.Size) {
		return sha, true
	}
	return "", false
}

// digestless reports whether the source gave no digest at all for f.
func digestless(f registry.File) bool { return f.SHA256 == "" && f.GitSHA1 == "" }

// finishedSHA reads the finished record of a digest-less file: the sha256
// its bytes had as they landed in an earlier Fetch of the same file (same
// key, source, name, revision, path and size) that published it but whose
// manifest was never committed (the process was killed in between).
func finishedSHA(dst *cache.Store, m *registry.Manifest, f registry.File, key string) (string, bool) {
	if !digestless(f) {
		return "", false
	}
	p, err := dst.PartialPath(key, ".journal")
	if err != nil {
		return "", false
	}
	j, err := readJournal(p, key, f)
	if err != nil || j == nil || j.Published == "" {
		return "", false
	}
	if j.Source != m.Source || j.Name != m.Name || j.Revision != m.Revision || j.Path != f.Path {
		return "", false
	}
	return j.Published, true
}

// writeFinished records that digest-less file f of m, keyed key, was
// published under sha (it replaces the file's resume journal).
func writeFinished(journalPath string, m *registry.Manifest, f registry.File, key string, partSize int64, sha string) error {
	j := journal{Version: journalVersion, Key: key, Path: f.Path, Size: f.Size, PartSize: partSize,
		Done: [][2]int64{}, Published: sha, Source: m.Source, Name: m.Name, Revision: m.Revision}
	b, err := json.Marshal(&j)
	if err != nil {
		return err
	}
	if err := cache.WriteFileAtomic(journalPath, b, 0o644); err != nil {
		return writeError(fmt.Errorf("write finished record: %w", err))
	}
	return nil
}

// removeFinished deletes the finished records of the digest-less files
// keyed keys, once their manifest is committed and the cache finds them by
// sha256. Records another process is working on (its lock is held) and
// journals of downloads in progress are left alone.
func removeFinished(dst *cache.Store, keys []string) {
	for _, key := range keys {
		p, err := dst.PartialPath(key, ".journal")
		if err != nil {
			continue
		}
		unlock, ok, err := dst.TryLock("blob-" + key)
		if err != nil || !ok {
			continue
		}
		b, err := os.ReadFile(p)
		var j journal
		if err == nil && len(b) <= maxJournalSize && json.Unmarshal(b, &j) == nil && j.Key == key && j.Published != "" {
			os.Remove(p)
		}
		removeJournalTemps(p)
		unlock()
	}
}

// removeJournalTemps removes what a process killed while it rewrote the
// journal at p left: the temp file of that atomic write. The caller holds
// the blob's lock, so no writer of this key is alive and they are garbage.
func removeJournalTemps(p string) {
	if tmps, err := filepath.Glob(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".*.tmp")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
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
		if sha, ok := cachedSHA(dst, m, f, fp.Key); ok {
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
