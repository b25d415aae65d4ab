package dbxtest

import (
	"maps"
	"sync"

	"github.com/gptoss/gptoss/internal/testserve"
)

// FaultKind selects what a Fault does (testserve.Kind).
type FaultKind = testserve.Kind

// The fault kinds; see testserve.Drop and the others. Fault503 answers
// 503 TEMPORARILY_UNAVAILABLE.
const (
	FaultDrop     = testserve.Drop
	FaultTruncate = testserve.Truncate
	FaultCorrupt  = testserve.Corrupt
	Fault503      = testserve.Status503
)

// Fault is one counted fault-injection rule (testserve.Rule); its Path is
// a glob on the path inside the volume. The server has no PRNG seed, so
// Probability is ignored.
type Fault = testserve.Rule[Endpoint]

// Endpoint is the kind of a request, as counted in Stats.Requests.
type Endpoint string

const (
	EndpointList     Endpoint = "list"      // GET /api/2.0/fs/directories{path}
	EndpointDirHead  Endpoint = "dir-head"  // HEAD /api/2.0/fs/directories{path}
	EndpointMkdir    Endpoint = "mkdir"     // PUT /api/2.0/fs/directories{path}
	EndpointGet      Endpoint = "get"       // GET /api/2.0/fs/files{path}
	EndpointHead     Endpoint = "head"      // HEAD /api/2.0/fs/files{path}
	EndpointPut      Endpoint = "put"       // PUT /api/2.0/fs/files{path}
	EndpointDelete   Endpoint = "delete"    // DELETE files or directories
	EndpointInitiate Endpoint = "initiate"  // POST …?action=initiate-upload
	EndpointPartURLs Endpoint = "part-urls" // POST /api/2.0/fs/create-upload-part-urls
	EndpointPartPut  Endpoint = "part-put"  // PUT on a presigned part URL (storage listener)
	EndpointComplete Endpoint = "complete"  // POST …?action=complete-upload
	EndpointAbortURL Endpoint = "abort-url" // POST /api/2.0/fs/create-abort-upload-url
	EndpointAbort    Endpoint = "abort"     // DELETE on a presigned abort URL
	EndpointOther    Endpoint = "other"     // anything else
)

// Stats are counters since the server started or ResetStats was called.
type Stats struct {
	Requests     map[Endpoint]int64 // per endpoint kind
	Status       map[int]int64      // responses per status code
	Faults       map[FaultKind]int64
	BodyBytes    map[string]int64 // file-body bytes sent per file ("/Volumes/c/s/v/x")
	FileRequests map[string]int64 // body-carrying GETs per file
	PutBytes     map[string]int64 // bytes received by PUTs (single-shot and parts) per file
	// TotalBodyBytes is the sum of BodyBytes.
	TotalBodyBytes int64
}

type statsState struct {
	mu sync.Mutex
	s  Stats
}

func (ss *statsState) reset() {
	ss.mu.Lock()
	ss.s = Stats{Requests: map[Endpoint]int64{}, Status: map[int]int64{}, Faults: map[FaultKind]int64{},
		BodyBytes: map[string]int64{}, FileRequests: map[string]int64{}, PutBytes: map[string]int64{}}
	ss.mu.Unlock()
}

func (ss *statsState) snapshot() Stats {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return Stats{Requests: maps.Clone(ss.s.Requests), Status: maps.Clone(ss.s.Status), Faults: maps.Clone(ss.s.Faults),
		BodyBytes: maps.Clone(ss.s.BodyBytes), FileRequests: maps.Clone(ss.s.FileRequests), PutBytes: maps.Clone(ss.s.PutBytes),
		TotalBodyBytes: ss.s.TotalBodyBytes}
}

func (ss *statsState) do(f func(s *Stats)) {
	ss.mu.Lock()
	f(&ss.s)
	ss.mu.Unlock()
}
