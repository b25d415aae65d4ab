package hw

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// detectDisk measures the filesystem that holds path, or would hold it once
// created: it walks up to the nearest existing directory. Path is reported
// as given; Free is what an unprivileged user may still write.
func detectDisk(path string) Disk {
	d := Disk{Path: path}
	dir, err := filepath.Abs(path)
	if err != nil {
		return d
	}
	for {
		_, err := os.Stat(dir)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return d // unusable, not merely not there yet
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return d
		}
		dir = parent
	}
	d.Free, d.Total = statDisk(dir)
	return d
}
