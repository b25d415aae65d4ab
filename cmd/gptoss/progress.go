package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/fetch"
)

// progress renders fetch events: an aggregate bar plus a line per finished
// file on a terminal, periodic plain lines otherwise, NDJSON with --json.
type progress struct {
	stdout, stderr io.Writer
	json, quiet    bool
	tty            bool

	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	total     int64
	done      int64
	lastPlain time.Time
	start     time.Time
	enc       *json.Encoder
}

func newProgress(stdout, stderr io.Writer, asJSON, quiet bool) *progress {
	p := &progress{stdout: stdout, stderr: stderr, json: asJSON, quiet: quiet, start: time.Now()}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	if asJSON {
		p.enc = json.NewEncoder(stdout)
	}
	return p
}

type jsonEvent struct {
	Event   string `json:"event"`
	Path    string `json:"path,omitempty"`
	Size    int64  `json:"size,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Resumed int64  `json:"resumed,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	DelayMS int64  `json:"delayMs,omitempty"`
	Error   string `json:"error,omitempty"`
}

var kindNames = map[fetch.EventKind]string{
	fetch.EventPlan: "plan", fetch.EventFileStart: "file_start", fetch.EventProgress: "progress",
	fetch.EventFileDone: "file_done", fetch.EventFileCached: "file_cached", fetch.EventRetry: "retry",
	fetch.EventDone: "done",
}

func (p *progress) event(e fetch.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Total > 0 {
		p.total = e.Total
	}
	p.done = e.Done
	if p.json {
		je := jsonEvent{Event: kindNames[e.Kind], Path: e.File.Path, Size: e.File.Size, Bytes: e.Bytes,
			Done: e.Done, Total: e.Total, Resumed: e.Resumed, Attempt: e.Attempt, DelayMS: e.Delay.Milliseconds()}
		if e.Kind == fetch.EventFileDone || e.Kind == fetch.EventFileCached {
			je.SHA256 = e.File.SHA256
		}
		if e.Err != nil {
			je.Error = e.Err.Error()
		}
		p.enc.Encode(je)
		return
	}
	if p.quiet {
		return
	}
	switch e.Kind {
	case fetch.EventPlan:
		if e.Resumed > 0 {
			p.line(fmt.Sprintf("resuming: %s already downloaded", human(e.Resumed)))
		}
		if p.tty && e.Total > 0 {
			p.bar = progressbar.NewOptions64(e.Total,
				progressbar.OptionSetWriter(p.stderr), progressbar.OptionShowBytes(true),
				progressbar.OptionSetDescription("pulling"), progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true), progressbar.OptionUseIECUnits(true),
				progressbar.OptionFullWidth(), progressbar.OptionClearOnFinish())
			p.bar.Set64(e.Done)
		}
	case fetch.EventProgress:
		if p.bar != nil {
			p.bar.Set64(e.Done)
		} else if time.Since(p.lastPlain) >= 5*time.Second {
			p.lastPlain = time.Now()
			p.line(p.status())
		}
	case fetch.EventFileDone:
		p.line(fmt.Sprintf("  ✓ %s  %s  sha256:%s", e.File.Path, human(e.File.Size), short(e.File.SHA256)))
	case fetch.EventRetry:
		p.line(fmt.Sprintf("  ↻ %s: %v; retry %d in %s", e.File.Path, e.Err, e.Attempt, e.Delay.Round(time.Millisecond)))
	}
}

func (p *progress) status() string {
	el := time.Since(p.start).Seconds()
	rate := float64(p.done) / el
	s := fmt.Sprintf("pulling: %s / %s", human(p.done), human(p.total))
	if p.total > 0 {
		s += fmt.Sprintf(" (%d%%)", p.done*100/p.total)
	}
	s += fmt.Sprintf(", %s/s", human(int64(rate)))
	if rate > 0 && p.total > p.done {
		s += ", ETA " + time.Duration(float64(p.total-p.done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	return s
}

// line prints a message above the bar.
func (p *progress) line(s string) {
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintln(p.stderr, s)
	if p.bar != nil {
		p.bar.RenderBlank()
		p.bar.Set64(p.done)
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// pulled prints the result. unchecked is how many of the files no digest
// was known for: their sha256 was computed but could not be checked.
func (p *progress) pulled(res *fetch.PullResult, took time.Duration, store *cache.Store, unchecked int) error {
	if res.Warning != "" && !p.json {
		fmt.Fprintln(p.stderr, "gptoss: warning: "+res.Warning)
	}
	m := res.Manifest
	if res.Entry == nil { // dry run
		if p.json {
			return json.NewEncoder(p.stdout).Encode(map[string]any{"event": "plan", "name": m.Name, "revision": m.Revision,
				"format": m.Format, "files": m.Files, "plan": res.Plan})
		}
		fmt.Fprintf(p.stdout, "%s (%s) @ %s: %d files, %s\n", m.Name, m.Format, m.Revision, len(m.Files), human(m.TotalSize()))
		for _, f := range m.Files {
			fmt.Fprintf(p.stdout, "  %-48s %10s\n", f.Path, human(f.Size))
		}
		fmt.Fprintf(p.stdout, "would download %s (%s free)\n", human(res.Plan.NeedBytes), human(res.Plan.FreeBytes))
		return nil
	}
	dir := store.SnapshotDir(m)
	if p.json {
		return json.NewEncoder(p.stdout).Encode(map[string]any{"event": "pulled", "name": m.Name, "revision": m.Revision,
			"format": m.Format, "files": len(m.Files), "size": m.TotalSize(), "downloaded": res.Plan.NeedBytes,
			"seconds": took.Seconds(), "path": dir, "manifest": "sha256:" + res.Entry.Digest, "cached": res.Cached,
			"verified": len(m.Files) - unchecked, "unchecked": unchecked})
	}
	how := fmt.Sprintf("downloaded %s in %s", human(res.Plan.NeedBytes), took.Round(time.Millisecond))
	if s := took.Seconds(); s > 0 && res.Plan.NeedBytes > 0 {
		how += fmt.Sprintf(" (%s/s)", human(int64(float64(res.Plan.NeedBytes)/s)))
	}
	if res.Cached {
		how = "already in the cache"
		if res.Offline {
			how += " (offline)"
		}
	}
	checked := "verified"
	if unchecked > 0 {
		checked = fmt.Sprintf("verified %d, %d not checked (no digest known)", len(m.Files)-unchecked, unchecked)
	}
	if !p.quiet {
		fmt.Fprintf(p.stderr, "pulled %s (%s) @ %s: %d files, %s, %s, %s\n", m.Name, m.Format, short(m.Revision),
			len(m.Files), human(m.TotalSize()), how, checked)
	}
	fmt.Fprintln(p.stdout, dir)
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// human formats bytes with IEC units.
func human(n int64) string { return fetch.HumanBytes(n) }

// parseBytes reads 50M, 1.5G, 100k, 1024 (bytes; K/M/G are powers of 1000,
// Ki/Mi/Gi powers of 1024).
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	s = strings.TrimSuffix(strings.TrimSpace(s), "B")
	s = strings.TrimSuffix(s, "/s")
	mult := 1.0
	suffixes := []struct {
		s string
		m float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}}
	for _, x := range suffixes {
		if strings.HasSuffix(s, x.s) {
			s, mult = strings.TrimSuffix(s, x.s), x.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * mult), nil
}
