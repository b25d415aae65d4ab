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

// uploadStaged copies jobs into the device arena: each chunk is copied from
// the (memory-mapped) source into one of stageBufs pinned buffers by several
// goroutines, then sent with an async copy on one of two streams; a buffer
// is reused once the event recorded after its transfer has fired. tail is
// copied to arena+tailOff.
func uploadStaged(ctx context.Context, d *device, arena devPtr, jobs []copyJob, tail []byte, tailOff uint64) (err error) {
	var streams [2]*stream
	for i := range streams {
		if streams[i], err = d.newStream(); err != nil {
			return err
		}
		defer streams[i].close()
	}
	var bufs [stageBufs]unsafe.Pointer
	var events [stageBufs]cuEvent
	for i := range bufs {
		if err := check("cuMemAllocHost", drv.MemAllocHost(&bufs[i], stageChunk)); err != nil {
			return err
		}
		defer drv.MemFreeHost(bufs[i])
		if err := check("cuEventCreate", drv.EventCreate(&events[i], 2)); err != nil {
			return err
		}
		defer drv.EventDestroy(events[i])
	}
	k := 0
	send := func(dst devPtr, src []byte) error {
		i := k % stageBufs
		if k >= stageBufs {
			if err := check("cuEventSynchronize", drv.EventSynchronize(events[i])); err != nil {
				return err
			}
		}
		buf := unsafe.Slice((*byte)(bufs[i]), len(src))
		parallelCopy(buf, src)
		s := streams[k%2]
		if err := check("cuMemcpyHtoDAsync", drv.MemcpyHtoDAsync(dst, bufs[i], uint64(len(src)), s.s)); err != nil {
			return err
		}
		k++
		return check("cuEventRecord", drv.EventRecord(events[i], s.s))
	}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		for off := 0; off < len(j.src); off += stageChunk {
			end := min(off+stageChunk, len(j.src))
			if err := send(arena+devPtr(j.off)+devPtr(off), j.src[off:end]); err != nil {
				return err
			}
		}
	}
	if len(tail) > 0 {
		if err := send(arena+devPtr(tailOff), tail); err != nil {
			return err
		}
	}
	for _, s := range streams {
		if err := s.sync(); err != nil {
			return err
		}
	}
	return nil
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
