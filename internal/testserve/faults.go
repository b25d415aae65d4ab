// Package testserve holds what the test servers (internal/hubtest,
// internal/dbxtest) share: counted fault-injection rules (drop, truncate,
// corrupt, 503 + Retry-After) and the serving of a file body under those
// faults and a rate cap.
package testserve

import (
	"math/rand/v2"
	"path"
	"strings"
	"sync"
)

// Kind selects what a Rule does.
type Kind int

const (
	// Drop sends AfterBytes bytes of the body, then hijacks the connection
	// and resets it (SO_LINGER 0, so the client sees "connection reset by
	// peer" or an unexpected EOF).
	Drop Kind = iota + 1
	// Truncate sends the headers with the full Content-Length, then
	// AfterBytes bytes of the body, then closes the connection cleanly
	// (FIN): the client sees an unexpected EOF / short body.
	Truncate
	// Corrupt flips (XOR 0xFF) the body byte at offset AfterBytes of the
	// response body; length and headers are unchanged.
	Corrupt
	// Status503 answers 503 Service Unavailable with "Retry-After:
	// RetryAfter" (seconds) instead of serving the request.
	Status503
)

func (k Kind) String() string {
	switch k {
	case Drop:
		return "drop"
	case Truncate:
		return "truncate"
	case Corrupt:
		return "corrupt"
	case Status503:
		return "503"
	}
	return "unknown"
}

// Rule is one fault-injection rule; E is the server's endpoint kind.
// Rules are counted, not random: a rule with Count K fires on the first K
// requests it matches, in arrival order.
//
// Body faults (Drop, Truncate, Corrupt) match only file-body responses
// whose body is longer than AfterBytes; a short body (e.g. a "Range:
// bytes=0-0" probe) neither fires nor consumes the count.
type Rule[E comparable] struct {
	Kind Kind
	// Count is how many times the rule fires; a negative Count fires on
	// every matching request; zero disables the rule (a zero Rule is inert).
	Count int
	// AfterBytes: Drop/Truncate cut the body after this many bytes;
	// Corrupt flips the byte at this offset of the body.
	AfterBytes int64
	// RetryAfter is the Retry-After value (seconds) of a 503 (default 1;
	// set -1 to omit the header).
	RetryAfter int
	// Path, when set, restricts the rule to files whose path matches this
	// glob (path.Match, e.g. "original/*"); a glob without "/" is also
	// tried on the base name, so "*.safetensors" matches at any depth.
	Path string
	// Endpoints, when set, restricts the rule to these endpoint kinds.
	Endpoints []E
	// Probability, when in (0,1), makes a matching request fire with this
	// probability, drawn from the set's PRNG (Set.Seed; deterministic for
	// a given seed and request order). Ignored without a seed.
	Probability float64
}

func (f *Rule[E]) matches(ep E, file string) bool {
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

type ruleState[E comparable] struct {
	Rule[E]
	fired int
}

// Set is a server's rules and their counters; the zero Set has no rules.
type Set[E comparable] struct {
	mu    sync.Mutex
	rules []*ruleState[E]
	rng   *rand.Rand
}

// Seed seeds the PRNG that Rule.Probability draws from (0: no PRNG).
func (fs *Set[E]) Seed(seed uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rng = nil
	if seed != 0 {
		fs.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
}

// Set replaces the rules (their counters start afresh).
func (fs *Set[E]) Set(rules []Rule[E]) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rules = nil
	for _, f := range rules {
		fs.rules = append(fs.rules, &ruleState[E]{Rule: f})
	}
}

// Add appends a rule.
func (fs *Set[E]) Add(f Rule[E]) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rules = append(fs.rules, &ruleState[E]{Rule: f})
}

// take decides whether rule r fires now, consuming one count if so. fs.mu held.
func (fs *Set[E]) take(r *ruleState[E]) bool {
	if r.Count >= 0 && r.fired >= r.Count {
		return false
	}
	if r.Probability > 0 && r.Probability < 1 && fs.rng != nil && fs.rng.Float64() >= r.Probability {
		return false
	}
	r.fired++
	return true
}

// Check503 returns the Retry-After seconds of a firing Status503 rule.
func (fs *Set[E]) Check503(ep E, file string) (retryAfter int, fire bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, r := range fs.rules {
		if r.Kind == Status503 && r.matches(ep, file) && fs.take(r) {
			ra := r.RetryAfter
			if ra == 0 {
				ra = 1
			}
			return ra, true
		}
	}
	return 0, false
}

// Plan is what to do to one body response.
type Plan struct {
	Cut       Kind // 0, Drop or Truncate
	CutAfter  int64
	Corrupt   bool
	CorruptAt int64
}

// Active reports whether the plan does anything.
func (p Plan) Active() bool { return p.Cut != 0 || p.Corrupt }

// PlanBody picks the body faults for a body of length n.
func (fs *Set[E]) PlanBody(ep E, file string, n int64) Plan {
	var p Plan
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, r := range fs.rules {
		if r.AfterBytes < 0 || n <= r.AfterBytes || !r.matches(ep, file) {
			continue
		}
		switch r.Kind {
		case Drop, Truncate:
			if p.Cut == 0 && fs.take(r) {
				p.Cut, p.CutAfter = r.Kind, r.AfterBytes
			}
		case Corrupt:
			if !p.Corrupt && fs.take(r) {
				p.Corrupt, p.CorruptAt = true, r.AfterBytes
			}
		}
	}
	return p
}
