package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Model is a catalog entry: a known model, its repository and formats.
type Model struct {
	Name          string   // "gpt-oss-20b"
	Repo          string   // "openai/gpt-oss-20b"
	Aliases       []string // "20b"
	Params        string   // total parameters, e.g. "21B"
	ActiveParams  string   // per token, e.g. "3.6B"
	WeightsBytes  int64    // MXFP4 checkpoint size (HF layout)
	DefaultFormat string
	Formats       map[string]Format
}

// Format is one layout of a model's files within its repository.
type Format struct {
	Description string
	// Required patterns must each match at least one file; Optional ones are
	// taken when present. Patterns use Match (fnmatch: '*' crosses '/').
	Required []string
	Optional []string
	// Index names a safetensors index (weight_map) whose shards are the only
	// *.safetensors files to take, and which must all exist.
	Index string
}

var commonDocs = []string{"LICENSE", "USAGE_POLICY", "README.md"}
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}

func gptOSSFormats() map[string]Format {
	return map[string]Format{
		"hf": {
			Description: "Hugging Face layout: transformers, vLLM, llama.cpp converters (default)",
			Required:    []string{"config.json", "model.safetensors.index.json", "model-*.safetensors"},
			Optional:    append(append([]string{"generation_config.json"}, tokenizerFiles...), commonDocs...),
			Index:       "model.safetensors.index.json",
		},
		"original": {
			Description: "OpenAI's original layout (original/): the reference torch/triton code",
			Required:    []string{"original/config.json", "original/*.safetensors"},
			Optional:    append(append([]string{"original/*"}, tokenizerFiles...), commonDocs...),
		},
		"metal": {
			Description: "OpenAI's Apple Metal file (metal/model.bin)",
			Required:    []string{"metal/*"},
			Optional:    append(append([]string{}, tokenizerFiles...), commonDocs...),
		},
	}
}

var catalog = []*Model{
	{Name: "gpt-oss-20b", Repo: "openai/gpt-oss-20b", Aliases: []string{"20b"},
		Params: "21B", ActiveParams: "3.6B", WeightsBytes: 13_761_264_768,
		DefaultFormat: "hf", Formats: gptOSSFormats()},
	{Name: "gpt-oss-120b", Repo: "openai/gpt-oss-120b", Aliases: []string{"120b"},
		Params: "117B", ActiveParams: "5.1B", WeightsBytes: 65_248_815_744,
		DefaultFormat: "hf", Formats: gptOSSFormats()},
}

// Catalog returns the known models.
func Catalog() []*Model { return catalog }

// Lookup finds a catalog model by alias, name or repository (case-insensitive).
func Lookup(s string) *Model {
	s = strings.ToLower(s)
	for _, m := range catalog {
		if s == m.Name || s == strings.ToLower(m.Repo) {
			return m
		}
		for _, a := range m.Aliases {
			if s == a {
				return m
			}
		}
	}
	return nil
}

// Match reports whether name matches the glob pattern with fnmatch rules as
// huggingface_hub applies them: '*' and '?' also match '/', "[...]" is a
// class, and a pattern ending in '/' means everything under that directory.
func Match(pattern, name string) bool {
	if strings.HasSuffix(pattern, "/") {
		pattern += "*"
	}
	re, err := globRegexp(pattern)
	if err != nil {
		return false
	}
	return re.MatchString(name)
}

func globRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := p[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// maxIndexSize bounds the safetensors index read during selection.
const maxIndexSize = 64 << 20

// SelectFiles narrows a complete listing to what ref asks for: the catalog
// format's file set (reading its index through src so that only the shards the
// index names are taken), then ref.Include / ref.Exclude. It fails when a
// required file is missing or the index names a shard that is not listed.
func SelectFiles(ctx context.Context, src Source, ref Ref, all *Manifest) (*Manifest, error) {
	out := *all
	out.Files = nil
	format := ref.Format
	if ref.Model != nil && format == "" && len(ref.Include) == 0 {
		format = ref.Model.DefaultFormat
	}
	var files []File
	switch {
	case format == "" || format == "custom":
		out.Format = "custom"
		files = append(files, all.Files...)
	case ref.Model == nil:
		return nil, fmt.Errorf("%w: --format %s is only known for catalog models (20b, 120b); use --include", ErrUnsupported, format)
	default:
		spec, ok := ref.Model.Formats[format]
		if !ok {
			return nil, fmt.Errorf("%w: %s has no format %q (have %s)", ErrUnsupported, ref.Model.Name, format, strings.Join(formatNames(ref.Model), ", "))
		}
		out.Format = format
		sel, err := selectFormat(ctx, src, spec, all)
		if err != nil {
			return nil, err
		}
		files = sel
	}
	for _, f := range files {
		if len(ref.Include) > 0 && !matchAny(ref.Include, f.Path) {
			continue
		}
		if matchAny(ref.Exclude, f.Path) {
			continue
		}
		out.Files = append(out.Files, f)
	}
	if len(out.Files) == 0 {
		return nil, fmt.Errorf("%w: no files of %s match the selection", ErrNotFound, all.Name)
	}
	out.SortFiles()
	return &out, nil
}

func formatNames(m *Model) []string {
	var n []string
	for k := range m.Formats {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func selectFormat(ctx context.Context, src Source, spec Format, all *Manifest) ([]File, error) {
	var shards map[string]bool
	if spec.Index != "" {
		idx, ok := all.Lookup(spec.Index)
		if !ok {
			return nil, fmt.Errorf("%w: %s: %s is not in the repository", ErrNotFound, all.Name, spec.Index)
		}
		var err error
		if shards, err = readIndexShards(ctx, src, idx); err != nil {
			return nil, err
		}
		for s := range shards {
			if _, ok := all.Lookup(s); !ok {
				return nil, fmt.Errorf("%w: %s names shard %s, which the repository does not have", ErrNotFound, spec.Index, s)
			}
		}
	}
	var out []File
	matched := make([]bool, len(spec.Required))
	for _, f := range all.Files {
		take := false
		for i, p := range spec.Required {
			if Match(p, f.Path) {
				take, matched[i] = true, true
			}
		}
		if !take && matchAny(spec.Optional, f.Path) {
			take = true
		}
		if take && shards != nil && strings.HasSuffix(f.Path, ".safetensors") && !shards[f.Path] {
			take = false // a shard the index does not name (a stale copy)
		}
		if take {
			out = append(out, f)
		}
	}
	for i, ok := range matched {
		if !ok {
			return nil, fmt.Errorf("%w: %s has no file matching %q", ErrNotFound, all.Name, spec.Required[i])
		}
	}
	return out, nil
}

// readIndexShards reads a safetensors index and returns the files its
// weight_map names, as paths relative to the repository root.
func readIndexShards(ctx context.Context, src Source, idx File) (map[string]bool, error) {
	if idx.Size > maxIndexSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than an index can be", ErrInvalidManifest, idx.Path, idx.Size)
	}
	rc, err := src.Open(ctx, idx, 0, idx.Size)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", idx.Path, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxIndexSize))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", idx.Path, err)
	}
	var doc struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidManifest, idx.Path, err)
	}
	if len(doc.WeightMap) == 0 {
		return nil, fmt.Errorf("%w: %s has an empty weight_map", ErrInvalidManifest, idx.Path)
	}
	dir := path.Dir(idx.Path)
	shards := map[string]bool{}
	for _, file := range doc.WeightMap {
		p := file
		if dir != "." {
			p = dir + "/" + file
		}
		if _, err := CleanPath(p); err != nil {
			return nil, fmt.Errorf("%s: %w", idx.Path, err)
		}
		shards[p] = true
	}
	return shards, nil
}
