// One request through the whole 2-D pipeline, with the per-request state (image features, KV
// cache) kept in the Session.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "engine/session_state.h"
#include "language/generate.h"
#include "prompt/request_prompt.h"
#include "results/results.h"
#include "sam/segment_image.h"
#include "unibiomed/chat.h"
#include "unibiomed/engine.h"
#include "unibiomed/error.h"
#include "vision/vision_encoder.h"

namespace unibiomed {

StageClock::StageClock(const ModelParts& parts) : cuda_(parts.device.is_cuda()) {}

double StageClock::lap() {
  if (cuda_) torch::cuda::synchronize();
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  return seconds;
}

Groundings answer_prompts(const Model& model, KvCache& cache,
                          const std::vector<PromptText>& prompts,
                          const torch::Tensor& vision_tokens,
                          const std::vector<int>& tokens_per_frame,
                          const GenerationOptions& generation, Interpretation& result,
                          const StageCallback& stage) {
  const BundleManifest& m = model.manifest();
  const ModelParts& parts = model.parts();
  const Tokenizer& tokenizer = model.tokenizer();
  const TokenId context_id = m.tokenizer.special_tokens.at("<IMG_CONTEXT>");
  const TokenId seg_id = m.tokenizer.special_tokens.at("[SEG]");
  std::vector<torch::Tensor> languages;
  Groundings out;
  for (const auto& prompt : prompts) {
    if (stage) stage("generate");
    Answer answer;
    answer.target = prompt.target;
    answer.user_text = prompt.user_text;
    const std::string text = chat_prompt(
        m.chat, expand_image_tokens(prompt.user_text, tokens_per_frame, m.chat.image_placeholder));
    answer.prompt_ids = tokenizer.encode(text);
    const torch::Tensor embeds = embed_prompt(parts, answer.prompt_ids, vision_tokens, context_id);
    const Generation gen = generate(parts, m, tokenizer, cache, embeds, generation);
    answer.output_ids = gen.output_ids;
    answer.text = gen.text;
    answer.stopped_by = gen.stopped_by;
    result.times.prefill += gen.prefill_seconds;
    result.times.decode += gen.decode_seconds;
    result.times.decode_tokens += gen.decode_steps;
    if (gen.stopped_by == "max_new_tokens") {
      result.warnings.push_back("the answer" +
                                (prompt.target.empty() ? "" : " for '" + prompt.target + "'") +
                                " was cut at " + std::to_string(gen.output_ids.size()) +
                                " new tokens (the limit) before the model stopped");
    }
    const auto segs =
        static_cast<std::int64_t>(std::count(gen.output_ids.begin(), gen.output_ids.end(), seg_id));
    if (segs > gen.seg_hidden.size(0)) {
      result.warnings.push_back(
          "a [SEG] was the last token generated, so it has no hidden state and no mask (as in "
          "the release)");
    }
    if (gen.seg_hidden.size(0) > 0) {
      const torch::Tensor language = parts.grounding.call_tensor("forward", {gen.seg_hidden});
      expect_shape(language, {gen.seg_hidden.size(0), m.sam.language_embed_dim},
                   "grounding_projector", "language embeddings");
      languages.push_back(language);
      for (std::int64_t i = 0; i < language.size(0); ++i) {
        out.answer.push_back(result.answers.size());
      }
    }
    result.answers.push_back(std::move(answer));
  }
  out.language = languages.empty() ? torch::zeros({0, m.sam.language_embed_dim}, parts.options())
                                   : torch::cat(languages);
  return out;
}

std::vector<std::vector<std::string>> answer_phrases(const Interpretation& result) {
  std::vector<std::vector<std::string>> phrases;
  for (const auto& answer : result.answers) {
    std::vector<std::string> targets;
    if (!answer.target.empty()) targets.push_back(answer.target);
    phrases.push_back(seg_phrases(answer.text, targets));
  }
  return phrases;
}

void check_image_size(int width, int height) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width < 8 || height < 8) {
    throw input_error("a " + size + " image is too small for the model (at least 8x8 pixels)");
  }
  if (width > kMaxAspect * height || height > kMaxAspect * width) {
    throw input_error("a " + size + " image is too elongated for the model (at most 1:" +
                      std::to_string(kMaxAspect) + "); crop it first");
  }
}

Session::Session(std::shared_ptr<const Model> model)
    : model_(std::move(model)), state_(std::make_unique<State>()) {
  if (!model_) throw internal_error("session without a model");
}

Session::~Session() = default;

Interpretation Session::interpret(const InputImage& input, const InterpretRequest& request,
                                  const StageCallback& on_stage) {
  torch::InferenceMode guard;
  const auto start = std::chrono::steady_clock::now();
  const BundleManifest& m = model_->manifest();
  const ModelParts& parts = model_->parts();
  const auto stage = [&](const std::string& name) {
    if (on_stage) on_stage(name);
  };
  const int width = input.rgb.width;
  const int height = input.rgb.height;
  check_image_size(width, height);
  if (input.rgb.rgb.size() !=
      static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3) {
    throw internal_error("image buffer does not hold width x height x 3 bytes");
  }
  const std::vector<PromptText> prompts = request_prompts(m.chat, request);
  if (request.box) check_box(*request.box, width, height);

  Interpretation result;
  result.width = width;
  result.height = height;
  StageClock clock(parts);

  stage("preprocess");
  const Image8 image = request.box ? draw_region_box(input.rgb, *request.box) : input.rgb;
  State& state = *state_;
  const bool same_image = state.vision_tokens.defined() && state.image.width == width &&
                          state.image.height == height && state.image.rgb == image.rgb;
  std::vector<Image8> tiles;
  if (!same_image) {
    state.vision_tokens = torch::Tensor();
    state.sam.reset();
    tiles = dynamic_tiles(image, tiling_options(m.vision));
  }
  result.times.preprocess = clock.lap();

  stage("vision");
  if (!same_image) {
    state.vision_tokens = encode_tiles(parts, m, tiles);
    state.image = image;
  }
  result.times.vision = clock.lap();

  const Groundings groundings = answer_prompts(*model_, state.cache, prompts, state.vision_tokens,
                                               {static_cast<int>(state.vision_tokens.size(0))},
                                               request.generation, result, on_stage);
  clock.lap();

  if (groundings.language.size(0) > 0) {
    stage("sam encode");
    if (!state.sam) state.sam = encode_sam_image(parts, m, image);
    result.times.sam_encode = clock.lap();
    stage("sam decode");
    const MaskCandidates candidates = decode_masks(parts, m, *state.sam, groundings.language);
    const torch::Tensor masks =
        masks_on_image(candidates, m.sam.image_size, height, width, m.sam.mask_threshold);
    const torch::Tensor iou = candidates.iou.to(torch::kCPU);
    const torch::Tensor object = candidates.object_score.to(torch::kCPU);
    const torch::Tensor best = candidates.best.to(torch::kCPU);
    result.times.sam_decode = clock.lap();

    stage("findings");
    const auto phrases = answer_phrases(result);
    std::vector<std::size_t> seen(result.answers.size(), 0);
    const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
    for (std::size_t i = 0; i < groundings.answer.size(); ++i) {
      const auto row = static_cast<std::int64_t>(i);
      Finding finding;
      finding.answer = groundings.answer[i];
      const std::size_t nth = seen[finding.answer]++;
      const auto& mine = phrases[finding.answer];
      finding.phrase = nth < mine.size() ? mine[nth] : "";
      const std::uint8_t* data = masks[row].data_ptr<std::uint8_t>();
      finding.mask.assign(data, data + pixels);
      finding.candidate = static_cast<int>(best[row].item<std::int64_t>());
      for (std::int64_t c = 0; c < iou.size(1); ++c) {
        finding.candidate_iou.push_back(iou[row][c].item<float>());
      }
      finding.iou = finding.candidate_iou.at(static_cast<std::size_t>(finding.candidate));
      finding.object_score = object[row][0].item<float>();
      measure_finding(finding, width, height, input.spacing_mm);
      result.answers[finding.answer].findings.push_back(result.findings.size());
      result.findings.push_back(std::move(finding));
    }
    result.times.postprocess = clock.lap();
  }
  result.times.total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace unibiomed
