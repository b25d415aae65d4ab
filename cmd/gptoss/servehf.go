package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/registry/hfserve"
)

func newServeHFCmd(g *globalOptions) *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:   "serve-hf",
		Short: "Serve the cache read-only over the Hugging Face Hub protocol (for HF_ENDPOINT)",
		Long: `serve-hf serves the models in the cache, read-only, the way the Hugging Face
Hub serves them, so that transformers, vLLM, hf download, @huggingface/hub and
gptoss on other machines can pull from this one (e.g. inside an air gap):

  gptoss serve-hf --addr 0.0.0.0:8080
  HF_ENDPOINT=http://thishost:8080 hf download openai/gpt-oss-20b

Revision "main" is the newest cached entry of a model. It prints
HF_ENDPOINT=http://ADDR once listening and serves until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usageError{fmt.Errorf("serve-hf: %w", err)}
			}
			srv := &http.Server{
				Handler:           hfserve.New(store),
				ReadHeaderTimeout: 30 * time.Second,
				IdleTimeout:       2 * time.Minute,
				MaxHeaderBytes:    64 << 10,
			}
			fmt.Fprintf(cmd.OutOrStdout(), "HF_ENDPOINT=http://%s\n", ln.Addr())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return err
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			srv.Close()
			if !g.quiet {
				fmt.Fprintln(cmd.ErrOrStderr(), "serve-hf: stopped")
			}
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (HOST:PORT; port 0 picks a free one)")
	return c
}
