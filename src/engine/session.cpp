// One request through the whole 2-D pipeline, with the per-request state (image features, KV
// cache) kept in the Session.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "engine/model_parts.h"
#include "language/generate.h"
#include "prompt/request_prompt.h"
#include "results/results.h"
#include "sam/segment_image.h"
#include "unibiomed/chat.h"
#include "unibiomed/engine.h"
#include "unibiomed/error.h"
#include "vision/vision_encoder.h"

namespace unibiomed {
namespace {

using Clock = std::chrono::steady_clock;

// Wall time of a stage; on a GPU the queued work is waited for first, so each stage is charged
// with its own kernels.
class StageClock {
 public:
  explicit StageClock(const ModelParts& parts) : cuda_(parts.device.is_cuda()) {}
  double lap() {
    if (cuda_) torch::cuda::synchronize();
    const auto now = Clock::now();
    const double seconds = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return seconds;
  }

 private:
  bool cuda_;
  Clock::time_point last_ = Clock::now();
};

}  // namespace

struct Session::State {
  KvCache cache;
  // The image last seen and its features, reused while the same image is asked again.
  Image8 image;
  torch::Tensor vision_tokens;
  std::optional<SamFeatures> sam;
};

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
  const auto start = Clock::now();
  const BundleManifest& m = model_->manifest();
  const ModelParts& parts = model_->parts();
  const Tokenizer& tokenizer = model_->tokenizer();
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

  const TokenId context_id = m.tokenizer.special_tokens.at("<IMG_CONTEXT>");
  std::vector<torch::Tensor> languages;
  std::vector<std::size_t> language_answer;
  for (const auto& prompt : prompts) {
    stage("generate");
    Answer answer;
    answer.target = prompt.target;
    answer.user_text = prompt.user_text;
    const std::string text =
        chat_prompt(m.chat, expand_image_tokens(prompt.user_text,
                                                {static_cast<int>(state.vision_tokens.size(0))},
                                                m.chat.image_placeholder));
    answer.prompt_ids = tokenizer.encode(text);
    const torch::Tensor embeds =
        embed_prompt(parts, answer.prompt_ids, state.vision_tokens, context_id);
    const Generation gen = generate(parts, m, tokenizer, state.cache, embeds, request.generation);
    clock.lap();
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
    const auto segs = static_cast<std::int64_t>(std::count(
        gen.output_ids.begin(), gen.output_ids.end(), m.tokenizer.special_tokens.at("[SEG]")));
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
        language_answer.push_back(result.answers.size());
      }
    }
    result.answers.push_back(std::move(answer));
  }
  clock.lap();

  if (!languages.empty()) {
    stage("sam encode");
    if (!state.sam) state.sam = encode_sam_image(parts, m, image);
    result.times.sam_encode = clock.lap();
    stage("sam decode");
    const MaskCandidates candidates = decode_masks(parts, m, *state.sam, torch::cat(languages));
    const torch::Tensor masks =
        masks_on_image(candidates, m.sam.image_size, height, width, m.sam.mask_threshold);
    const torch::Tensor iou = candidates.iou.to(torch::kCPU);
    const torch::Tensor object = candidates.object_score.to(torch::kCPU);
    const torch::Tensor best = candidates.best.to(torch::kCPU);
    result.times.sam_decode = clock.lap();

    stage("findings");
    std::vector<std::vector<std::string>> phrases;
    for (const auto& answer : result.answers) {
      std::vector<std::string> targets;
      if (!answer.target.empty()) targets.push_back(answer.target);
      phrases.push_back(seg_phrases(answer.text, targets));
    }
    std::vector<std::size_t> seen(result.answers.size(), 0);
    const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
    for (std::size_t i = 0; i < language_answer.size(); ++i) {
      const auto row = static_cast<std::int64_t>(i);
      Finding finding;
      finding.answer = language_answer[i];
      const std::size_t nth = seen[finding.answer]++;
      const auto& answer_phrases = phrases[finding.answer];
      finding.phrase = nth < answer_phrases.size() ? answer_phrases[nth] : "";
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
  result.times.total = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace unibiomed
