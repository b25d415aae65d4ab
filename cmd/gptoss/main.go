// Command gptoss gets OpenAI's gpt-oss models onto a machine and runs them.
//
// Exit codes (also in the README):
//
//	0   success
//	1   any other error
//	2   usage error (bad flags or arguments, bad model reference)
//	3   not found (model, revision, file, or not in the cache)
//	4   authentication or authorisation failed (401, 403, gated repo)
//	5   verification failed (wrong digest or size; `verify` found a problem)
//	6   not enough disk space (refused before downloading)
//	7   the source could not be reached or kept failing (network, 5xx)
//	8   offline mode and the model is not in the cache
//	9   the model would not run on this machine (pull refused; --force overrides)
//	130 interrupted (Ctrl-C); a pull can be resumed by running it again
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitAuth        = 4
	exitVerify      = 5
	exitNoSpace     = 6
	exitUnavailable = 7
	exitOffline     = 8
	exitNoFit       = 9
	exitInterrupted = 130
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// codeError carries a chosen exit code.
type codeError struct {
	code int
	err  error
}

func (c *codeError) Error() string { return c.err.Error() }
func (c *codeError) Unwrap() error { return c.err }

func exitCode(err error) int {
	var ce *codeError
	var ue usageError
	var he *registry.HTTPError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), errors.Is(err, registry.ErrInvalidRef):
		return exitUsage
	case errors.Is(err, registry.ErrOffline):
		return exitOffline
	case errors.Is(err, cache.ErrNoSpace):
		return exitNoSpace
	case errors.Is(err, registry.ErrUnauthorized), errors.Is(err, registry.ErrForbidden):
		return exitAuth
	case errors.Is(err, registry.ErrDigestMismatch), errors.Is(err, registry.ErrSizeMismatch):
		return exitVerify
	case errors.Is(err, registry.ErrNotFound):
		return exitNotFound
	case errors.As(err, &he) && he.Temporary():
		return exitUnavailable
	case !registry.IsPermanent(err) && isNetErr(err):
		return exitUnavailable
	}
	return exitError
}

// resumable are the commands whose interrupted work a rerun picks up.
var resumable = map[string]bool{"pull": true, "mirror": true, "export": true, "import": true, "convert": true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gptoss: "+err.Error())
		if errors.Is(err, context.Canceled) && cmd != nil && resumable[cmd.Name()] {
			fmt.Fprintln(os.Stderr, "gptoss: interrupted; run the same command again to resume")
		}
	}
	os.Exit(exitCode(err))
}
