package fetch

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// fileTask is one file being downloaded. Its parts cover [0, size) in order,
// without gaps or overlaps; the ones loaded complete from the journal stay in
// the list so the written prefix can be read off it.
type fileTask struct {
	r           *run
	idx         int
	file        registry.File
	key         string
	partPath    string
	journalPath string
	partSize    int64
	fd          *os.File

	mu     sync.Mutex
	parts  []*part
	claims int64 // bumped by every claim: the journal is dirty when it moved
	urgent bool  // a part completed: write the journal soon

	wake chan struct{} // capacity 1: something to hash or journal

	// Owned by the file's goroutine.
	hashed      int64
	h256, h1    hash.Hash
	hbuf        []byte
	journaled   int64 // claims at the last journal write
	lastJournal time.Time
	counted     int64 // bytes of this file counted in the emitter's Done

	// Guarded by the emitter's mu.
	evPending int64
	evLast    time.Time
}

// part is a byte range of a file that one worker at a time downloads.
type part struct {
	f          *fileTask
	start, end int64 // under f.mu; end only shrinks (splitting)
	written    int64 // under f.mu: [start, start+written) is on disk
	reserved   int64 // under f.mu: the worker may be writing below this offset
}

// claim records that n bytes at the part's current offset are on disk
// (WriteAt has returned for them).
func (ft *fileTask) claim(p *part, n int64) {
	ft.mu.Lock()
	p.written += n
	ft.claims++
	if p.start+p.written >= p.end {
		ft.urgent = true
	}
	ft.mu.Unlock()
	ft.poke()
}

func (ft *fileTask) poke() {
	select {
	case ft.wake <- struct{}{}:
	default:
	}
}

// prefixLocked is the end of the contiguous written range starting at 0.
func (ft *fileTask) prefixLocked() int64 {
	for _, p := range ft.parts {
		if p.start+p.written < p.end {
			return p.start + p.written
		}
	}
	return ft.file.Size
}

// file downloads (or skips) manifest file i.
func (r *run) file(i int, fp FilePlan) error {
	f := fp.File
	if fp.Cached {
		r.cached(i, fp.File.SHA256, 0)
		return nil
	}
	name := "blob-" + fp.Key
	if err := r.s.admit(r.ctx, i); err != nil {
		return err
	}
	unlock, ok, err := r.dst.TryLock(name)
	if err != nil {
		r.s.endAdmit(nil)
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	if !ok {
		// Another process is downloading this file: wait for it without
		// holding up the files after this one, then see what it left.
		r.s.endAdmit(nil)
		if unlock, err = r.dst.Lock(r.ctx, name); err != nil {
			return err
		}
		if err := r.s.admit(r.ctx, i); err != nil {
			unlock()
			return err
		}
	}
	defer unlock()
	if sha, ok := cachedSHA(r.dst, r.m, f, fp.Key); ok {
		r.s.endAdmit(nil)
		r.cached(i, sha, fp.Resumed)
		return nil
	}
	ft, pending, err := r.prepare(i, fp)
	if err != nil {
		r.s.endAdmit(nil)
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	defer ft.fd.Close()
	resumed := ft.counted
	r.ev.mu.Lock()
	r.ev.done += resumed - fp.Resumed
	r.ev.emitLocked(Event{Kind: EventFileStart, File: f, Resumed: resumed})
	r.ev.mu.Unlock()
	r.s.endAdmit(pending)
	if err := ft.loop(); err != nil {
		if r.ctx.Err() != nil && !errors.Is(err, registry.ErrDigestMismatch) && !errors.Is(err, registry.ErrSizeMismatch) {
			return r.ctx.Err()
		}
		// Record the error before closing the file under the workers,
		// which would otherwise fail on the closed file first.
		err = fmt.Errorf("download %s: %w", f.Path, err)
		r.fail(err)
		<-r.workersDone
		return err
	}
	return nil
}

// cached reports file i as present under sha; counted bytes of it were
// already in Done.
func (r *run) cached(i int, sha string, counted int64) {
	r.m.Files[i].SHA256 = sha
	f := r.m.Files[i]
	r.ev.mu.Lock()
	r.ev.done += f.Size - counted
	r.ev.emitLocked(Event{Kind: EventFileCached, File: f})
	r.ev.mu.Unlock()
}

// prepare opens the partial download of a file, resuming from its journal
// when that is usable, and returns the parts still to download.
func (r *run) prepare(i int, fp FilePlan) (*fileTask, []*part, error) {
	f := fp.File
	partPath, err := r.dst.PartialPath(fp.Key, ".part")
	if err != nil {
		return nil, nil, err
	}
	journalPath, err := r.dst.PartialPath(fp.Key, ".journal")
	if err != nil {
		return nil, nil, err
	}
	ft := &fileTask{
		r: r, idx: i, file: f, key: fp.Key, partPath: partPath, journalPath: journalPath,
		partSize: r.e.o.partSize(f.Size), wake: make(chan struct{}, 1),
	}
	removeJournalTemps(journalPath) // a killed run's half-written journal (the blob's lock is held)
	j, err := readJournal(journalPath, fp.Key, f)
	if err != nil && !errors.Is(err, errBadJournal) {
		return nil, nil, err
	}
	if j != nil {
		if fi, err := os.Stat(partPath); err != nil || !fi.Mode().IsRegular() || fi.Size() != f.Size {
			j = nil // the data it describes is gone
		}
	}
	flags := os.O_RDWR | os.O_CREATE
	if j == nil {
		// Without a journal nothing in an old partial can be trusted.
		if err := os.Remove(journalPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		flags |= os.O_TRUNC
	}
	fd, err := os.OpenFile(partPath, flags, 0o644)
	if err != nil {
		return nil, nil, err
	}
	if err := allocate(fd, f.Size); err != nil {
		fd.Close()
		return nil, nil, writeError(err)
	}
	ft.fd = fd
	var done [][2]int64
	if j != nil {
		done = j.Done
		ft.hashed = j.Hashed
		ft.h256, ft.h1, _ = j.hashers(f) // checked by readJournal
		ft.counted = j.doneBytes()
	} else {
		ft.h256, ft.h1 = newHashers(f)
	}
	// Completed ranges become complete parts; the gaps are cut into parts.
	var pending []*part
	add := func(s, e int64, complete bool) {
		for s < e {
			n := e - s
			if !complete {
				n = min(n, ft.partSize)
			}
			p := &part{f: ft, start: s, end: s + n, reserved: s}
			if complete {
				p.written = n
			} else {
				pending = append(pending, p)
			}
			ft.parts = append(ft.parts, p)
			s += n
		}
	}
	var at int64
	for _, d := range done {
		add(at, d[0], false)
		add(d[0], d[1], true)
		at = d[1]
	}
	add(at, f.Size, false)
	return ft, pending, nil
}

// loop hashes the written prefix as it grows, keeps the journal up to date
// and, once every byte is written and hashed, verifies and publishes the
// file. When the run ends first it saves the journal and returns.
func (ft *fileTask) loop() error {
	r := ft.r
	tick := time.NewTicker(journalEvery / 4)
	defer tick.Stop()
	ft.lastJournal = time.Now()
	for {
		ft.mu.Lock()
		prefix := ft.prefixLocked()
		urgent := ft.urgent
		ft.urgent = false
		dirty := ft.claims != ft.journaled
		ft.mu.Unlock()

		if r.ctx.Err() != nil {
			break
		}
		if ft.hashed < prefix {
			if err := ft.hashUpTo(prefix); err != nil {
				return err
			}
		}
		if prefix == ft.file.Size && ft.hashed == ft.file.Size {
			return ft.finish()
		}
		if dirty && (urgent || time.Since(ft.lastJournal) >= journalEvery) {
			if err := ft.writeJournal(); err != nil {
				return err
			}
		}
		if ft.hashed < prefix {
			continue
		}
		select {
		case <-ft.wake:
		case <-tick.C:
		case <-r.ctx.Done():
		}
	}
	// Stopped: wait until no worker writes to the file, then save the state
	// so the next run resumes from every byte that reached the file.
	<-r.workersDone
	if ft.claims != ft.journaled {
		if err := ft.writeJournal(); err != nil {
			return err
		}
	}
	return r.ctx.Err()
}

// hashUpTo feeds the file's bytes from the hashed offset towards limit into
// the hashers, at most one buffer at a time (so the journal is not held up).
func (ft *fileTask) hashUpTo(limit int64) error {
	if ft.hbuf == nil {
		ft.hbuf = make([]byte, min(int64(defaultBufSize), ft.file.Size))
	}
	n := min(int64(len(ft.hbuf)), limit-ft.hashed)
	b := ft.hbuf[:n]
	if _, err := ft.fd.ReadAt(b, ft.hashed); err != nil {
		return fmt.Errorf("read back %s: %w", ft.partPath, err)
	}
	ft.h256.Write(b)
	if ft.h1 != nil {
		ft.h1.Write(b)
	}
	ft.hashed += n
	return nil
}

// writeJournal saves the resume state: the written ranges (flushed to disk
// first, so the journal never claims bytes a power cut could lose) and the
// hash states at the hashed offset.
func (ft *fileTask) writeJournal() error {
	ft.mu.Lock()
	var done [][2]int64
	for _, p := range ft.parts {
		done = addRange(done, p.start, p.start+p.written)
	}
	claims := ft.claims
	ft.mu.Unlock()
	if err := datasync(ft.fd); err != nil {
		return writeError(fmt.Errorf("sync %s: %w", ft.partPath, err))
	}
	j := journal{Version: journalVersion, Key: ft.key, Path: ft.file.Path, Size: ft.file.Size,
		PartSize: ft.partSize, Done: done, Hashed: ft.hashed}
	if done == nil {
		j.Done = [][2]int64{}
	}
	var err error
	if j.SHA256, err = marshalState(ft.h256); err != nil {
		return err
	}
	if j.GitSHA1, err = marshalState(ft.h1); err != nil {
		return err
	}
	b, err := json.Marshal(&j)
	if err != nil {
		return err
	}
	if err := cache.WriteFileAtomic(ft.journalPath, b, 0o644); err != nil {
		return writeError(fmt.Errorf("write resume journal: %w", err))
	}
	ft.journaled = claims
	ft.lastJournal = time.Now()
	return nil
}

// finish verifies the complete file and publishes it into the cache, or
// discards it when a digest or the size is wrong.
func (ft *fileTask) finish() error {
	r := ft.r
	f := ft.file
	r.ev.progress(ft, 0, true)
	got := hex.EncodeToString(ft.h256.Sum(nil))
	var bad error
	if fi, err := ft.fd.Stat(); err != nil {
		return err
	} else if fi.Size() != f.Size {
		bad = fmt.Errorf("%w: %s is %d bytes, expected %d", registry.ErrSizeMismatch, ft.partPath, fi.Size(), f.Size)
	}
	if bad == nil && f.SHA256 != "" && got != f.SHA256 {
		bad = fmt.Errorf("%w: got sha256 %s, expected %s", registry.ErrDigestMismatch, got, f.SHA256)
	}
	if bad == nil && ft.h1 != nil {
		if g1 := hex.EncodeToString(ft.h1.Sum(nil)); g1 != f.GitSHA1 {
			bad = fmt.Errorf("%w: got git blob sha1 %s, expected %s", registry.ErrDigestMismatch, g1, f.GitSHA1)
		}
	}
	if bad != nil {
		ft.fd.Close()
		os.Remove(ft.partPath)
		os.Remove(ft.journalPath)
		return fmt.Errorf("%w (the download was discarded)", bad)
	}
	if err := ft.fd.Close(); err != nil {
		return err
	}
	if err := r.dst.Publish(ft.partPath, got); err != nil {
		return writeError(err)
	}
	if digestless(f) {
		// Nothing but this journal can find the blob again until the
		// manifest is committed: keep it as the file's finished record, so
		// a rerun after a kill does not fetch the file again.
		if err := writeFinished(ft.journalPath, r.m, f, ft.key, ft.partSize, got); err != nil {
			return err
		}
	} else if err := os.Remove(ft.journalPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if f.GitSHA1 != "" {
		if err := r.dst.SetAlias(f.GitSHA1, got); err != nil {
			return err
		}
	}
	r.m.Files[ft.idx].SHA256 = got
	f.SHA256 = got
	r.ev.emit(Event{Kind: EventFileDone, File: f})
	return nil
}

// writeError marks a local write failure; a full disk wraps cache.ErrNoSpace.
func writeError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v (the partial download is kept; free some space and run again to resume)", cache.ErrNoSpace, err)
	}
	return &localError{err}
}

// localError is a failure of this machine (not the source): never retried.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }
