// The engine: a model bundle loaded once (Model, immutable and shareable between threads) and
// the per-request state that interprets images with it (Session: image features, KV cache,
// generated tokens). The pipeline is the release's, in its order:
//
//   preprocess -> vision encoder -> prompt -> prefill -> decode (KV cache owned here)
//   -> [SEG] hidden states -> grounding projector -> SAM2 image encoder + mask decoder
//   -> best candidate by predicted IoU -> upsample to the image -> threshold -> findings
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "unibiomed/manifest.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/tokenizer.h"

namespace unibiomed {

// ---- the model ------------------------------------------------------------------------------

struct ModelOptions {
  std::string device =
      "auto";          // auto | cpu | cuda | cuda:N; auto takes a GPU when LibTorch sees one
  std::string dtype;   // "" : the manifest's compute dtype for the device; fp32|fp16|bf16
  bool warmup = true;  // run each part once on load (a shape check, and kernels warmed)
};

struct ModelParts;  // the six TorchScript modules (src/engine/model_parts.h)

class Model {
  struct PrivateKey {
    explicit PrivateKey() = default;
  };

 public:
  explicit Model(PrivateKey);
  // Reads and validates the bundle in `dir`, loads its modules onto the device, and checks that
  // their parameters have the manifest's dtype and (with warm-up) that their outputs have the
  // manifest's shapes. Throws Error(Input) naming the file at fault, Error(Usage) for a device
  // or dtype that cannot be used.
  static std::shared_ptr<const Model> load(const std::filesystem::path& dir,
                                           const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const BundleManifest& manifest() const { return manifest_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  std::string device_name() const;  // "cpu", "cuda:0"
  std::string dtype_name() const;   // "fp32", "fp16", "bf16"
  double load_seconds() const { return load_seconds_; }
  const ModelParts& parts() const { return *parts_; }

 private:
  BundleManifest manifest_;
  std::unique_ptr<const Tokenizer> tokenizer_;
  std::unique_ptr<const ModelParts> parts_;
  double load_seconds_ = 0.0;
};

// The bundle used when none is given: $UNIBIOMED_MODEL, else the project's default model
// (models/default in the source tree or share/unibiomed/models/default where installed).
// Throws Error(Usage) saying how to give one when there is none.
std::filesystem::path default_model_dir();

// ---- a request ------------------------------------------------------------------------------

struct GenerationOptions {
  int max_new_tokens = 0;    // 0: the manifest's limit
  double temperature = 0.0;  // 0: greedy (the release's decoding)
  double top_p = 1.0;        // nucleus sampling, when temperature > 0
  int top_k = 0;             // 0: 50 candidates when sampling
  std::uint64_t seed = 0;
};

struct PixelBox {  // inclusive pixel corners on the input image
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

struct InterpretRequest {
  std::string task = "segment";      // segment | report | diagnose | vqa | region (the manifest's)
  std::vector<std::string> targets;  // segment: one prompt per target
  std::string question;              // vqa, region
  std::optional<PixelBox> box;       // region: drawn on the image as the release does
  std::string raw_prompt;            // instead of the task: the user text as given
  GenerationOptions generation;
};

// The image as the engine sees it: 8-bit RGB, plus the physical pixel size when known.
struct InputImage {
  Image8 rgb;
  std::optional<std::array<double, 2>> spacing_mm;  // (x, y)
};

// Which frames of a sequence the language model sees (one tile each); the [SEG] embeddings
// condition exactly those frames and SAM2's memory carries the masks to all the others.
enum class FrameRule {
  Release,  // the first video.llm_frames frames, as the release does (parity)
  Spread,   // evenly spread over the frames that hold the body (docs/volumes.md)
};
FrameRule parse_frame_rule(const std::string& name);  // "release" | "spread"
std::string to_string(FrameRule rule);

// A sequence of frames of one size (the slices of a volume in display orientation, or the
// frames of a cine), produced on demand so that a long volume is never held as model inputs.
struct InputFrames {
  int width = 0;
  int height = 0;
  int count = 0;
  std::function<Image8(int frame)> frame;           // RGB; may be called more than once per frame
  std::optional<std::array<double, 3>> spacing_mm;  // (column, row, slice)
  FrameRule rule = FrameRule::Spread;
  std::vector<int> llm_frames;  // explicit choice (0-based), instead of the rule
  // The frames the [SEG] embeddings prompt (with Every the memory is not used); unset: the
  // bundle's video.prompt_frames.
  std::optional<PromptFrames> prompt_frames;
};

// ---- the result -----------------------------------------------------------------------------

struct Finding {
  std::size_t answer = 0;          // index into Interpretation::answers
  std::string phrase;              // what the mask shows (see docs/result-format.md for the rule)
  std::vector<std::uint8_t> mask;  // height x width, row-major, 0 or 1
  std::size_t area_px = 0;
  std::optional<double> area_mm2;
  std::optional<std::array<int, 4>> box;  // x0, y0, x1, y1 inclusive; none when empty
  int candidate = 0;                      // SAM2 candidate chosen by predicted IoU
  std::vector<float> candidate_iou;       // predicted IoU of each candidate
  float iou = 0.0f;                       // of the chosen one
  float object_score = 0.0f;              // SAM2's object score logit (> 0: object present)
  // Frame sequences: the mask is frames x height x width; area_px counts its voxels; box is the
  // union over the frames; candidate, iou and object_score are those of the conditioning frame
  // with the highest object score.
  std::optional<double> volume_ml;                // voxels x spacing, when the spacing is known
  std::optional<std::array<int, 2>> frame_range;  // first and last frame holding the mask
  std::size_t frames_with_mask = 0;
};

struct Answer {
  std::string target;  // the segment target this answer is for, else ""
  std::string user_text;
  std::vector<TokenId> prompt_ids;
  std::vector<TokenId> output_ids;  // as generated, stop word / EOS included
  std::string text;                 // decoded, stop word removed, stripped
  std::string stopped_by;           // eos | stop_word | max_new_tokens
  std::vector<std::size_t> findings;
};

struct StageTimes {  // seconds
  double preprocess = 0.0;
  double vision = 0.0;
  double prefill = 0.0;
  double decode = 0.0;
  std::size_t decode_tokens = 0;
  double sam_encode = 0.0;
  double sam_decode = 0.0;  // frame sequences: decoding, memory attention and memory encoding
  double postprocess = 0.0;
  double total = 0.0;
};

struct Interpretation {
  int width = 0;
  int height = 0;
  int frames = 1;               // > 1 for a frame sequence
  std::vector<int> llm_frames;  // frame sequences: the frames the language model saw
  std::string frame_rule;       // frame sequences: "release", "spread" or "given"
  PromptFrames prompt_frames = PromptFrames::Seen;  // frame sequences: which the [SEG] prompts
  std::vector<Answer> answers;
  std::vector<Finding> findings;
  StageTimes times;
  std::vector<std::string> warnings;
};

// Called at the start of each stage ("vision", "prefill", ...), for progress lines.
using StageCallback = std::function<void(const std::string& stage)>;

// Per-request state: holds the features of the image it last saw and the KV cache, reused by
// the next request on the same Session. One Session per thread; Sessions of one Model do not
// interfere.
class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Interprets one 2-D image. Throws Error(Usage) for a request that does not fit the model or
  // the image (unknown task, empty or over-long target, box outside the image), Error(Input)
  // for an image the model cannot take.
  Interpretation interpret(const InputImage& image, const InterpretRequest& request,
                           const StageCallback& on_stage = {});

  // Interprets a frame sequence (volume or cine) through SAM2's memory: the language model
  // sees input.llm_frames (or those of input.rule), each [SEG] conditions them and the masks are
  // propagated forward and backward through every frame. Same errors as interpret; a box
  // (task region) is not accepted for a sequence.
  Interpretation interpret_frames(const InputFrames& input, const InterpretRequest& request,
                                  const StageCallback& on_stage = {});

  const Model& model() const { return *model_; }

  struct State;

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<State> state_;
};

// Checks an image against what the model can take (both sides >= 8 pixels, aspect ratio at most
// 1:kMaxAspect); throws Error(Input) naming the size otherwise.
inline constexpr int kMaxAspect = 50;
void check_image_size(int width, int height);

// Longest target or question accepted, in bytes.
inline constexpr std::size_t kMaxTargetBytes = 1000;

}  // namespace unibiomed
