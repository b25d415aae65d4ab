package cuda

import (
	"context"
	"sync"
	"unsafe"
)

// copyJob is one tensor's bytes and where they go in the arena.
type copyJob struct {
	off uint64
	src []byte
}

const (
	stageChunk = 32 << 20
	stageBufs  = 4
)

// uploader copies host bytes to the device: each chunk is copied from the
// (memory-mapped) source into one of stageBufs pinned buffers by several
// goroutines, then sent with an async copy on one of two streams; a buffer
// is reused once the event recorded after its transfer has fired. A send
// returns once its bytes are in pinned memory, so the caller may reuse its
// source at once; finish waits for every transfer.
type uploader struct {
	streams [2]*stream
	bufs    [stageBufs]unsafe.Pointer
	events  [stageBufs]cuEvent
	k       int
}

func newUploader(d *device) (u *uploader, err error) {
	u = &uploader{}
	defer func() {
		if err != nil {
			u.close()
			u = nil
		}
	}()
	for i := range u.streams {
		if u.streams[i], err = d.newStream(); err != nil {
			return u, err
		}
	}
	for i := range u.bufs {
		if err := check("cuMemAllocHost", drv.MemAllocHost(&u.bufs[i], stageChunk)); err != nil {
			return u, err
		}
		if err := check("cuEventCreate", drv.EventCreate(&u.events[i], 2)); err != nil {
			return u, err
		}
	}
	return u, nil
}

// send copies src (any length) to dst.
func (u *uploader) send(ctx context.Context, dst devPtr, src []byte) error {
	for off := 0; off < len(src); off += stageChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(off+stageChunk, len(src))
		if err := u.sendChunk(dst+devPtr(off), src[off:end]); err != nil {
			return err
		}
	}
	return nil
}

func (u *uploader) sendChunk(dst devPtr, src []byte) error {
	i := u.k % stageBufs
	if u.k >= stageBufs {
		if err := check("cuEventSynchronize", drv.EventSynchronize(u.events[i])); err != nil {
			return err
		}
	}
	buf := unsafe.Slice((*byte)(u.bufs[i]), len(src))
	parallelCopy(buf, src)
	s := u.streams[u.k%2]
	if err := check("cuMemcpyHtoDAsync", drv.MemcpyHtoDAsync(dst, u.bufs[i], uint64(len(src)), s.s)); err != nil {
		return err
	}
	u.k++
	return check("cuEventRecord", drv.EventRecord(u.events[i], s.s))
}

// finish waits for every transfer sent.
func (u *uploader) finish() error {
	for _, s := range u.streams {
		if err := s.sync(); err != nil {
			return err
		}
	}
	return nil
}

// close waits for the transfers (a pinned buffer must not be freed under
// one) and frees the streams, buffers and events.
func (u *uploader) close() {
	for _, s := range u.streams {
		if s != nil {
			s.sync()
		}
	}
	for i := range u.bufs {
		if u.bufs[i] != nil {
			drv.MemFreeHost(u.bufs[i])
		}
		if u.events[i] != 0 {
			drv.EventDestroy(u.events[i])
		}
	}
	for _, s := range u.streams {
		if s != nil {
			s.close()
		}
	}
}

// uploadStaged copies jobs into the device arena, and tail to
// arena+tailOff.
func uploadStaged(ctx context.Context, d *device, arena devPtr, jobs []copyJob, tail []byte, tailOff uint64) error {
	u, err := newUploader(d)
	if err != nil {
		return err
	}
	defer u.close()
	for _, j := range jobs {
		if err := u.send(ctx, arena+devPtr(j.off), j.src); err != nil {
			return err
		}
	}
	if err := u.send(ctx, arena+devPtr(tailOff), tail); err != nil {
		return err
	}
	return u.finish()
}

// parallelCopy copies src into dst with up to 8 goroutines (the source is
// a file mapping: page faults are the cost, and they run in parallel).
func parallelCopy(dst, src []byte) {
	const piece = 4 << 20
	if len(src) <= piece {
		copy(dst, src)
		return
	}
	var wg sync.WaitGroup
	n := min(8, (len(src)+piece-1)/piece)
	per := (len(src) + n - 1) / n
	for i := 0; i < n; i++ {
		a, b := i*per, min((i+1)*per, len(src))
		wg.Add(1)
		go func() {
			defer wg.Done()
			copy(dst[a:b], src[a:b])
		}()
	}
	wg.Wait()
}
