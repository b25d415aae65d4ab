// Package cache is gptoss's local model store.
//
// The root ($GPTOSS_HOME, else $XDG_CACHE_HOME/gptoss, else ~/.cache/gptoss)
// is a valid OCI image layout, so oras, skopeo and crane can read it:
//
//	oci-layout, index.json      OCI layout marker and the list of model manifests
//	blobs/sha256/<hex>          every file, manifest and config; read-only once verified
//	snapshots/<name>/<rev>/...  plain files (hard links into blobs) for vLLM/transformers
//	partial/                    in-flight downloads (<key>.part) and resume journals
//	locks/                      inter-process locks (flock)
//	tune/                       the CUDA engine's kernel choices (runtime/cuda/tune.go writes them)
//
// Invariants: a blob under blobs/ has been verified against its digest
// before it was renamed there (Publish takes a file the caller has hashed);
// index.json and every blob are written atomically (temp file, fsync,
// rename); a manifest is added to index.json only after all its blobs exist,
// and snapshot links are made from blobs only. A killed process can leave
// files under partial/ (resumable) and temp files that gc removes, never a
// half-written blob or index.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"

	"github.com/gptoss/gptoss/internal/fsutil"
	"github.com/gptoss/gptoss/registry"
)

// ErrNoSpace means the cache's filesystem lacks room for a download.
var ErrNoSpace = errors.New("not enough disk space")

// Store is an opened cache directory. It is safe for concurrent use by
// goroutines and processes (writers to index.json take a lock).
type Store struct {
	Root string
}

// DefaultRoot returns $GPTOSS_HOME, else $XDG_CACHE_HOME/gptoss, else
// ~/.cache/gptoss.
func DefaultRoot() (string, error) {
	if d := os.Getenv("GPTOSS_HOME"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "gptoss"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a cache directory: set GPTOSS_HOME: %w", err)
	}
	return filepath.Join(home, ".cache", "gptoss"), nil
}

const ociLayout = `{"imageLayoutVersion":"1.0.0"}`

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Store{Root: abs}
	for _, d := range []string{"blobs/sha256", "snapshots", "partial", "locks"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(abs, "oci-layout")); errors.Is(err, os.ErrNotExist) {
		if err := WriteFileAtomic(filepath.Join(abs, "oci-layout"), []byte(ociLayout), 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(abs, "index.json")); errors.Is(err, os.ErrNotExist) {
		unlock, err := s.Lock(context.Background(), "index")
		if err != nil {
			return nil, err
		}
		defer unlock()
		if _, err := os.Stat(filepath.Join(abs, "index.json")); errors.Is(err, os.ErrNotExist) {
			if err := s.writeIndex(&ociIndex{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []registry.Descriptor{}}); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// BlobPath is where the blob with this sha256 hex lives once published.
func (s *Store) BlobPath(hex string) string {
	return filepath.Join(s.Root, "blobs", "sha256", hex)
}

// HasBlob reports whether a published blob with this digest and size exists.
func (s *Store) HasBlob(hex string, size int64) bool {
	if !registry.IsSHA256Hex(hex) {
		return false
	}
	fi, err := os.Stat(s.BlobPath(hex))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// PartialPath returns the path of an in-flight download for key, with the
// given suffix (".part", ".journal"). Keys are lower-case [a-z0-9._-].
func (s *Store) PartialPath(key, suffix string) (string, error) {
	if !keyRE.MatchString(key) {
		return "", fmt.Errorf("cache: bad partial key %q", key)
	}
	return filepath.Join(s.Root, "partial", key+suffix), nil
}

// Publish moves a fully written and verified file into blobs/ under its
// sha256. The caller has checked the digest while writing; Publish fsyncs,
// makes it read-only and renames it (atomic on one filesystem). When the
// blob already exists, tmp is removed.
func (s *Store) Publish(tmp, hex string) error {
	if !registry.IsSHA256Hex(hex) {
		return fmt.Errorf("cache: publish: bad digest %q", hex)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("cache: fsync %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	dst := s.BlobPath(hex)
	if _, err := os.Stat(dst); err == nil {
		return os.Remove(tmp)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("cache: publish %s: %w", hex, err)
	}
	fsutil.SyncDir(filepath.Dir(dst))
	return nil
}

// PutBlob writes small content (manifests, configs) as a blob and returns its
// sha256 hex.
func (s *Store) PutBlob(data []byte) (string, error) {
	d := registry.Digest(data)[len("sha256:"):]
	if s.HasBlob(d, int64(len(data))) {
		return d, nil
	}
	tmp, err := os.CreateTemp(filepath.Join(s.Root, "partial"), "blob-*.tmp")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return "", errors.Join(werr, cerr)
	}
	if err := s.Publish(tmp.Name(), d); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return d, nil
}

// ReadBlob reads a small blob (at most max bytes).
func (s *Store) ReadBlob(hex string, max int64) ([]byte, error) {
	f, err := os.Open(s.BlobPath(hex))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", hex, registry.ErrNotFound)
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", hex, max)
	}
	return b, nil
}

// Free returns the bytes available to this user on the cache's filesystem.
func (s *Store) Free() (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.Root, &st); err != nil {
		return 0, fmt.Errorf("cache: statfs %s: %w", s.Root, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Lock takes the named inter-process lock (flock on locks/<name>.lock),
// waiting until it is free or ctx ends. The returned function releases it.
// The kernel drops the lock when the process dies, so a killed pull never
// leaves a stale lock.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	return s.waitFlock(ctx, name, true)
}

// TryLock takes the named lock if it is free.
func (s *Store) TryLock(name string) (unlock func(), ok bool, err error) {
	return s.tryFlock(name, true)
}

// HoldForPull takes the "gc" lock shared, waiting while a GC runs. A pull
// holds it from its first download to its commit (see GC).
func (s *Store) HoldForPull(ctx context.Context) (func(), error) {
	return s.waitFlock(ctx, "gc", false)
}

// waitFlock polls for the lock until it is free or ctx ends.
func (s *Store) waitFlock(ctx context.Context, name string, exclusive bool) (func(), error) {
	if !keyRE.MatchString(name) {
		return nil, fmt.Errorf("cache: bad lock name %q", name)
	}
	unlock, err := fsutil.Flock(ctx, s.lockPath(name), exclusive)
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("cache: %w", err)
	}
	return unlock, err
}

func (s *Store) tryFlock(name string, exclusive bool) (unlock func(), ok bool, err error) {
	if !keyRE.MatchString(name) {
		return nil, false, fmt.Errorf("cache: bad lock name %q", name)
	}
	unlock, ok, err = fsutil.TryFlock(s.lockPath(name), exclusive)
	if err != nil {
		err = fmt.Errorf("cache: %w", err)
	}
	return unlock, ok, err
}

func (s *Store) lockPath(name string) string { return filepath.Join(s.Root, "locks", name+".lock") }

// WriteFileAtomic writes data to path through a temp file in the same
// directory, fsync and rename.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return fsutil.WriteFileAtomic(path, data, perm)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
