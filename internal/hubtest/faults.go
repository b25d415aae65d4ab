package hubtest

import (
	"maps"
	"sync"

	"github.com/gptoss/gptoss/internal/testserve"
)

// FaultKind selects what a Fault does (testserve.Kind).
type FaultKind = testserve.Kind

// The fault kinds; see testserve.Drop and the others.
const (
	FaultDrop     = testserve.Drop
	FaultTruncate = testserve.Truncate
	FaultCorrupt  = testserve.Corrupt
	Fault503      = testserve.Status503
)

// Fault is one fault-injection rule (testserve.Rule). Rules are counted,
// not random: a rule with Count K fires on the first K requests it
// matches, in arrival order.
//
// Body faults (Drop, Truncate, Corrupt) match only file-body responses
// (GET of a regular file on the hub, GET on the CDN) whose body is longer
// than AfterBytes. Fault503 matches every request of the selected
// endpoints (API, resolve and CDN), HEAD included; 503 rules with a Path
// (a repo path glob) only hit file requests (resolve and CDN).
// Probability draws from the server's PRNG seeded with Options.Seed.
type Fault = testserve.Rule[Endpoint]

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
	return Stats{Requests: maps.Clone(ss.s.Requests), Status: maps.Clone(ss.s.Status), BodyBytes: maps.Clone(ss.s.BodyBytes),
		FileRequests: maps.Clone(ss.s.FileRequests), Faults: maps.Clone(ss.s.Faults), TotalBodyBytes: ss.s.TotalBodyBytes}
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
