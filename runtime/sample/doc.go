// Package sample turns a model's logits into the next token.
//
// A Sampler is built from Params and is used by one generation at a time:
//
//	s, err := sample.New(sample.Params{Temperature: 1, TopP: 0.9, Seed: &seed})
//	id := s.Sample(logits)
//
// # Design decisions
//
//   - Temperature 0 is greedy decoding: the argmax, the first index on a tie,
//     as OpenAI's reference TokenGenerator (shared/GPT-OSS.md §4.7). No RNG
//     is consumed, so greedy output never depends on the seed.
//   - Otherwise the order is the usual one (Hugging Face, vLLM, llama.cpp):
//     penalties, temperature, top-k, top-p, then one draw from the
//     renormalised distribution. Probabilities are computed in float64 with
//     the max subtracted first, so large logits do not overflow.
//   - Top-p (nucleus) keeps the smallest set of most likely tokens whose
//     mass reaches p (the token that crosses p is kept). It does not sort the
//     whole vocabulary (201,088 ids for gpt-oss): one pass sums the weights
//     by binary exponent, which gives the largest power-of-two threshold
//     whose tokens reach p; the nucleus is a prefix of those tokens, so only
//     they are sorted. The softmax uses a polynomial exp (1e-10 relative
//     error, tested against math.Exp), the cost of a draw over the vocabulary. Top-k keeps the k largest with a
//     size-k heap. Ties at a cut are broken by the lower id, so a
//     truncation is a pure function of the logits.
//   - Seeded samplers use a PCG generator (math/rand/v2) seeded with the
//     seed: the same seed, logits and params give the same tokens on every
//     machine. Without a seed the generator is seeded from crypto/rand.
//   - No repetition penalty is applied by default (the reference applies
//     none, and gpt-oss is tuned to sample plainly at temperature 1, top_p
//     1). The OpenAI API's presence_penalty and frequency_penalty are
//     available (Params.PresencePenalty/FrequencyPenalty): they subtract
//     from the logits of tokens already generated, as OpenAI documents.
//   - NaN logits are never picked; if every logit is NaN or -Inf, Sample
//     returns the argmax of what is left (index 0 at worst) rather than
//     panicking: a broken model yields garbage tokens, not a crash.
//   - Stop tokens are a set (Stops) checked by the generation loop
//     (runtime/chat), not by the sampler: the sampler never masks them.
package sample
