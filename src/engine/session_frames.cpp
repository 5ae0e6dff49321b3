// A frame sequence (volume slices or cine frames) through the video pipeline of the release:
// the language model sees a few frames, one tile each; each [SEG] conditions those frames; SAM2's
// memory propagates the masks through all the frames. With PromptFrames::Every the [SEG]
// embeddings condition every frame instead, and nothing is left to the memory.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include "engine/frame_choice.h"
#include "engine/session_state.h"
#include "results/results.h"
#include "sam/propagate_video.h"
#include "unibiomed/error.h"
#include "vision/vision_encoder.h"

namespace unibiomed {
namespace {

std::vector<int> choose_frames(const InputFrames& input, const BundleManifest& m,
                               std::string& rule) {
  if (!input.llm_frames.empty()) {
    std::vector<int> frames(input.llm_frames);
    std::sort(frames.begin(), frames.end());
    frames.erase(std::unique(frames.begin(), frames.end()), frames.end());
    for (const int f : frames) {
      if (f < 0 || f >= input.count) {
        throw usage_error("--llm-frames: frame " + std::to_string(f) + " outside 0.." +
                          std::to_string(input.count - 1));
      }
    }
    rule = "given";
    return frames;
  }
  rule = to_string(input.rule);
  if (input.rule == FrameRule::Release) return release_llm_frames(input.count, m.video_llm_frames);
  std::vector<double> foreground;
  foreground.reserve(static_cast<std::size_t>(input.count));
  for (int f = 0; f < input.count; ++f) foreground.push_back(foreground_fraction(input.frame(f)));
  return spread_llm_frames(foreground, m.video_llm_frames);
}

}  // namespace

Interpretation Session::interpret_frames(const InputFrames& input, const InterpretRequest& request,
                                         const StageCallback& on_stage) {
  torch::InferenceMode guard;
  const auto start = std::chrono::steady_clock::now();
  const BundleManifest& m = model_->manifest();
  const ModelParts& parts = model_->parts();
  const auto stage = [&](const std::string& name) {
    if (on_stage) on_stage(name);
  };
  if (input.count < 1 || !input.frame) throw internal_error("a frame sequence without frames");
  check_image_size(input.width, input.height);
  if (request.box) {
    throw usage_error("--box: a region box is drawn on a 2-D image; this input has " +
                      std::to_string(input.count) + " frames");
  }
  const std::vector<PromptText> prompts = request_prompts(m.chat, request);

  Interpretation result;
  result.width = input.width;
  result.height = input.height;
  result.frames = input.count;
  StageClock clock(parts);

  stage("preprocess");
  result.llm_frames = choose_frames(input, m, result.frame_rule);
  result.prompt_frames = input.prompt_frames.value_or(m.video_prompt_frames);
  const bool every = result.prompt_frames == PromptFrames::Every;
  std::vector<Image8> tiles;
  const int tile = m.vision.tile_size;
  for (const int f : result.llm_frames) {
    const Image8 image = input.frame(f);
    if (image.width != input.width || image.height != input.height) {
      throw internal_error("frame " + std::to_string(f) + " is not of the sequence's size");
    }
    tiles.push_back(resize_bicubic(image, tile, tile));
  }
  result.times.preprocess = clock.lap();

  stage("vision");
  State& state = *state_;
  state.vision_tokens = encode_tiles(parts, m, tiles);
  state.image = Image8{};  // the 2-D cache no longer holds the tokens of its image
  state.sam.reset();
  result.times.vision = clock.lap();

  const std::vector<int> tokens_per_frame(tiles.size(), m.vision.tokens_per_tile);
  const Groundings groundings =
      answer_prompts(*model_, state.cache, prompts, state.vision_tokens, tokens_per_frame,
                     request.generation, result, on_stage);
  clock.lap();

  if (groundings.language.size(0) > 0) {
    stage("sam propagate");
    VideoOptions options;
    options.height = input.height;
    options.width = input.width;
    std::vector<int> prompted = result.llm_frames;
    if (every) {
      prompted.resize(static_cast<std::size_t>(input.count));
      std::iota(prompted.begin(), prompted.end(), 0);
    }
    VideoMasks video =
        propagate_video(parts, m, input.count, input.frame, groundings.language, prompted, options);
    result.times.sam_encode = video.encode_seconds;
    result.times.sam_decode = video.track_seconds;
    clock.lap();

    stage("findings");
    const auto phrases = answer_phrases(result);
    std::vector<std::size_t> seen(result.answers.size(), 0);
    for (std::size_t i = 0; i < groundings.answer.size(); ++i) {
      Finding finding;
      finding.answer = groundings.answer[i];
      const std::size_t nth = seen[finding.answer]++;
      const auto& mine = phrases[finding.answer];
      finding.phrase = nth < mine.size() ? mine[nth] : "";
      finding.mask = std::move(video.masks[i]);
      // The conditioning frame where the object is most surely present speaks for the finding.
      int best = result.llm_frames.front();
      for (const int f : result.llm_frames) {
        if (video.object_score[i][f] > video.object_score[i][best]) best = f;
      }
      finding.candidate = video.candidate[i][best];
      finding.iou = video.iou[i][best];
      finding.candidate_iou = {finding.iou};
      finding.object_score = video.object_score[i][best];
      measure_frames(finding, input.width, input.height, input.count, input.spacing_mm);
      if (finding.area_px == 0) {
        result.warnings.push_back("finding " + std::to_string(result.findings.size() + 1) +
                                  (finding.phrase.empty() ? "" : " (" + finding.phrase + ")") +
                                  ": the mask is empty in every frame");
      }
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
