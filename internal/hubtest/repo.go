package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// DefaultLFSThreshold is the size above which a file is stored in LFS even when
// its name does not match an LFS pattern (the Hub's pre-receive hook rejects
// regular git files larger than 10 MiB).
const DefaultLFSThreshold = 10 << 20

// DefaultLFSPatterns are the name globs (path.Match on the base name) whose
// files are always LFS files, whatever their size.
var DefaultLFSPatterns = []string{"*.safetensors", "*.bin", "*.gguf", "*.pt"}

// commitTime is the author/committer time of every synthetic commit, and the
// repos' lastModified: 2025-08-05T00:00:00Z (the gpt-oss release day).
var commitTime = time.Date(2025, 8, 5, 0, 0, 0, 0, time.UTC)

// File describes one file of a served revision, as scanned from disk.
type File struct {
	Path   string // slash-separated path inside the repo
	Size   int64  // content size in bytes
	SHA256 string // hex sha256 of the content (computed for every file)
	// GitSHA1 is the id of the git blob the repo stores for this path: for a
	// regular file sha1("blob <size>\x00"+content); for an LFS file the blob
	// is the LFS pointer text, so this is the pointer's blob id. It is the
	// "oid" of tree / paths-info entries, "blobId" of siblings and the ETag of
	// a regular file's resolve response.
	GitSHA1 string
	LFS     bool // stored in LFS: resolve redirects to the CDN
	// PointerSize is the size of the LFS pointer text (0 for regular files).
	PointerSize int64
	// Local is the absolute path of the file on disk.
	Local string
}

// Pointer returns the git-lfs pointer text the hub stores for an LFS file.
func (f File) Pointer() string { return registry.LFSPointer(f.SHA256, f.Size) }

// Revision is one branch of a served repo.
type Revision struct {
	Branch string // branch name, e.g. "main"
	Commit string // 40-hex commit id (a real git commit object hash over the tree)
	Tree   string // 40-hex git tree id of the root directory
	Dir    string // directory on disk
	Files  []File // sorted by Path
}

// File returns the file at path p, if any.
func (r Revision) File(p string) (File, bool) {
	i := sort.Search(len(r.Files), func(i int) bool { return r.Files[i].Path >= p })
	if i < len(r.Files) && r.Files[i].Path == p {
		return r.Files[i], true
	}
	return File{}, false
}

// TotalSize is the sum of the content sizes of all files.
func (r Revision) TotalSize() int64 {
	var n int64
	for _, f := range r.Files {
		n += f.Size
	}
	return n
}

// Repo is a snapshot of a served repo's description.
type Repo struct {
	ID            string
	DefaultBranch string
	Commit        string // commit of the default branch
	Files         []File // files of the default branch
	Private       bool
	Gated         bool
	Revisions     map[string]Revision // branch name → revision (includes the default branch)
}

// entry is one node of a revision's tree (file or directory), precomputed for
// the tree and paths-info endpoints.
type entry struct {
	Dir  bool
	Path string
	OID  string // blob id (files) or tree id (directories)
	File *File  // nil for directories
}

// revision is the server-side form of a Revision.
type revision struct {
	Revision
	entries []entry          // all files and directories (not the root), sorted by path
	byPath  map[string]int   // path → index in entries
	files   map[string]*File // path → file
}

// scanCache memoizes per-file hashes across repos and servers of one process,
// keyed by absolute path, size and modification time, so tests that serve the
// same multi-GB fixture many times hash it once.
var scanCache sync.Map // string → File

type scanKey struct {
	abs   string
	size  int64
	mtime int64
}

func (k scanKey) String() string { return fmt.Sprintf("%s\x00%d\x00%d", k.abs, k.size, k.mtime) }

// scanDir walks dir and builds a revision. isLFS decides which files are LFS.
func scanDir(dir, branch string, isLFS func(p string, size int64) bool) (*revision, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	type job struct {
		rel  string
		abs  string
		info fs.FileInfo
	}
	var jobs []job
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" && p != abs {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Stat(p) // follow symlinks
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{rel: filepath.ToSlash(rel), abs: p, info: info})
		return nil
	})
	if err != nil {
		return nil, err
	}
	files := make([]File, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			files[i], errs[i] = hashFile(j.rel, j.abs, j.info, isLFS(j.rel, j.info.Size()))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(files, func(a, b int) bool { return files[a].Path < files[b].Path })
	return buildRevision(branch, abs, files), nil
}

func hashFile(rel, abs string, info fs.FileInfo, lfs bool) (File, error) {
	key := scanKey{abs, info.Size(), info.ModTime().UnixNano()}.String()
	if v, ok := scanCache.Load(key); ok {
		f := v.(File)
		f.Path = rel
		if f.LFS == lfs {
			return f, nil
		}
	}
	fh, err := os.Open(abs)
	if err != nil {
		return File{}, err
	}
	defer fh.Close()
	sh := sha256.New()
	var w io.Writer = sh
	gh := registry.NewGitBlobHash(info.Size()) // git blob id of a regular file
	if !lfs {
		w = io.MultiWriter(sh, gh)
	}
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(w, fh, buf)
	if err != nil {
		return File{}, fmt.Errorf("hubtest: hashing %s: %w", abs, err)
	}
	if n != info.Size() {
		return File{}, fmt.Errorf("hubtest: %s changed while hashing", abs)
	}
	f := File{Path: rel, Size: n, SHA256: hex.EncodeToString(sh.Sum(nil)), LFS: lfs, Local: abs}
	if lfs {
		ptr := registry.LFSPointer(f.SHA256, n)
		f.GitSHA1 = registry.GitBlobID([]byte(ptr))
		f.PointerSize = int64(len(ptr))
	} else {
		f.GitSHA1 = hex.EncodeToString(gh.Sum(nil))
	}
	scanCache.Store(key, f)
	return f, nil
}

// buildRevision computes git tree ids, the commit id and the entry index.
func buildRevision(branch, dir string, files []File) *revision {
	rv := &revision{
		Revision: Revision{Branch: branch, Dir: dir, Files: files},
		byPath:   map[string]int{},
		files:    map[string]*File{},
	}
	type node struct {
		children map[string]*node
		file     *File
	}
	root := &node{children: map[string]*node{}}
	dirs := map[string]bool{}
	for i := range rv.Files {
		f := &rv.Files[i]
		rv.files[f.Path] = f
		parts := strings.Split(f.Path, "/")
		n := root
		for k, p := range parts {
			if k == len(parts)-1 {
				n.children[p] = &node{file: f}
				break
			}
			dirs[strings.Join(parts[:k+1], "/")] = true
			c := n.children[p]
			if c == nil {
				c = &node{children: map[string]*node{}}
				n.children[p] = c
			}
			n = c
		}
	}
	treeIDs := map[string]string{}
	var hashTree func(prefix string, n *node) string
	hashTree = func(prefix string, n *node) string {
		names := make([]string, 0, len(n.children))
		for name := range n.children {
			names = append(names, name)
		}
		// git sorts tree entries by name, directories compared as "name/".
		key := func(name string) string {
			if n.children[name].file == nil {
				return name + "/"
			}
			return name
		}
		sort.Slice(names, func(a, b int) bool { return key(names[a]) < key(names[b]) })
		var body bytes.Buffer
		for _, name := range names {
			c := n.children[name]
			var id string
			mode := "100644"
			if c.file == nil {
				mode = "40000"
				id = hashTree(path.Join(prefix, name), c)
			} else {
				id = c.file.GitSHA1
			}
			raw, _ := hex.DecodeString(id)
			fmt.Fprintf(&body, "%s %s\x00", mode, name)
			body.Write(raw)
		}
		h := sha1.New()
		fmt.Fprintf(h, "tree %d\x00", body.Len())
		h.Write(body.Bytes())
		id := hex.EncodeToString(h.Sum(nil))
		treeIDs[prefix] = id
		return id
	}
	rv.Tree = hashTree("", root)
	ts := commitTime.Unix()
	commit := fmt.Sprintf("tree %s\nauthor hubtest <hubtest@example.invalid> %d +0000\ncommitter hubtest <hubtest@example.invalid> %d +0000\n\nUpload folder using huggingface_hub\n", rv.Tree, ts, ts)
	h := sha1.New()
	fmt.Fprintf(h, "commit %d\x00", len(commit))
	io.WriteString(h, commit)
	rv.Commit = hex.EncodeToString(h.Sum(nil))

	for d := range dirs {
		rv.entries = append(rv.entries, entry{Dir: true, Path: d, OID: treeIDs[d]})
	}
	for i := range rv.Files {
		f := &rv.Files[i]
		rv.entries = append(rv.entries, entry{Path: f.Path, OID: f.GitSHA1, File: f})
	}
	sort.Slice(rv.entries, func(a, b int) bool { return rv.entries[a].Path < rv.entries[b].Path })
	for i, e := range rv.entries {
		rv.byPath[e.Path] = i
	}
	return rv
}

// children returns the entries under dir ("" = root): direct children only,
// or all descendants when recursive. ok is false when dir is not a directory.
func (rv *revision) children(dir string, recursive bool) ([]entry, bool) {
	if dir != "" {
		i, ok := rv.byPath[dir]
		if !ok || !rv.entries[i].Dir {
			return nil, false
		}
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	var out []entry
	for _, e := range rv.entries {
		if !strings.HasPrefix(e.Path, prefix) {
			continue
		}
		if !recursive && strings.Contains(e.Path[len(prefix):], "/") {
			continue
		}
		out = append(out, e)
	}
	return out, true
}

// repo is the server-side state of one served repository.
type repo struct {
	id            string
	defaultBranch string
	private       bool
	privateTokens map[string]bool // tokens with access to a private repo; empty = every valid token
	gated         bool
	accepted      map[string]bool // tokens that accepted the gate
	revs          map[string]*revision
	commits       map[string]*revision
}

func (rp *repo) snapshot() Repo {
	r := Repo{ID: rp.id, DefaultBranch: rp.defaultBranch, Private: rp.private, Gated: rp.gated, Revisions: map[string]Revision{}}
	for b, rv := range rp.revs {
		rv2 := rv.Revision
		rv2.Files = append([]File(nil), rv.Files...)
		r.Revisions[b] = rv2
	}
	def := r.Revisions[rp.defaultBranch]
	r.Commit, r.Files = def.Commit, def.Files
	return r
}

// resolve maps a revision string (branch, "HEAD", or a full or ≥7-char
// abbreviated commit id) to a revision.
func (rp *repo) resolve(rev string) (*revision, bool) {
	if rev == "" || rev == "HEAD" {
		rev = rp.defaultBranch
	}
	if rv, ok := rp.revs[rev]; ok {
		return rv, true
	}
	if rv, ok := rp.commits[rev]; ok {
		return rv, true
	}
	if len(rev) >= 7 && len(rev) < 40 && isHex(rev) {
		var found *revision
		for c, rv := range rp.commits {
			if strings.HasPrefix(c, rev) {
				if found != nil && found != rv {
					return nil, false
				}
				found = rv
			}
		}
		return found, found != nil
	}
	return nil, false
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
