package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/registry"
)

// configEnv isolates a test from the caller's settings and returns where
// the default configuration file is.
func configEnv(t *testing.T) string {
	clearEnv(t)
	for _, k := range []string{"GPTOSS_CONFIG", "GPTOSS_PLAIN_HTTP"} {
		t.Setenv(k, "")
	}
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	return filepath.Join(xdg, "gptoss", "config.json")
}

func writeConfig(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConfigPath(t *testing.T) {
	configEnv(t)
	t.Setenv("XDG_CONFIG_HOME", "")
	home := os.Getenv("HOME")
	if p, explicit := ConfigPath(); p != filepath.Join(home, ".config", "gptoss", "config.json") || explicit {
		t.Errorf("default: %s %v", p, explicit)
	}
	t.Setenv("XDG_CONFIG_HOME", "/x")
	if p, _ := ConfigPath(); p != "/x/gptoss/config.json" {
		t.Errorf("XDG: %s", p)
	}
	t.Setenv("GPTOSS_CONFIG", "/y/c.json")
	if p, explicit := ConfigPath(); p != "/y/c.json" || !explicit {
		t.Errorf("GPTOSS_CONFIG: %s %v", p, explicit)
	}
}

func TestSettingsNoFile(t *testing.T) {
	configEnv(t)
	s, err := LoadSettings()
	if err != nil || s != (Settings{}) {
		t.Fatalf("%+v %v", s, err)
	}
	t.Setenv("GPTOSS_MIRROR", "/m")
	t.Setenv("HF_HUB_OFFLINE", "1")
	t.Setenv("GPTOSS_PLAIN_HTTP", "yes")
	if s, err := LoadSettings(); err != nil || s != (Settings{"/m", true, true}) {
		t.Fatalf("%+v %v", s, err)
	}
	if Mirror() != "/m" || !Offline() {
		t.Error("Mirror/Offline do not follow the environment")
	}
	// An explicitly named file must exist.
	t.Setenv("GPTOSS_CONFIG", filepath.Join(t.TempDir(), "missing.json"))
	if _, err := LoadSettings(); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing GPTOSS_CONFIG: %v", err)
	}
}

func TestSettingsPrecedence(t *testing.T) {
	p := configEnv(t)
	writeConfig(t, p, `{"mirror": "/media/usb/m.tar", "offline": true, "plainHTTP": true}`)
	s, err := LoadSettings()
	if err != nil || s != (Settings{"/media/usb/m.tar", true, true}) {
		t.Fatalf("file: %+v %v", s, err)
	}
	if Mirror() != "/media/usb/m.tar" || !Offline() {
		t.Errorf("Mirror %q Offline %v", Mirror(), Offline())
	}
	if !(Options{}).ociOptions().PlainHTTP {
		t.Error("plainHTTP from the file not used")
	}
	// The environment wins, a false value included.
	t.Setenv("GPTOSS_MIRROR", "oci://reg/ns")
	t.Setenv("GPTOSS_OFFLINE", "0")
	t.Setenv("GPTOSS_PLAIN_HTTP", "false")
	if s, err := LoadSettings(); err != nil || s != (Settings{"oci://reg/ns", false, false}) {
		t.Fatalf("env over file: %+v %v", s, err)
	}
	// GPTOSS_CONFIG names another file.
	t.Setenv("GPTOSS_MIRROR", "")
	t.Setenv("GPTOSS_OFFLINE", "")
	other := filepath.Join(t.TempDir(), "other.json")
	writeConfig(t, other, `{"mirror": "/other"}`)
	t.Setenv("GPTOSS_CONFIG", other)
	if s, err := LoadSettings(); err != nil || s.Mirror != "/other" || s.Offline {
		t.Fatalf("GPTOSS_CONFIG: %+v %v", s, err)
	}
	// A relative mirror is relative to the file.
	writeConfig(t, other, `{"mirror": "usb/m.tar"}`)
	if s, err := LoadSettings(); err != nil || s.Mirror != filepath.Join(filepath.Dir(other), "usb", "m.tar") {
		t.Fatalf("relative mirror: %+v %v", s, err)
	}
	// An empty file is an empty configuration.
	writeConfig(t, other, " \n")
	if s, err := LoadSettings(); err != nil || s.Mirror != "" {
		t.Fatalf("empty file: %+v %v", s, err)
	}
}

func TestSettingsBadFile(t *testing.T) {
	p := configEnv(t)
	for _, body := range []string{
		`{"mirror": "/m",}`,              // malformed
		`{"mirorr": "/m"}`,               // typo: unknown key
		`{"offline": "yes"}`,             // wrong type
		`{"mirror": "/a"} {"mirror": 1}`, // trailing value
		`[]`,
	} {
		writeConfig(t, p, body)
		_, err := LoadSettings()
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not name the file", body, err)
		}
		ref := parse(t, "20b")
		if _, _, err := For(ref, "", Options{}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: For: %v", body, err)
		}
	}
	writeConfig(t, p, `{"mirorr": "/m"}`)
	if _, err := LoadSettings(); err == nil || !strings.Contains(err.Error(), "mirorr") {
		t.Errorf("unknown key not named: %v", err)
	}
}

func TestForUsesConfigMirror(t *testing.T) {
	p := configEnv(t)
	dir := t.TempDir()
	writeConfig(t, p, `{"mirror": "`+dir+`"}`)
	_, ref, err := For(parse(t, "20b"), "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ref.Scheme != registry.SchemeLocal {
		t.Errorf("mirror from the config file not used: %+v", ref)
	}
}
