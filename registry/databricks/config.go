package databricks

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Options say which workspace to talk to and how.
type Options struct {
	Host      string // workspace URL, e.g. https://adb-123.4.azuredatabricks.net; no scheme = https
	Token     string // personal access token (Bearer)
	UserAgent string
	// PartSize is the multipart part size (default 64 MiB); files smaller
	// than it go up in one PUT. Tests lower it.
	PartSize int64
	// Concurrency is the number of parts of one file in flight (default 8).
	Concurrency int
}

// OptionsFromEnv reads DATABRICKS_HOST and DATABRICKS_TOKEN, then fills what
// is missing from the profile DATABRICKS_CONFIG_PROFILE (default
// "DEFAULT") of DATABRICKS_CONFIG_FILE (default ~/.databrickscfg), as the
// Databricks CLI does. A missing file is not an error.
func OptionsFromEnv() (Options, error) {
	o := Options{Host: os.Getenv("DATABRICKS_HOST"), Token: os.Getenv("DATABRICKS_TOKEN")}
	if o.Host != "" && o.Token != "" {
		return o, nil
	}
	cfg := os.Getenv("DATABRICKS_CONFIG_FILE")
	if cfg == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return o, nil
		}
		cfg = filepath.Join(h, ".databrickscfg")
	}
	profile := os.Getenv("DATABRICKS_CONFIG_PROFILE")
	explicit := profile != ""
	if profile == "" {
		profile = "DEFAULT"
	}
	kv, found, err := readProfile(cfg, profile)
	if err != nil {
		return o, err
	}
	if !found && explicit {
		return o, fmt.Errorf("databricks: profile %q not found in %s (DATABRICKS_CONFIG_PROFILE)", profile, cfg)
	}
	if o.Host == "" {
		o.Host = kv["host"]
	}
	if o.Token == "" {
		o.Token = kv["token"]
	}
	return o, nil
}

// readProfile reads one [section] of an INI file as key = value pairs.
func readProfile(file, profile string) (map[string]string, bool, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("databricks: %v", err)
	}
	defer f.Close()
	kv := map[string]string{}
	in, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			in = strings.TrimSpace(l[1:len(l)-1]) == profile
			found = found || in
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && in {
			kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return kv, found, sc.Err()
}

// baseURL checks the host and returns scheme://host[:port] without a
// trailing slash.
func baseURL(host string) (string, error) {
	if host == "" {
		return "", fmt.Errorf("no Databricks workspace: set DATABRICKS_HOST (e.g. https://adb-123.4.azuredatabricks.net) and DATABRICKS_TOKEN, or a profile in ~/.databrickscfg")
	}
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return "", fmt.Errorf("DATABRICKS_HOST: want https://<workspace host>, got an unusable URL")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return "", fmt.Errorf("DATABRICKS_HOST %s: plain http would send the token in the clear; use https://", u.Host)
	}
	return u.Scheme + "://" + u.Host, nil
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
