package databricks

import (
	"fmt"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// Scheme is the location prefix this package serves.
const Scheme = "dbfs:"

// Location is a parsed dbfs:/Volumes/<catalog>/<schema>/<volume>/<path>.
type Location struct {
	Catalog, Schema, Volume string
	Path                    string // inside the volume, slash-separated, no leading or trailing slash; "" for the root
}

// Is reports whether s is a dbfs: location.
func Is(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseLocation reads dbfs:/Volumes/<catalog>/<schema>/<volume>[/<path>].
func ParseLocation(s string) (Location, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Location{}, fmt.Errorf("%w: %q: want dbfs:/Volumes/<catalog>/<schema>/<volume>/<path>", registry.ErrInvalidRef, s)
	}
	rest = "/" + strings.TrimLeft(rest, "/")
	if !strings.HasPrefix(rest, "/Volumes/") {
		return Location{}, fmt.Errorf("%w: %q: only Unity Catalog volumes are supported: dbfs:/Volumes/<catalog>/<schema>/<volume>/<path>", registry.ErrInvalidRef, s)
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(rest, "/Volumes/"), "/"), "/")
	if len(segs) < 3 {
		return Location{}, fmt.Errorf("%w: %q: name the catalog, schema and volume: dbfs:/Volumes/<catalog>/<schema>/<volume>/<path>", registry.ErrInvalidRef, s)
	}
	for _, seg := range segs[:3] {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00") {
			return Location{}, fmt.Errorf("%w: %q: bad catalog, schema or volume name %q", registry.ErrInvalidRef, s, seg)
		}
	}
	l := Location{Catalog: segs[0], Schema: segs[1], Volume: segs[2]}
	if p := strings.Join(segs[3:], "/"); p != "" {
		c, err := registry.CleanPath(p)
		if err != nil || c != p {
			return Location{}, fmt.Errorf("%w: %q: bad path inside the volume", registry.ErrInvalidRef, s)
		}
		l.Path = p
	}
	return l, nil
}

// VolumePath is /Volumes/<catalog>/<schema>/<volume>.
func (l Location) VolumePath() string {
	return "/Volumes/" + l.Catalog + "/" + l.Schema + "/" + l.Volume
}

// VolumeName is catalog.schema.volume, as Unity Catalog names it.
func (l Location) VolumeName() string { return l.Catalog + "." + l.Schema + "." + l.Volume }

// String is the dbfs: form.
func (l Location) String() string {
	s := Scheme + l.VolumePath()
	if l.Path != "" {
		s += "/" + l.Path
	}
	return s
}
