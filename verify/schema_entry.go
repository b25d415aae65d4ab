package verify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
)

// HeaderResult is the safetensors header validation of one file.
type HeaderResult struct {
	Path    string `json:"path"`
	Tensors int    `json:"tensors"`
	Status  string `json:"status"` // OK, Missing or InvalidHeader
	Detail  string `json:"detail,omitempty"`
}

// InvalidHeader is the status of a file convert.OpenFile rejects.
const InvalidHeader = "invalid header"

// StructureReport is the structure check of one cached model: every
// safetensors header, then the gpt-oss schema of its layout.
type StructureReport struct {
	Headers []HeaderResult `json:"headers"`
	Layout  string         `json:"layout,omitempty"` // "" when the format has no schema check
	Schema  *SchemaReport  `json:"schema,omitempty"`
	// Problems lists every finding, one line each (headers, schema,
	// mxfp4 and any further check).
	Problems []Problem `json:"problems,omitempty"`
	OK       bool      `json:"ok"`
}

// Add records a finding.
func (r *StructureReport) Add(p Problem) {
	r.Problems = append(r.Problems, p)
	r.OK = false
}

// SchemaLayout maps a manifest format to the checkpoint layout checked and
// the folder of the snapshot it lives in; ok is false for formats without a
// schema check.
func SchemaLayout(format string) (layout, subdir string, ok bool) {
	switch format {
	case "hf":
		return LayoutHF, ".", true
	case "original":
		return LayoutOriginal, "original", true
	}
	return "", "", false
}

// Structure validates the header of every .safetensors file of the entry in
// its snapshot directory, then (formats "hf" and "original", when every
// header is valid) checks the checkpoint against its config with
// CheckSchema. Nothing is hashed; tensors are read only for the MXFP4
// scale check.
func Structure(s *cache.Store, e cache.Entry) *StructureReport {
	m := e.Manifest
	snap := s.SnapshotDir(m)
	r := &StructureReport{OK: true}
	headersOK := true
	for _, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".safetensors") {
			continue
		}
		p := filepath.Join(snap, filepath.FromSlash(f.Path))
		h := HeaderResult{Path: f.Path, Status: OK}
		sf, err := convert.OpenFile(p)
		switch {
		case err == nil:
			h.Tensors = len(sf.Tensors)
			sf.Close()
		case errors.Is(err, os.ErrNotExist):
			h.Status, h.Detail = Missing, p
		case errors.Is(err, convert.ErrFormat):
			msg := strings.Replace(err.Error(), p+": ", "", 1)
			h.Status, h.Detail = InvalidHeader, strings.TrimPrefix(msg, convert.ErrFormat.Error()+": ")
		default:
			h.Status, h.Detail = InvalidHeader, err.Error()
		}
		if h.Status != OK {
			headersOK = false
			r.Add(Problem{Check: "header", Subject: f.Path, Detail: h.Status + ": " + h.Detail})
		}
		r.Headers = append(r.Headers, h)
	}
	layout, sub, ok := SchemaLayout(m.Format)
	if !ok {
		return r
	}
	r.Layout = layout
	subject := layout + " checkpoint"
	if !headersOK {
		r.Add(Problem{Check: "schema", Subject: subject, Detail: "not checked: invalid safetensors headers"})
		return r
	}
	dir := filepath.Join(snap, sub)
	sr, err := CheckSchema(dir, layout)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), snap+string(filepath.Separator), "")
		r.Add(Problem{Check: "schema", Subject: subject, Detail: strings.ReplaceAll(msg, snap, ".")})
		return r
	}
	sr.Dir = sub
	r.Schema = sr
	for _, p := range sr.Problems() {
		r.Add(p)
	}
	return r
}
