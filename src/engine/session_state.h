// What a Session keeps between requests, and the steps that the 2-D and the frame-sequence
// pipelines share. Internal to the engine.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <optional>
#include <vector>

#include "engine/model_parts.h"
#include "language/generate.h"
#include "prompt/request_prompt.h"
#include "sam/segment_image.h"
#include "unibiomed/engine.h"

namespace unibiomed {

struct Session::State {
  KvCache cache;
  // The image last seen and its features, reused while the same image is asked again.
  Image8 image;
  torch::Tensor vision_tokens;
  std::optional<SamFeatures> sam;
};

// Wall time of a stage; on a GPU the queued work is waited for first, so each stage is charged
// with its own kernels.
class StageClock {
 public:
  explicit StageClock(const ModelParts& parts);
  double lap();

 private:
  bool cuda_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// The language side for every prompt: prompt with the vision tokens (one <img> block per
// entry of tokens_per_frame), generation, [SEG] hidden states through the grounding projector.
// Appends the answers, times and warnings to result; returns the language embeddings
// [K, D] of all [SEG]s in order, and for each the index of its answer.
struct Groundings {
  torch::Tensor language;  // [K, D]; K may be 0
  std::vector<std::size_t> answer;
};
Groundings answer_prompts(const Model& model, KvCache& cache,
                          const std::vector<PromptText>& prompts,
                          const torch::Tensor& vision_tokens,
                          const std::vector<int>& tokens_per_frame,
                          const GenerationOptions& generation, Interpretation& result,
                          const StageCallback& stage);

// The phrase of each [SEG] of each answer (seg_phrases with the answer's target).
std::vector<std::vector<std::string>> answer_phrases(const Interpretation& result);

}  // namespace unibiomed
