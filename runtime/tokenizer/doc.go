// Package tokenizer is the byte-level BPE tokenizer of gpt-oss
// (o200k_harmony), read from a Hugging Face tokenizer.json or a tiktoken
// ranks file, encoding exactly as OpenAI's tiktoken does.
//
// Design decisions:
//
//   - Pre-tokenizer without regexp. Go's regexp has no look-ahead, and the
//     o200k pattern needs \s+(?!\S). The seven alternatives (GPT-OSS.md §5)
//     are hand-written in pretok.go, tried in order with the backtracking a
//     regex engine would do (the greedy [U]* of alternative 1 gives runes
//     back until a [W] follows; \s*[\r\n]+ ends at the run's last CR/LF;
//     \s+(?!\S) is a whitespace run less its last rune unless it ends the
//     text). The GPT-2 pattern (ByteLevel use_regex) is hand-written too;
//     any other Split regex is refused at Load with a clear error.
//   - Character classes follow Rust's regex crate (what tiktoken runs):
//     \s is Unicode White_Space (so U+0085 is space, U+FEFF is not —
//     JavaScript's \s differs on both), \p{…} come from Go's unicode
//     tables (Unicode 15.0), and (?i:'s) also matches 'ſ (U+017F) by
//     Unicode case folding. A 192 KiB table holds the class bits of every
//     rune of planes 0–2 (built once, on the first Load); ASCII is one
//     lookup. Bytes that are not UTF-8 have no class
//     (like a symbol) and width 1, so any Go string encodes and
//     Decode(EncodeOrdinary(s)) == s byte for byte.
//   - Merging. The merge table is a map keyed by the joined bytes
//     (map[string]merge), so an adjacent pair is looked up with a substring
//     of the input: no allocation per piece. A merge records its rank, the
//     id of the joined token and, for Hugging Face merges, the left part's
//     length (a "a b" merge only applies to that split; tiktoken ranks
//     apply to any split). Lowest rank first, leftmost on ties — both
//     tiktoken's and Hugging Face's rule. Pieces under 128 bytes use the
//     quadratic scan (fastest for words); longer ones (whitespace runs,
//     blobs) a heap, O(n log n).
//   - A piece that is itself a token is that token without merging for
//     tiktoken files (tiktoken's rule) and ignore_merges files. For other
//     Hugging Face files the merges decide, but whether a token's bytes
//     merge back into it is learnt once per id (2 atomic bits per id), so
//     common words cost one map lookup. Other merged pieces go into a
//     sharded cache (pieces ≤ 64 bytes, 32×4096 entries, a full shard is
//     emptied), so repeated words merge once.
//   - Special tokens are every added_tokens entry. Encode recognises only
//     those listed (tiktoken's allowed_special, "all" for every one); other
//     special text is encoded as ordinary text rather than refused, which
//     is what Harmony rendering needs (GPT-OSS.md §6.2).
//   - Decode returns the exact bytes; StreamDecoder returns only complete
//     UTF-8, holding back a partial sequence across tokens, and replaces
//     bytes that can never be valid with U+FFFD.
//   - VocabSize is the highest id + 1 of the file; the real gpt-oss
//     tokenizer.json stops its specials at 200018, below the model's
//     vocab_size 201088. HarmonySpecials gives the full o200k_harmony set.
//
// Tested against js-tiktoken 1.0.21 (tiktokentest): ids identical on a
// 1,597-text multilingual corpus (50,034 tokens; 49,959 with every
// special) for tokenizer.json with pair merges, with "a b" merges and for
// the tiktoken ranks file; both splitters piece for piece against the
// JavaScript regex. Measured (BenchmarkEncode, 2.79 MB multilingual text,
// 993,949 tokens, one Xeon core of the H100 machine): 28–37 MB/s encoding,
// 80–100 MB/s pre-tokenizing alone, 270 MB/s on 16 cores with one shared
// Tokenizer; js-tiktoken does 0.54 MB per CPU second on the same text (on
// the shared 2-core dev box, where this package does 22–28). Load of the
// 201,088-token tokenizer.json: about 0.65 s of CPU.
package tokenizer
