package fetch

import (
	"fmt"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// Options tune an Engine. The zero value gives the defaults.
type Options struct {
	Connections   int           // total concurrent range requests across all files (default 16)
	PartSize      int64         // 0 = auto: clamp(size/Connections, 16 MiB, 256 MiB); at least 64 KiB
	LimitRate     int64         // total bytes/s cap shared by all connections; 0 = none
	StallTimeout  time.Duration // no bytes for this long on a request → abort it and retry (default 30s)
	MaxAttempts   int           // consecutive failed attempts of one part without progress before giving up (default 10)
	MaxRetryAfter time.Duration // cap on an honoured Retry-After (default 60s)
	Backoff       time.Duration // base of exponential backoff with full jitter (default 500ms, capped at 30s)
}

const (
	defaultConnections   = 16
	defaultStallTimeout  = 30 * time.Second
	defaultMaxAttempts   = 10
	defaultMaxRetryAfter = 60 * time.Second
	defaultBackoff       = 500 * time.Millisecond
	maxBackoff           = 30 * time.Second

	minAutoPart = 16 << 20
	maxAutoPart = 256 << 20
	minPartSize = 64 << 10

	defaultBufSize  = 1 << 20                // per connection: the only buffer a request uses
	maxRead         = 256 << 10              // largest single Read (and rate-limiter wait)
	defaultMinSplit = 2 << 20                // split an in-flight part only if this much is left
	flushEvery      = 100 * time.Millisecond // a slow body still reaches the file this often
	journalEvery    = time.Second            // in-flight progress reaches the journal this often
	progressEvery   = 50 * time.Millisecond  // at most 20 progress events per second per file
)

func (o Options) withDefaults() Options {
	if o.Connections <= 0 {
		o.Connections = defaultConnections
	}
	if o.PartSize < 0 {
		o.PartSize = 0
	}
	if o.PartSize > 0 && o.PartSize < minPartSize {
		o.PartSize = minPartSize
	}
	if o.LimitRate < 0 {
		o.LimitRate = 0
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = defaultStallTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = defaultMaxAttempts
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = defaultMaxRetryAfter
	}
	if o.Backoff <= 0 {
		o.Backoff = defaultBackoff
	}
	return o
}

// partSize is the size of the parts a file of this size is cut into.
func (o Options) partSize(size int64) int64 {
	if o.PartSize > 0 {
		return o.PartSize
	}
	p := size / int64(o.Connections)
	return min(max(p, minAutoPart), maxAutoPart)
}

// EventKind says what an Event reports.
type EventKind int

const (
	EventPlan       EventKind = iota // what will be fetched: Total, Done (cached + resumed), Resumed
	EventFileStart                   // a file's download begins; Resumed = its bytes already present
	EventProgress                    // Bytes more of File landed on disk (throttled)
	EventFileDone                    // File is verified and published; File.SHA256 is set
	EventFileCached                  // File was already in the cache (or another process just fetched it)
	EventRetry                       // a request of File failed with Err; attempt Attempt follows after Delay
	EventDone                        // everything is in the cache
)

func (k EventKind) String() string {
	switch k {
	case EventPlan:
		return "plan"
	case EventFileStart:
		return "file_start"
	case EventProgress:
		return "progress"
	case EventFileDone:
		return "file_done"
	case EventFileCached:
		return "file_cached"
	case EventRetry:
		return "retry"
	case EventDone:
		return "done"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one progress report. Total and Done are set on every event:
// Total is the size of all the manifest's files, Done the bytes of them that
// are present (cached, resumed from a partial, or downloaded in this run).
// Callbacks are never called concurrently; they should return quickly, since
// downloads wait for them.
type Event struct {
	Kind    EventKind
	File    registry.File
	Bytes   int64 // EventProgress: bytes since the previous progress event of this file
	Total   int64
	Done    int64
	Resumed int64         // EventPlan: all bytes resumed; EventFileStart: this file's
	Attempt int           // EventRetry: the number of the attempt that failed
	Delay   time.Duration // EventRetry: the wait before the next attempt
	Err     error         // EventRetry: why
}

// HumanBytes formats n with IEC units: "12.3 GiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
