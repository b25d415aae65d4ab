// Package local is the plain-directory source: `gptoss pull 20b --from DIR`.
//
// Every regular file under the directory (symlinks to regular files
// included, hidden entries such as .git and .cache skipped) is part of the
// listing. A directory carries no digests, so the transfer engine computes
// them while copying, and the cache derives a revision from them.
package local

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// Source reads a model from a directory.
type Source struct {
	Dir string
}

// New returns a source for dir.
func New(dir string) (*Source, error) {
	if strings.HasPrefix(dir, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(h, dir[2:])
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", registry.ErrNotFound, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", registry.ErrInvalidRef, abs)
	}
	return &Source{Dir: abs}, nil
}

// Describe names the directory.
func (s *Source) Describe() string { return s.Dir }

// Resolve lists the directory. The name comes from ref (the catalog model
// when one was named, else the directory's name).
func (s *Source) Resolve(ctx context.Context, ref registry.Ref) (*registry.Manifest, error) {
	m := &registry.Manifest{Name: ref.Name(), Source: s.Dir}
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p == s.Dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p) // follows a symlink
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.Dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		m.Files = append(m.Files, registry.File{Path: rel, Size: fi.Size(), Role: registry.RoleOf(rel)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.SortFiles()
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%w: %s has no files", registry.ErrNotFound, s.Dir)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Open reads a byte range of a file.
func (s *Source) Open(ctx context.Context, f registry.File, off, n int64) (io.ReadCloser, error) {
	p, err := registry.CleanPath(f.Path)
	if err != nil {
		return nil, &registry.Permanent{Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fh, err := os.Open(filepath.Join(s.Dir, filepath.FromSlash(p)))
	if err != nil {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %v", registry.ErrNotFound, err)}
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if fi.Size() != f.Size {
		fh.Close()
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s changed size (%d, listed %d)", registry.ErrSizeMismatch, f.Path, fi.Size(), f.Size)}
	}
	if off < 0 || off > f.Size || (n >= 0 && off+n > f.Size) {
		fh.Close()
		return nil, &registry.Permanent{Err: fmt.Errorf("local: range %d+%d outside %s", off, n, f.Path)}
	}
	if n < 0 {
		n = f.Size - off
	}
	return registry.ExactReader(registry.ContextReader(ctx, io.NewSectionReader(fh, off, n)), fh, n), nil
}
