// Package verify checks models without modifying anything: it re-hashes
// cached blobs against their manifests and checks the snapshot directory
// that other tools load from. (Structure and gpt-oss schema checks of the
// safetensors files come with the convert work.)
package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// Problem kinds.
const (
	OK               = "ok"
	Missing          = "missing"
	SizeMismatch     = "size mismatch"
	DigestMismatch   = "digest mismatch"
	SnapshotMismatch = "snapshot differs"
	SnapshotMissing  = "snapshot file missing"
)

// FileResult is the check of one file.
type FileResult struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Report is the check of one cached model.
type Report struct {
	Name     string       `json:"name"`
	Format   string       `json:"format"`
	Revision string       `json:"revision"`
	Files    []FileResult `json:"files"`
	OK       bool         `json:"ok"`
}

// Entry re-hashes every file of a cached entry (sha256, and the git blob id
// where the manifest records one) and checks that the snapshot directory's
// file is the same content. progress, if set, gets the bytes hashed (it may
// be called from several goroutines at once).
func Entry(ctx context.Context, s *cache.Store, e cache.Entry, progress func(n int64)) (*Report, error) {
	m := e.Manifest
	r := &Report{Name: m.Name, Format: m.Format, Revision: m.Revision, Files: make([]FileResult, len(m.Files)), OK: true}
	workers := runtime.GOMAXPROCS(0)
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, f := range m.Files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.Files[i] = checkFile(ctx, s, m, f, progress)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, f := range r.Files {
		if f.Status != OK {
			r.OK = false
		}
	}
	return r, nil
}

func checkFile(ctx context.Context, s *cache.Store, m *registry.Manifest, f registry.File, progress func(int64)) FileResult {
	res := FileResult{Path: f.Path, Size: f.Size, SHA256: f.SHA256, Status: OK}
	blob := s.BlobPath(f.SHA256)
	fi, err := os.Stat(blob)
	if err != nil {
		res.Status, res.Detail = Missing, "blob "+f.SHA256+" is not in the cache"
		return res
	}
	if fi.Size() != f.Size {
		res.Status, res.Detail = SizeMismatch, fmt.Sprintf("blob has %d bytes, manifest says %d", fi.Size(), f.Size)
		return res
	}
	sum, gitsum, err := hashFile(ctx, blob, f.Size, f.GitSHA1 != "", progress)
	if err != nil {
		res.Status, res.Detail = Missing, err.Error()
		return res
	}
	if sum != f.SHA256 {
		res.Status, res.Detail = DigestMismatch, "content hashes to "+sum
		return res
	}
	if f.GitSHA1 != "" && gitsum != f.GitSHA1 {
		res.Status, res.Detail = DigestMismatch, "git blob id is "+gitsum+", manifest says "+f.GitSHA1
		return res
	}
	snap := filepath.Join(s.SnapshotDir(m), filepath.FromSlash(f.Path))
	si, err := os.Stat(snap)
	switch {
	case err != nil:
		res.Status, res.Detail = SnapshotMissing, snap
	case !os.SameFile(si, fi):
		// Not the blob's inode (copied, or replaced): compare the content.
		ssum, _, err := hashFile(ctx, snap, si.Size(), false, nil)
		if err != nil || ssum != f.SHA256 {
			res.Status, res.Detail = SnapshotMismatch, snap+" is not the verified blob"
		}
	}
	return res
}

// hashFile returns the sha256 and (when git) the git blob sha1 of a file.
func hashFile(ctx context.Context, path string, size int64, git bool, progress func(int64)) (string, string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer fh.Close()
	h := sha256.New()
	var g hash.Hash
	w := io.Writer(h)
	if git {
		g = registry.NewGitBlobHash(size)
		w = io.MultiWriter(h, g)
	}
	buf := make([]byte, 1<<20)
	for {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		n, err := fh.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			if progress != nil {
				progress(int64(n))
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", "", err
		}
	}
	gs := ""
	if g != nil {
		gs = hex.EncodeToString(g.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), gs, nil
}
