package databricks

import (
	"github.com/gptoss/gptoss/registry/objstore"
)

// Open parses a dbfs:/Volumes/… location and returns its volume and the
// prefix of the snapshot inside it.
func Open(location string, o Options) (*Volume, string, error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return nil, "", err
	}
	v, err := NewVolume(loc, o)
	if err != nil {
		return nil, "", err
	}
	return v, loc.Path, nil
}

// NewSource returns the source for the snapshot at a dbfs:/Volumes/…
// location (see objstore.Source).
func NewSource(location string, o Options, so objstore.SourceOptions) (*objstore.Source, error) {
	v, prefix, err := Open(location, o)
	if err != nil {
		return nil, err
	}
	return objstore.NewSource(v, prefix, so)
}

// NewTarget returns the mirror target at a dbfs:/Volumes/… location (see
// objstore.Target).
func NewTarget(location string, o Options) (*objstore.Target, error) {
	v, prefix, err := Open(location, o)
	if err != nil {
		return nil, err
	}
	return objstore.NewTarget(v, prefix)
}
