// Package cpu is the CPU engine: the numerical reference for gpt-oss
// (GPT-OSS.md §4) and the ops the CUDA kernels are tested against.
//
// Design decisions:
//
//   - Weights are read in place from the memory-mapped layout
//     (convert.Layout): BF16 stays BF16 and is widened to float32 inside the
//     dot products; MXFP4 expert weights are dequantized block by block
//     inside the dot product (or one row at a time into a per-worker
//     buffer for batched work), never as a whole matrix. Resident memory is
//     about the layout's size plus the KV caches.
//   - Activations, the residual stream and the KV cache are float32; sums
//     of squares (RMSNorm) and the router softmax use float64. Matches
//     OpenAI's reference cast to float32 (testdata/golden logits_f32) to
//     about 1e-4.
//   - Hot loops: dotBF16 (BF16×f32), dotMXFP4 (fused nibble decode via a
//     byte shuffle of the doubled E2M1 table, then ×2^(s−128)), dotF32 and
//     dot4F32 (one f32 row against four tokens) have AVX2+FMA assembly on
//     amd64 (kernels_amd64.s) with pure-Go versions (kernels.go) that are
//     always built and tested against the assembly.
//   - Batched (prefill) matrix products widen a tile of 16 weight rows to
//     f32 once and meet every token of the batch with it, four tokens at a
//     time, so the weights are read once per batch.
//   - Parallelism: a small persistent worker pool per model (Options.Threads,
//     default GOMAXPROCS); a parallel loop hands chunks out from an atomic
//     counter, the calling goroutine working as worker 0. Calls into one
//     pool are serialized, so per-worker scratch needs no locking.
package cpu
