package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Config is the user's configuration file, config.json in
// $XDG_CONFIG_HOME/gptoss (else ~/.config/gptoss), or the file GPTOSS_CONFIG
// names:
//
//	{"mirror": "/media/usb/gpt-oss.tar", "offline": true, "plainHTTP": false}
//
// Each key has the meaning of its environment variable (GPTOSS_MIRROR,
// GPTOSS_OFFLINE, GPTOSS_PLAIN_HTTP), and a variable that is set (not
// empty) wins over the file. A relative mirror path is taken relative to
// the file's directory. Unknown keys are an error, so that a typo is
// not silently ignored.
type Config struct {
	Mirror    string `json:"mirror,omitempty"`
	Offline   *bool  `json:"offline,omitempty"`
	PlainHTTP *bool  `json:"plainHTTP,omitempty"`
}

// maxConfigSize bounds what is read of the configuration file.
const maxConfigSize = 1 << 20

// ConfigPath returns where the configuration file is looked for, and
// whether the user named it explicitly (GPTOSS_CONFIG).
func ConfigPath() (path string, explicit bool) {
	if p := os.Getenv("GPTOSS_CONFIG"); p != "" {
		return p, true
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "gptoss", "config.json"), false
	}
	h, err := os.UserHomeDir()
	if err != nil || h == "" {
		return "", false
	}
	return filepath.Join(h, ".config", "gptoss", "config.json"), false
}

// LoadConfig reads the configuration file. A missing file at the default
// place is an empty configuration; a file GPTOSS_CONFIG names must exist.
// A malformed file, or one with unknown keys, is an error naming the file.
func LoadConfig() (Config, error) {
	var c Config
	p, explicit := ConfigPath()
	if p == "" {
		return c, nil
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return c, nil
		}
		return c, fmt.Errorf("config file %s: %w", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return c, fmt.Errorf("config file %s: %w", p, err)
	}
	if len(b) > maxConfigSize {
		return c, fmt.Errorf("config file %s: larger than %d bytes", p, maxConfigSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config file %s: %v (known keys: mirror, offline, plainHTTP)", p, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("config file %s: more than one JSON value", p)
	}
	// A relative mirror path is relative to the file, not to wherever
	// gptoss runs.
	if m := c.Mirror; m != "" && !strings.Contains(m, "://") && !filepath.IsAbs(m) && !strings.HasPrefix(m, "~/") {
		c.Mirror = filepath.Join(filepath.Dir(p), m)
	}
	return c, nil
}

// Settings are the effective mirror, offline and plain-HTTP settings: the
// environment, else the configuration file, else the defaults.
type Settings struct {
	Mirror    string
	Offline   bool
	PlainHTTP bool
}

// envBool reads the first of vars that is set (not empty): true for 1, on,
// yes, true; false otherwise. ok is false when none is set.
func envBool(vars ...string) (v, ok bool) {
	for _, k := range vars {
		s := strings.TrimSpace(os.Getenv(k))
		if s == "" {
			continue
		}
		switch strings.ToLower(s) {
		case "1", "on", "yes", "true":
			return true, true
		}
		return false, true
	}
	return false, false
}

// LoadSettings combines the environment with the configuration file
// (LoadConfig): GPTOSS_MIRROR, GPTOSS_OFFLINE / HF_HUB_OFFLINE and
// GPTOSS_PLAIN_HTTP win over the file's mirror, offline and plainHTTP. The
// error is the file's; the environment's settings are returned with it.
func LoadSettings() (Settings, error) {
	c, err := LoadConfig()
	s := Settings{Mirror: c.Mirror}
	if c.Offline != nil {
		s.Offline = *c.Offline
	}
	if c.PlainHTTP != nil {
		s.PlainHTTP = *c.PlainHTTP
	}
	if m := os.Getenv("GPTOSS_MIRROR"); m != "" {
		s.Mirror = m
	}
	// Offline if either variable says so (as before); a variable set to a
	// false value overrides the file.
	if v, ok := envBool("GPTOSS_OFFLINE"); ok {
		s.Offline = v
		if w, ok := envBool("HF_HUB_OFFLINE"); ok && w {
			s.Offline = true
		}
	} else if v, ok := envBool("HF_HUB_OFFLINE"); ok {
		s.Offline = v
	}
	if v, ok := envBool("GPTOSS_PLAIN_HTTP"); ok {
		s.PlainHTTP = v
	}
	return s, err
}
