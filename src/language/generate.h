// The language side of a request: prompt embedding with the image tokens, prefill, and decoding
// with a KV cache owned here (the module writes into it in place), sampling, stop words, and the
// final-norm hidden state of every [SEG] fed back in. Internal to the engine.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/model_parts.h"
#include "unibiomed/engine.h"
#include "unibiomed/manifest.h"
#include "unibiomed/tokenizer.h"

namespace unibiomed {

// Keys and values of every layer, [layers, 1, kv_heads, capacity, head_dim] each, on the model's
// device in its dtype. Grown only when a request needs more positions than it holds.
class KvCache {
 public:
  void reserve(const ModelParts& parts, const LanguageInfo& language, std::int64_t positions);
  const torch::Tensor& keys() const { return k_; }
  const torch::Tensor& values() const { return v_; }
  std::int64_t capacity() const { return capacity_; }

 private:
  torch::Tensor k_;
  torch::Tensor v_;
  std::int64_t capacity_ = 0;
};

// Token embeddings [1, T, hidden] of `ids` with the <IMG_CONTEXT> rows replaced by the vision
// tokens [N, hidden] in order. Throws Error(Internal) when the counts differ.
torch::Tensor embed_prompt(const ModelParts& parts, const std::vector<TokenId>& ids,
                           const torch::Tensor& image_tokens, TokenId context_id);

// Picks the next token from logits [vocab] on the model's device. Greedy (temperature 0): the
// argmax, and only the chosen id is copied to the host. Sampling: the top-k candidates'
// probabilities are copied and drawn from with this request's own generator (seeded), so
// results do not depend on other requests or threads.
class TokenSampler {
 public:
  explicit TokenSampler(const GenerationOptions& options);
  struct Choice {
    TokenId id = 0;
    torch::Tensor on_device;  // [1, 1] int64, for the next embedding without a host copy
  };
  Choice next(const torch::Tensor& logits);

 private:
  GenerationOptions options_;
  std::mt19937_64 generator_;
};

struct Generation {
  std::vector<TokenId> output_ids;  // as generated, stop word and EOS included
  std::string text;                 // decoded without EOS, cut at the stop word, stripped
  std::string stopped_by;           // eos | stop_word | max_new_tokens
  torch::Tensor seg_hidden;         // [K, hidden]: final-norm hidden state where each [SEG] was fed
  double prefill_seconds = 0.0;     // prompt forward and the first token
  double decode_seconds = 0.0;      // every later token
  std::size_t decode_steps = 0;
};

// Prefill and decode. `embeds` [1, T, hidden]; the cache is reserved for T + max_new_tokens.
Generation generate(const ModelParts& parts, const BundleManifest& manifest,
                    const Tokenizer& tokenizer, KvCache& cache, const torch::Tensor& embeds,
                    const GenerationOptions& options);

}  // namespace unibiomed
