// Package cpu is the CPU engine: the numerical reference for gpt-oss
// (GPT-OSS.md §4) and the ops the CUDA kernels are tested against.
//
// Design decisions:
//
//   - Weights are read in place from the memory-mapped layout
//     (convert.Layout): BF16 stays BF16 and is widened to float32 inside the
//     dot products; MXFP4 expert weights are dequantized block by block
//     inside the dot product (decode), or one 16-row tile at a time into a
//     per-worker buffer (prefill), never as a whole matrix. Resident memory
//     is about the layout's size plus the KV caches (bench-engine reports
//     peak RSS against the file size).
//   - Options.DecodeQ8 (runtime/q8.go): at load the QKV, output and
//     unembedding matrices are quantized to Q8 (int8, a BF16 scale per 32)
//     on the heap, and a Forward of one token uses them (dotQ8: AVX2
//     sign-extend + convert + FMA, a Go fallback); several tokens keep
//     BF16. The CUDA engine's Q8 kernels are tested against this.
//   - Activations, the residual stream and the KV cache are float32;
//     RMSNorm's sum of squares and the router softmax use float64. The
//     engine matches OpenAI's reference cast to float32
//     (testdata/golden/tiny logits_f32) to about 1e-5.
//   - Hot loops are AVX2+FMA assembly on amd64 (kernels_amd64.s), some
//     also AVX-512 where the CPU has it: the BF16×f32 (AVX-512: 1.7× the
//     AVX2 one) and MXFP4×f32 dot products (MXFP4: nibbles decoded with a
//     byte shuffle of the doubled E2M1 table, widened, scaled by
//     2^(s−128) per block; with AVX-512 the two nibbles of each byte are
//     looked up as two 16-lane float vectors by VPERMPS against x split
//     per block into its even and odd elements: measured 2× the AVX2
//     kernel), a 2-row × 4-token f32 kernel for batched
//     products (also in AVX-512 where the CPU has it; run over 960-column
//     blocks so the four tokens' slices stay in L1: measured 66→94 GFLOP
//     per CPU-second with AVX2, 78→165 with AVX-512), and the attention
//     kernels (four query heads' scores per key
//     row, exp(x−max) by a degree-6 polynomial, max, the weighted sum of
//     value rows). Each has a pure-Go version (kernels.go), always built,
//     used on other CPUs, and tested against the assembly.
//   - Prefill: the tokens of a Forward go through in chunks of 512; each
//     weight matrix is read once per chunk (a tile of 16 rows is widened to
//     f32 and meets every token of the chunk). The MoE groups the chunk's
//     (token, expert) pairs by expert and runs every active expert's rows
//     in one parallel loop; an expert with fewer than 4 tokens uses the
//     fused MXFP4 dot product instead of widening rows. A W1 tile's 16
//     outputs per token (8 gate/linear pairs) go through bias and SwiGLU
//     in a per-worker buffer, so the [tokens][2I] W1 output never exists.
//     With the AVX-512 kernels the MoE's inputs are kept in split order
//     (each block of 32 as its even then its odd elements) and rows are
//     dequantized in that order too: a dot product of two vectors
//     permuted alike is unchanged. Logits are computed only for the last
//     token unless all are asked for.
//   - Attention runs per (token, kv head): the query heads that share a kv
//     head are scored together, so each key row is loaded once per four
//     heads. The sink adds exp(sink) to the softmax denominator only. A
//     single query over 256 keys or more (decode at long context) is split
//     into key ranges attended in parallel, each giving its max, sum and
//     unnormalized output, merged afterwards, so it uses every worker
//     rather than one per kv head.
//   - KV cache per sequence: full-attention layers (odd index) keep every
//     position and grow as needed; sliding layers (even index) keep a ring
//     of window+TruncateSlack (128+512) positions, each row written twice
//     (slots s and s+R) so that any window is one contiguous run. Prefill
//     writes a ring in runs short enough never to overwrite a key that a
//     query of the same run still needs.
//   - Truncate(n) keeps positions below n. A sliding layer must still hold
//     the window before n, so one can go back at most TruncateSlack
//     positions from the furthest position ever written (else a clear
//     error: start a new sequence). A failed or cancelled Forward (ctx is
//     checked before every layer) rolls the sequence back to where it was,
//     which the slack always allows for calls of up to 512 tokens.
//   - Activation memory (a workspace, sized by the largest chunk seen) is
//     taken for a Forward and given back to the model after, so new
//     sequences reuse it instead of faulting in fresh pages; a sequence
//     itself holds only its KV cache and its last logits.
//   - Parallelism: a small persistent worker pool per model (Options.Threads,
//     default GOMAXPROCS); a parallel loop hands chunks out from an atomic
//     counter, the calling goroutine working as worker 0; one channel send
//     per worker per loop, no goroutine per row. Calls into one pool are
//     serialized, so per-worker scratch needs no locks and several
//     sequences of one model may run from different goroutines.
package cpu
