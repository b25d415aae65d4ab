package hubtest

import (
	"math/rand/v2"
	"path"
	"strings"
	"sync"
)

// FaultKind selects what a Fault does.
type FaultKind int

const (
	// FaultDrop sends AfterBytes bytes of the body, then hijacks the
	// connection and resets it (SO_LINGER 0, so the client sees
	// "connection reset by peer" or an unexpected EOF).
	FaultDrop FaultKind = iota + 1
	// FaultTruncate sends the headers with the full Content-Length, then
	// AfterBytes bytes of the body, then closes the connection cleanly
	// (FIN): the client sees an unexpected EOF / short body.
	FaultTruncate
	// FaultCorrupt flips (XOR 0xFF) the body byte at offset AfterBytes of
	// the response body; length and headers are unchanged.
	FaultCorrupt
	// Fault503 answers 503 Service Unavailable with "Retry-After:
	// RetryAfter" (seconds) instead of serving the request.
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

// Fault is one fault-injection rule. Rules are counted, not random: a rule
// with Count K fires on the first K requests it matches, in arrival order.
//
// Body faults (Drop, Truncate, Corrupt) match only file-body responses
// (GET of a regular file on the hub, GET on the CDN) whose body is longer
// than AfterBytes; a short body (e.g. a "Range: bytes=0-0" probe) neither
// fires nor consumes the count. Fault503 matches every request of the
// selected endpoints (API, resolve and CDN), HEAD included.
type Fault struct {
	Kind FaultKind
	// Count is how many times the rule fires; a negative Count fires on
	// every matching request; zero disables the rule (a zero Fault is inert).
	Count int
	// AfterBytes: Drop/Truncate cut the body after this many bytes;
	// Corrupt flips the byte at this offset of the body.
	AfterBytes int64
	// RetryAfter is the Retry-After value (seconds) of a 503 (default 1;
	// set -1 to omit the header).
	RetryAfter int
	// Path, when set, restricts the rule to files whose repo path matches
	// this glob (path.Match, e.g. "original/*"); a glob without "/" is also
	// tried on the base name, so "*.safetensors" matches at any depth. 503
	// rules with a Path only hit file requests (resolve and CDN).
	Path string
	// Endpoints, when set, restricts the rule to these endpoint kinds
	// (EndpointCDN, EndpointResolveGet, …).
	Endpoints []Endpoint
	// Probability, when in (0,1), makes a matching request fire with this
	// probability, drawn from the server's PRNG seeded with Options.Seed
	// (deterministic for a given seed and request order). Ignored when
	// Options.Seed is 0.
	Probability float64
}

type faultState struct {
	Fault
	fired int
}

type faultSet struct {
	mu    sync.Mutex
	rules []*faultState
	rng   *rand.Rand
	seed  uint64
}

func (fs *faultSet) init(seed uint64) {
	fs.seed = seed
	if seed != 0 {
		fs.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
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

// take decides whether rule r fires now, consuming one count if so. fs.mu held.
func (fs *faultSet) take(r *faultState) bool {
	if r.Count >= 0 && r.fired >= r.Count {
		return false
	}
	if r.Probability > 0 && r.Probability < 1 && fs.rng != nil && fs.rng.Float64() >= r.Probability {
		return false
	}
	r.fired++
	return true
}

// check503 returns the Retry-After seconds of a firing 503 rule.
func (fs *faultSet) check503(ep Endpoint, file string) (retryAfter int, fire bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, r := range fs.rules {
		if r.Kind == Fault503 && r.matches(ep, file) && fs.take(r) {
			ra := r.RetryAfter
			if ra == 0 {
				ra = 1
			}
			return ra, true
		}
	}
	return 0, false
}

// bodyPlan is what to do to one body response.
type bodyPlan struct {
	cut       FaultKind // 0, FaultDrop or FaultTruncate
	cutAfter  int64
	corrupt   bool
	corruptAt int64
}

func (p bodyPlan) active() bool { return p.cut != 0 || p.corrupt }

// planBody picks the body faults for a body of length n.
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
			if p.cut == 0 && fs.take(r) {
				p.cut, p.cutAfter = r.Kind, r.AfterBytes
			}
		case FaultCorrupt:
			if !p.corrupt && fs.take(r) {
				p.corrupt, p.corruptAt = true, r.AfterBytes
			}
		}
	}
	return p
}

// Endpoint is the kind of a request, as counted in Stats.Requests.
type Endpoint string

const (
	EndpointInfo        Endpoint = "info"         // GET /api/models/{repo}[/revision/{rev}]
	EndpointTree        Endpoint = "tree"         // GET /api/models/{repo}/tree/{rev}[/{path}]
	EndpointPathsInfo   Endpoint = "paths-info"   // POST /api/models/{repo}/paths-info/{rev}
	EndpointWhoami      Endpoint = "whoami"       // GET /api/whoami-v2
	EndpointResolveHead Endpoint = "resolve-head" // HEAD /{repo}/resolve/{rev}/{path}
	EndpointResolveGet  Endpoint = "resolve-get"  // GET /{repo}/resolve/{rev}/{path} (302 or body)
	EndpointCDN         Endpoint = "cdn"          // GET or HEAD on the CDN
	EndpointOther       Endpoint = "other"        // anything else (404)
)

// Stats are counters since the server started or ResetStats was called.
type Stats struct {
	// Requests counts requests per endpoint kind.
	Requests map[Endpoint]int64
	// Status counts responses per status code (hub and CDN together).
	Status map[int]int64
	// BodyBytes is the number of file-body bytes written to clients per
	// file, keyed "org/name/path" (hub direct downloads and CDN together;
	// headers, JSON and redirect bodies are not counted).
	BodyBytes map[string]int64
	// FileRequests counts body-carrying GETs per file, same keys.
	FileRequests map[string]int64
	// Faults counts injected faults per kind.
	Faults map[FaultKind]int64
	// TotalBodyBytes is the sum of BodyBytes.
	TotalBodyBytes int64
}

// Bytes returns BodyBytes for one file of a repo.
func (st Stats) Bytes(repoID, file string) int64 { return st.BodyBytes[repoID+"/"+file] }

type statsState struct {
	mu sync.Mutex
	s  Stats
}

func (ss *statsState) reset() {
	ss.mu.Lock()
	ss.s = Stats{
		Requests:     map[Endpoint]int64{},
		Status:       map[int]int64{},
		BodyBytes:    map[string]int64{},
		FileRequests: map[string]int64{},
		Faults:       map[FaultKind]int64{},
	}
	ss.mu.Unlock()
}

func (ss *statsState) snapshot() Stats {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := Stats{
		Requests:       map[Endpoint]int64{},
		Status:         map[int]int64{},
		BodyBytes:      map[string]int64{},
		FileRequests:   map[string]int64{},
		Faults:         map[FaultKind]int64{},
		TotalBodyBytes: ss.s.TotalBodyBytes,
	}
	for k, v := range ss.s.Requests {
		out.Requests[k] = v
	}
	for k, v := range ss.s.Status {
		out.Status[k] = v
	}
	for k, v := range ss.s.BodyBytes {
		out.BodyBytes[k] = v
	}
	for k, v := range ss.s.FileRequests {
		out.FileRequests[k] = v
	}
	for k, v := range ss.s.Faults {
		out.Faults[k] = v
	}
	return out
}

func (ss *statsState) request(ep Endpoint) {
	ss.mu.Lock()
	ss.s.Requests[ep]++
	ss.mu.Unlock()
}

func (ss *statsState) status(code int) {
	ss.mu.Lock()
	ss.s.Status[code]++
	ss.mu.Unlock()
}

func (ss *statsState) fileRequest(key string) {
	ss.mu.Lock()
	ss.s.FileRequests[key]++
	ss.mu.Unlock()
}

func (ss *statsState) bytes(key string, n int64) {
	if n == 0 {
		return
	}
	ss.mu.Lock()
	ss.s.BodyBytes[key] += n
	ss.s.TotalBodyBytes += n
	ss.mu.Unlock()
}

func (ss *statsState) fault(k FaultKind) {
	ss.mu.Lock()
	ss.s.Faults[k]++
	ss.mu.Unlock()
}
