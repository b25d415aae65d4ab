// Command detectjson prints hw.Detect's result as JSON. The tests build it
// with CGO_ENABLED=0 to check that detection works without cgo.
package main

import (
	"encoding/json"
	"os"

	"github.com/gptoss/gptoss/runtime/hw"
)

func main() {
	var o hw.Options
	if len(os.Args) > 1 {
		o.DiskPath = os.Args[1]
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(hw.Detect(o)); err != nil {
		os.Exit(1)
	}
}
