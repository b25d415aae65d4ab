package testserve

import (
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// ServeBody writes the n bytes of ra at off as the body of a response whose
// headers are written, applying plan and capping the pace at rate bytes per
// second (<= 0: no cap). count is told the body bytes as they go out (a
// correction, negative, after a short write), so a client that has read
// the whole body always finds it counted. A Drop or Truncate hijacks the
// connection and resets or closes it.
func ServeBody(w http.ResponseWriter, r *http.Request, ra io.ReaderAt, off, n int64, plan Plan, rate int64, count func(int64)) {
	if !plan.Active() && rate <= 0 {
		// Fast path: sendfile(2) from the file when possible.
		var rd io.Reader = io.NewSectionReader(ra, off, n)
		if f, ok := ra.(*os.File); ok {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				rd = io.LimitReader(f, n)
			}
		}
		count(n)
		written, _ := io.Copy(w, rd)
		count(written - n)
		return
	}

	limit := n
	if plan.Cut != 0 {
		limit = plan.CutAfter
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	chunk := int64(len(buf))
	if rate > 0 {
		// ~50 writes per second keeps the pace smooth without burning CPU.
		chunk = min(max(rate/50, 1024), chunk)
	}
	t0 := time.Now()
	var sent int64
	for sent < limit {
		if rate > 0 && sent > 0 {
			due := t0.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
		}
		k := min(chunk, limit-sent)
		m, err := ra.ReadAt(buf[:k], off+sent)
		if m == 0 && err != nil {
			break
		}
		if plan.Corrupt && plan.CorruptAt >= sent && plan.CorruptAt < sent+int64(m) {
			buf[plan.CorruptAt-sent] ^= 0xFF
		}
		count(int64(m))
		wn, werr := w.Write(buf[:m])
		sent += int64(wn)
		count(int64(wn - m))
		if werr != nil {
			return
		}
	}
	if plan.Cut == 0 {
		return
	}
	rc := http.NewResponseController(w)
	rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && plan.Cut == Drop {
		// Let the peer receive every byte sent (a reset discards the
		// send queue), then reset instead of closing.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			n, ok := unsent(tc)
			if !ok {
				time.Sleep(20 * time.Millisecond)
				break
			}
			if n == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		tc.SetLinger(0)
	}
	conn.Close()
}
