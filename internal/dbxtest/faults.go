package dbxtest

import (
	"path"
	"strings"
	"sync"
)

// FaultKind selects what a Fault does.
type FaultKind int

const (
	// FaultDrop sends AfterBytes bytes of the body, then resets the
	// connection (SO_LINGER 0).
	FaultDrop FaultKind = iota + 1
	// FaultTruncate announces the full Content-Length, sends AfterBytes
	// bytes, then closes cleanly: the client sees a short body.
	FaultTruncate
	// FaultCorrupt flips (XOR 0xFF) the body byte at offset AfterBytes.
	FaultCorrupt
	// Fault503 answers 503 TEMPORARILY_UNAVAILABLE with "Retry-After:
	// RetryAfter" instead of serving the request.
	Fault503
)

func (k FaultKind) String() string {
	switch k {
	case FaultDrop:
		return "drop"
	case FaultTruncate:
		return "truncate"
	case FaultCorrupt:
		return "corrupt"
	case Fault503:
		return "503"
	}
	return "unknown"
}

// Fault is one counted fault-injection rule.
type Fault struct {
	Kind FaultKind
	// Count is how many times the rule fires; negative: on every matching
	// request; zero: never.
	Count int
	// AfterBytes: where Drop/Truncate cut the body, the offset Corrupt flips.
	AfterBytes int64
	// RetryAfter is the Retry-After value of a 503 in seconds (default 1;
	// -1 omits the header).
	RetryAfter int
	// Path restricts the rule to files whose path inside the volume matches
	// this glob; a glob without "/" is also tried on the base name.
	Path string
	// Endpoints restricts the rule to these endpoint kinds.
	Endpoints []Endpoint
}

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

type faultState struct {
	Fault
	fired int
}

type faultSet struct {
	mu    sync.Mutex
	rules []*faultState
}

func (fs *faultSet) set(faults []Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rules = nil
	for _, f := range faults {
		fs.rules = append(fs.rules, &faultState{Fault: f})
	}
}

func (fs *faultSet) add(f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rules = append(fs.rules, &faultState{Fault: f})
}

func (f *Fault) matches(ep Endpoint, file string) bool {
	if f.Count == 0 {
		return false
	}
	if len(f.Endpoints) > 0 {
		ok := false
		for _, e := range f.Endpoints {
			ok = ok || e == ep
		}
		if !ok {
			return false
		}
	}
	if f.Path != "" {
		if file == "" {
			return false
		}
		ok, _ := path.Match(f.Path, file)
		if !ok && !strings.Contains(f.Path, "/") {
			ok, _ = path.Match(f.Path, path.Base(file))
		}
		if !ok {
			return false
		}
	}
	return true
}

func (r *faultState) take() bool {
	if r.Count >= 0 && r.fired >= r.Count {
		return false
	}
	r.fired++
	return true
}

// check503 returns the Retry-After of a firing 503 rule.
func (fs *faultSet) check503(ep Endpoint, file string) (int, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, r := range fs.rules {
		if r.Kind == Fault503 && r.matches(ep, file) && r.take() {
			ra := r.RetryAfter
			if ra == 0 {
				ra = 1
			}
			return ra, true
		}
	}
	return 0, false
}

type bodyPlan struct {
	cut       FaultKind
	cutAfter  int64
	corrupt   bool
	corruptAt int64
}

func (p bodyPlan) active() bool { return p.cut != 0 || p.corrupt }

func (fs *faultSet) planBody(ep Endpoint, file string, n int64) bodyPlan {
	var p bodyPlan
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, r := range fs.rules {
		if r.AfterBytes < 0 || n <= r.AfterBytes || !r.matches(ep, file) {
			continue
		}
		switch r.Kind {
		case FaultDrop, FaultTruncate:
			if p.cut == 0 && r.take() {
				p.cut, p.cutAfter = r.Kind, r.AfterBytes
			}
		case FaultCorrupt:
			if !p.corrupt && r.take() {
				p.corrupt, p.corruptAt = true, r.AfterBytes
			}
		}
	}
	return p
}

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
	out := Stats{Requests: map[Endpoint]int64{}, Status: map[int]int64{}, Faults: map[FaultKind]int64{},
		BodyBytes: map[string]int64{}, FileRequests: map[string]int64{}, PutBytes: map[string]int64{},
		TotalBodyBytes: ss.s.TotalBodyBytes}
	for k, v := range ss.s.Requests {
		out.Requests[k] = v
	}
	for k, v := range ss.s.Status {
		out.Status[k] = v
	}
	for k, v := range ss.s.Faults {
		out.Faults[k] = v
	}
	for k, v := range ss.s.BodyBytes {
		out.BodyBytes[k] = v
	}
	for k, v := range ss.s.FileRequests {
		out.FileRequests[k] = v
	}
	for k, v := range ss.s.PutBytes {
		out.PutBytes[k] = v
	}
	return out
}

func (ss *statsState) do(f func(s *Stats)) {
	ss.mu.Lock()
	f(&ss.s)
	ss.mu.Unlock()
}
