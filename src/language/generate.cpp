#include "language/generate.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "unibiomed/chat.h"
#include "unibiomed/error.h"

namespace unibiomed {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Python's str.strip() for the ASCII white space the tokenizers produce.
std::string strip(const std::string& text) {
  const char* space = " \t\n\r\v\f";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace

void KvCache::reserve(const ModelParts& parts, const LanguageInfo& language,
                      std::int64_t positions) {
  if (positions <= capacity_ && k_.defined() && k_.device() == parts.device &&
      k_.scalar_type() == parts.dtype) {
    return;
  }
  const std::vector<std::int64_t> shape = {language.num_layers, 1, language.num_kv_heads, positions,
                                           language.head_dim};
  k_ = torch::zeros(shape, parts.options());
  v_ = torch::zeros(shape, parts.options());
  capacity_ = positions;
}

torch::Tensor embed_prompt(const ModelParts& parts, const std::vector<TokenId>& ids,
                           const torch::Tensor& image_tokens, TokenId context_id) {
  const auto long_options = torch::TensorOptions().dtype(torch::kInt64);
  const torch::Tensor id_tensor =
      torch::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()), long_options)
          .to(parts.device);
  torch::Tensor embeds = parts.language.call_tensor("embed", {id_tensor.unsqueeze(0)});
  std::vector<std::int64_t> where;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == context_id) where.push_back(static_cast<std::int64_t>(i));
  }
  if (static_cast<std::int64_t>(where.size()) != image_tokens.size(0)) {
    throw internal_error("prompt has " + std::to_string(where.size()) +
                         " <IMG_CONTEXT> tokens for " + std::to_string(image_tokens.size(0)) +
                         " vision tokens");
  }
  if (!where.empty()) {
    const torch::Tensor rows = torch::tensor(where, long_options).to(parts.device);
    embeds.index_put_({0, rows}, image_tokens.to(embeds.scalar_type()));
  }
  return embeds;
}

TokenSampler::TokenSampler(const GenerationOptions& options)
    : options_(options), generator_(options.seed) {
  if (!(options.temperature >= 0.0) || options.temperature > 100.0) {
    throw usage_error("--temperature " + std::to_string(options.temperature) +
                      ": expected 0 (greedy) to 100");
  }
  if (!(options.top_p > 0.0 && options.top_p <= 1.0)) {
    throw usage_error("--top-p " + std::to_string(options.top_p) + ": expected (0, 1]");
  }
  if (options.top_k < 0) {
    throw usage_error("--top-k " + std::to_string(options.top_k) + ": expected >= 0");
  }
}

TokenSampler::Choice TokenSampler::next(const torch::Tensor& logits) {
  Choice choice;
  if (options_.temperature == 0.0) {
    choice.on_device = logits.argmax().view({1, 1});
    choice.id = static_cast<TokenId>(choice.on_device.item<std::int64_t>());
    return choice;
  }
  const std::int64_t k =
      std::min<std::int64_t>(options_.top_k > 0 ? options_.top_k : 50, logits.size(0));
  const auto top = logits.to(torch::kFloat32).div(options_.temperature).topk(k);
  const torch::Tensor probs = torch::softmax(std::get<0>(top), 0).to(torch::kCPU).contiguous();
  const float* p = probs.data_ptr<float>();
  // Nucleus: the smallest prefix (most probable first) whose mass reaches top_p.
  std::int64_t keep = k;
  double mass = 0.0;
  for (std::int64_t i = 0; i < k; ++i) {
    mass += p[i];
    if (mass >= options_.top_p) {
      keep = i + 1;
      break;
    }
  }
  double total = 0.0;
  for (std::int64_t i = 0; i < keep; ++i) total += p[i];
  std::uniform_real_distribution<double> uniform(0.0, total);
  const double draw = uniform(generator_);
  std::int64_t pick = keep - 1;
  double running = 0.0;
  for (std::int64_t i = 0; i < keep; ++i) {
    running += p[i];
    if (draw < running) {
      pick = i;
      break;
    }
  }
  choice.on_device = std::get<1>(top).narrow(0, pick, 1).view({1, 1});
  choice.id = static_cast<TokenId>(choice.on_device.item<std::int64_t>());
  return choice;
}

Generation generate(const ModelParts& parts, const BundleManifest& manifest,
                    const Tokenizer& tokenizer, KvCache& cache, const torch::Tensor& embeds,
                    const GenerationOptions& options) {
  const int limit =
      options.max_new_tokens > 0 ? options.max_new_tokens : manifest.chat.max_new_tokens;
  if (limit <= 0) throw usage_error("max new tokens must be positive");
  const LanguageInfo& lang = manifest.language;
  const std::int64_t prompt_len = embeds.size(1);
  if (prompt_len >= lang.max_positions) {
    throw usage_error("the prompt has " + std::to_string(prompt_len) +
                      " tokens, more than the model's " + std::to_string(lang.max_positions) +
                      " positions");
  }
  if (prompt_len + limit > lang.max_positions) {
    throw usage_error("--max-new-tokens " + std::to_string(limit) + ": at most " +
                      std::to_string(lang.max_positions - prompt_len) +
                      " for this prompt (the model has " + std::to_string(lang.max_positions) +
                      " positions, the prompt takes " + std::to_string(prompt_len) + ")");
  }
  cache.reserve(parts, lang, prompt_len + limit);
  const std::set<TokenId> eos(manifest.chat.eos_token_ids.begin(),
                              manifest.chat.eos_token_ids.end());
  const TokenId seg_id = manifest.tokenizer.special_tokens.at("[SEG]");
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(parts.device);
  TokenSampler sampler(options);

  Generation gen;
  auto start = std::chrono::steady_clock::now();
  auto out =
      parts.language.call_tuple("forward", {embeds, std::int64_t{0}, cache.keys(), cache.values(),
                                            torch::full({1}, prompt_len - 1, index_options)});
  expect_shape(out.at(0), {1, 1, lang.vocab_size}, "language_decoder", "logits");
  const torch::Tensor last = torch::zeros({1}, index_options);
  std::vector<torch::Tensor> seg_hidden;
  StreamDecoder stream(tokenizer);
  std::string decoded;
  std::int64_t pos = prompt_len;
  gen.stopped_by = "max_new_tokens";
  bool first = true;
  while (static_cast<int>(gen.output_ids.size()) < limit) {
    const TokenSampler::Choice choice = sampler.next(out.at(0)[0][-1]);
    if (first) {
      gen.prefill_seconds = seconds_since(start);
      start = std::chrono::steady_clock::now();
      first = false;
    }
    gen.output_ids.push_back(choice.id);
    if (eos.count(choice.id)) {
      gen.stopped_by = "eos";
      break;
    }
    decoded += stream.push(choice.id);
    if (find_stop(decoded, manifest.chat.stop_words)) {
      gen.stopped_by = "stop_word";
      break;
    }
    if (static_cast<int>(gen.output_ids.size()) == limit) break;
    const torch::Tensor step = parts.language.call_tensor("embed", {choice.on_device});
    out = parts.language.call_tuple("forward", {step, pos, cache.keys(), cache.values(), last});
    if (choice.id == seg_id) {
      expect_shape(out.at(1), {1, 1, lang.hidden_size}, "language_decoder", "hidden state");
      seg_hidden.push_back(out.at(1)[0][0]);
    }
    ++pos;
    ++gen.decode_steps;
  }
  gen.decode_seconds = seconds_since(start);

  std::vector<TokenId> kept;
  for (const TokenId id : gen.output_ids) {
    if (!eos.count(id)) kept.push_back(id);
  }
  std::string text = tokenizer.decode(kept);
  if (const auto at = find_stop(text, manifest.chat.stop_words)) text = text.substr(0, *at);
  gen.text = strip(text);
  gen.seg_hidden = seg_hidden.empty() ? torch::zeros({0, lang.hidden_size}, parts.options())
                                      : torch::stack(seg_hidden);
  return gen;
}

}  // namespace unibiomed
