package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry/oci"
	"github.com/gptoss/gptoss/registry/sources"
)

func newMirrorCmd(g *globalOptions) *cobra.Command {
	var (
		to, format, username string
		passwordStdin        bool
		plainHTTP            bool
		connections          int
		cloud                cloudFlags
	)
	c := &cobra.Command{
		Use:   "mirror MODEL --to oci://HOST/NAMESPACE[/REPO:TAG] | s3://BUCKET/PREFIX | az://ACCOUNT/CONTAINER/PREFIX | dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/PATH",
		Short: "Push a cached model to an OCI registry or an object store (S3, Azure Blob) for air-gapped pulls",
		Long: `Push a cached model to an OCI registry as a CNCF ModelPack artifact: one
raw layer per file (path in the org.cncf.model.filepath annotation, digest =
the file's SHA-256), the ModelPack config, and the manifest, pushed last, so
the tag appears only when every blob is there. Blobs the registry already
has are skipped; others are uploaded in 64 MiB chunks that resume after a
failed chunk.

--to oci://HOST/NAMESPACE puts each cached format of MODEL at
oci://HOST/NAMESPACE/<model>:<format>, e.g. oci://reg.corp/models/gpt-oss-20b:hf,
which is where "gptoss pull 20b" looks with GPTOSS_MIRROR=oci://reg.corp/models
(or --from oci://reg.corp/models). A reference with a tag is used as it is
(one format: add --format if several are cached).

Registries on localhost or a loopback address are spoken to over plain HTTP;
--plain-http (or GPTOSS_PLAIN_HTTP=1) for others. Credentials: --username with
--password-stdin, GPTOSS_REGISTRY_USERNAME/GPTOSS_REGISTRY_PASSWORD, or
~/.docker/config.json (docker login); they are never printed.

--to s3://BUCKET/PREFIX writes the snapshot's files under PREFIX with the
same paths as the Hugging Face repository (so aws s3 cp/sync and other
tools see an ordinary snapshot), each with its SHA-256 in the object
metadata (x-amz-meta-sha256), large files as parallel multipart uploads
that leave nothing behind on failure, then gptoss-manifest.json (every
file's path, size and SHA-256, the source and the revision) LAST: that
manifest is what "gptoss pull 20b --from s3://BUCKET/PREFIX" checks every
byte against. Files already there with the same SHA-256 are skipped. A
prefix holds one model; several formats of the same revision share it.
Credentials: the AWS default chain (AWS_PROFILE, AWS_ACCESS_KEY_ID …, SSO,
instance roles); --endpoint or AWS_ENDPOINT_URL for S3-compatible stores.

--to az://ACCOUNT/CONTAINER/PREFIX (or https://ACCOUNT.blob.core.windows.net/
CONTAINER/PREFIX) does the same on Azure Blob storage: large files as block
blobs staged in parallel and committed at once, the SHA-256 in the blob
metadata (x-ms-meta-gptoss_sha256). Credentials: a SAS token in the URL
(?sv=…&sig=…, needs sp=racwl), AZURE_STORAGE_CONNECTION_STRING,
AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_KEY, else DefaultAzureCredential
(az login, managed identity, AZURE_CLIENT_ID/AZURE_TENANT_ID/
AZURE_CLIENT_SECRET); --endpoint or AZURE_STORAGE_BLOB_ENDPOINT for Azurite
or a private endpoint. SAS tokens and keys are never printed.

--to dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/PATH does the same in a Databricks
Unity Catalog volume through the Files API (files of 64 MiB and more as
parallel multipart uploads; the volume keeps no metadata, so the manifest
carries the SHA-256s). Credentials: DATABRICKS_HOST and DATABRICKS_TOKEN (a
personal access token; the token needs WRITE VOLUME), else a profile of
~/.databrickscfg (DATABRICKS_CONFIG_PROFILE). The token is never printed.`,
		Example: `  gptoss mirror 20b --to oci://registry.corp/models
  gptoss mirror 20b --to oci://127.0.0.1:5000/models/gpt-oss-20b:hf
  gptoss mirror 20b --to s3://corp-models/gpt-oss-20b
  gptoss mirror 20b --to s3://models/gpt-oss-20b --endpoint http://127.0.0.1:7070
  gptoss mirror 20b --to "az://corpmodels/models/gpt-oss-20b?$SAS_TOKEN"
  gptoss mirror 20b --to dbfs:/Volumes/main/ml/models/gpt-oss-20b
  echo "$TOKEN" | gptoss mirror 120b --to oci://registry.corp/ml --username ci --password-stdin
  # inside the air gap:
  GPTOSS_MIRROR=oci://registry.corp/models gptoss pull 20b`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError{fmt.Errorf("--to oci://HOST/NAMESPACE, s3://BUCKET/PREFIX, az://ACCOUNT/CONTAINER/PREFIX or dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/PATH is required")}
			}
			if connections < 1 || connections > 64 {
				return usageError{fmt.Errorf("--connections must be 1..64")}
			}
			if sources.IsObjectStore(to) {
				store, es, err := g.cached(args[0], format)
				if err != nil {
					return err
				}
				return mirrorObject(cmd, g, to, newestPerFormat(es), store, connections, &cloud)
			}
			if !strings.HasPrefix(to, "oci://") {
				return usageError{fmt.Errorf("--to %q: want oci://HOST/NAMESPACE, s3://BUCKET/PREFIX, az://ACCOUNT/CONTAINER/PREFIX or dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/PATH (gptoss export writes OCI layouts)", to)}
			}
			if passwordStdin && username == "" {
				return usageError{fmt.Errorf("--password-stdin needs --username")}
			}
			base, err := oci.ParseRef(to)
			if err != nil {
				return err
			}
			settings, err := sources.LoadSettings()
			if err != nil {
				return err
			}
			opts := oci.Options{PlainHTTP: plainHTTP || settings.PlainHTTP, Username: username}
			if passwordStdin {
				pw, err := readPassword(cmd.InOrStdin())
				if err != nil {
					return usageError{fmt.Errorf("--password-stdin: %w", err)}
				}
				opts.Password = pw
			}
			store, es, err := g.cached(args[0], format)
			if err != nil {
				return err
			}
			pick := newestPerFormat(es)
			if (base.Tag != "" || base.Digest != "") && len(pick) > 1 {
				var fs []string
				for _, e := range pick {
					fs = append(fs, e.Manifest.Format)
				}
				return usageError{fmt.Errorf("%s is cached in several formats (%s): pick one with --format, or give --to without a tag", args[0], strings.Join(fs, ", "))}
			}
			eng := fetch.New(fetch.Options{Connections: connections})
			type row struct {
				Event     string   `json:"event"`
				Name      string   `json:"name"`
				Format    string   `json:"format"`
				Revision  string   `json:"revision"`
				Files     int      `json:"files"`
				Size      int64    `json:"size"`
				Uploaded  int      `json:"uploaded"`
				Skipped   int      `json:"skipped"`
				Bytes     int64    `json:"bytes"`
				Reference string   `json:"reference"`
				UpFiles   []string `json:"uploadedFiles"`
				SkipFiles []string `json:"skippedFiles"`
			}
			for _, e := range pick {
				m := e.Manifest
				// The layout GPTOSS_MIRROR and pull --from read (sources.OCITarget).
				r := base.WithModel(m.Name, m.Format)
				dst := oci.NewRef(r, opts)
				start := time.Now()
				res, up, skip, err := mirrorOne(cmd, g, eng, store, m, dst, r.String())
				if err != nil {
					return fmt.Errorf("mirror %s (%s) to %s: %w", m.Name, m.Format, r, err)
				}
				ref := dst.Describe()
				if g.json {
					json.NewEncoder(cmd.OutOrStdout()).Encode(row{"mirrored", m.Name, m.Format, m.Revision, len(m.Files),
						m.TotalSize(), res.Uploaded, res.Skipped, res.Bytes, ref, nonNil(up), nonNil(skip)})
					continue
				}
				if !g.quiet {
					el := time.Since(start)
					fmt.Fprintf(cmd.ErrOrStderr(), "mirrored %s (%s) @ %s: %d files, %s; %d uploaded (%s in %s), %d already there\n",
						m.Name, m.Format, short(m.Revision), len(m.Files), human(m.TotalSize()), res.Uploaded, human(res.Bytes),
						el.Round(time.Millisecond), res.Skipped)
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&to, "to", "", "the registry: oci://HOST/NAMESPACE, or oci://HOST/REPO:TAG (required)")
	f.StringVar(&format, "format", "", "only this format (hf, original, metal); default every cached format")
	f.BoolVar(&plainHTTP, "plain-http", false, "speak plain HTTP to the registry (automatic for localhost; also GPTOSS_PLAIN_HTTP=1)")
	f.StringVarP(&username, "username", "u", "", "registry user name (default GPTOSS_REGISTRY_USERNAME, else ~/.docker/config.json)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the registry password or token from stdin")
	f.IntVarP(&connections, "connections", "c", 4, "files uploaded at once")
	cloud.add(f)
	return c
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	s, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	s = strings.TrimRight(s, "\r\n")
	if s == "" {
		return "", fmt.Errorf("empty password")
	}
	return s, nil
}
