package main

import (
	"errors"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	home  string
	json  bool
	quiet bool
}

func (g *globalOptions) store() (*cache.Store, error) {
	root := g.home
	if root == "" {
		var err error
		if root, err = cache.DefaultRoot(); err != nil {
			return nil, err
		}
	}
	return cache.Open(root)
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "gptoss",
		Short: "Get gpt-oss models onto this machine: parallel, resumable, verified",
		Long: `gptoss pulls OpenAI's open-weight models gpt-oss-20b and gpt-oss-120b
(or any Hugging Face model repo) into a verified, content-addressed cache.

  gptoss pull 20b          # from Hugging Face (HF_ENDPOINT, HF_TOKEN honoured)
  gptoss path 20b          # the directory vLLM/transformers can load
  gptoss verify 20b        # re-hash everything
  gptoss doctor 20b        # this machine's GPUs/CPU/RAM, and where the model would run`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", os.Getenv("GPTOSS_HOME"), "cache directory (default $GPTOSS_HOME, $XDG_CACHE_HOME/gptoss or ~/.cache/gptoss)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print machine-readable JSON (NDJSON events for pull)")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "print only errors and the final result")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newPullCmd(g), newListCmd(g), newPathCmd(g), newRmCmd(g), newGCCmd(g), newVerifyCmd(g), newDoctorCmd(g), newConvertCmd(g),
		newMirrorCmd(g), newExportCmd(g), newImportCmd(g), newGGUFCmd(g), newServeHFCmd(g))
	root.AddCommand(newBenchEngineCmd(g)) // hidden: engine benchmarks on synthetic models
	root.AddCommand(newRunCmd(g), newLogitsCmd(g), newServeCmd(g))
	root.AddCommand(newTokenizeCmd(g))
	return root
}

// envTrue reports whether the variable is set to 1, true, yes or on.
func envTrue(name string) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}
