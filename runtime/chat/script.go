package chat

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// ScriptEnv must be set to 1 for a command to honour a --script-file: the
// script replaces the model's sampling, which only tests may want.
const ScriptEnv = "GPTOSS_TEST_SCRIPT"

// Script is a test hook that replaces sampling with canned completions, so
// that tests of the chat format and the API can be deterministic on a model
// with random weights. Each rule's Reply is a completion in Harmony text
// (special tokens written as text, e.g. "<|channel|>final<|message|>Hi<|return|>");
// the first rule whose When is contained in the conversation's last
// message (user or tool) is used. The model still runs on the replayed
// tokens; only the choice of token is forced.
type Script []ScriptRule

// ScriptRule is one canned completion.
type ScriptRule struct {
	When  string `json:"when"`
	Reply string `json:"reply"`
}

// LoadScript reads a JSON array of {"when", "reply"} rules.
func LoadScript(path string) (Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Script
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("script %s: %w", path, err)
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("script %s: no rules", path)
	}
	return s, nil
}

// Reply returns the completion for a conversation whose last message is
// last; ok is false when no rule matches.
func (s Script) Reply(last string) (string, bool) {
	for _, r := range s {
		if strings.Contains(last, r.When) {
			return r.Reply, true
		}
	}
	return "", false
}
