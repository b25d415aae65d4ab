package main

import (
	"context"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/verify"
)

// levelLayout checks the converted GPU-ready layout of a model, when it has
// one: version, header and every tensor's checksum.
const levelLayout = "layout"

func init() {
	structureChecks = append(structureChecks, structureCheck{
		Name:   "gpu-layout",
		Levels: []string{levelLayout},
		Run: func(_ context.Context, s *cache.Store, e cache.Entry, r *verify.StructureReport) {
			hex, ok := s.Converted(e.Digest, convert.LayoutVersion)
			if !ok {
				return // not converted: nothing to check
			}
			l, err := convert.OpenLayout(s.BlobPath(hex))
			if err != nil {
				r.Add(verify.Problem{Check: "layout", Subject: "sha256:" + hex, Detail: err.Error()})
				return
			}
			defer l.Close()
			if err := l.Verify(); err != nil {
				r.Add(verify.Problem{Check: "layout", Subject: "sha256:" + hex, Detail: err.Error()})
			}
		},
	})
}
