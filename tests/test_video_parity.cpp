// The frame-sequence (volume) pipeline against the reference pipeline's video goldens: the
// release's frame rule and a spread choice; stage by stage (conditioning embeddings, low-res
// logits of every frame, masks) and end to end through the Session. Every test runs on two
// datasets: the tiny bundle with its goldens, and the demo bundle (models/default) with its own.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/frame_choice.h"
#include "engine/model_parts.h"
#include "engine/session_state.h"
#include "sam/propagate_video.h"
#include "test_support.h"
#include "unibiomed/engine.h"
#include "unibiomed/safetensors.h"
#include "vision/vision_encoder.h"

namespace {

using unibiomed::test::read_json;
using unibiomed::test::relative_error;
using unibiomed::test::test_data;

using Datasets = ::testing::Types<parity::tiny, parity::demo>;

struct VideoCase {
  nlohmann::json meta;
  std::map<std::string, torch::Tensor> tensors;
  std::string name() const { return meta["name"].get<std::string>(); }
  std::vector<int> llm_frames() const { return meta["llm_frames"].get<std::vector<int>>(); }
};

std::vector<std::int32_t> ids_of(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kInt64).contiguous();
  return std::vector<std::int32_t>(c.data_ptr<std::int64_t>(),
                                   c.data_ptr<std::int64_t>() + c.numel());
}

// The model, the golden frame cases and their frames are loaded once per dataset (each
// instantiation of the template has its own statics).
// Both datasets hold the same two cases in this order, ch2_video_release then ch2_video_spread,
// on the same 8 frames of ch2; the tests below rely on that (cases_[0], cases_[1], 8 frames).
template <typename Data>
class VideoParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto golden = test_data(Data::golden());
    absent_ = !std::filesystem::exists(golden / "cases.json");
    if (absent_ && Data::optional) return;
    const nlohmann::json all = read_json(golden / "cases.json");
    const auto bundle = (golden / all["bundle"].get<std::string>()).lexically_normal();
    unibiomed::ModelOptions options;
    options.device = "cpu";
    model_ = unibiomed::Model::load(bundle, options);
    for (const auto& c : all["cases"]) {
      if (c["kind"] != "frames") continue;
      VideoCase v;
      v.meta = c;
      v.tensors = unibiomed::read_safetensors(golden / c["tensors"].get<std::string>());
      cases_.push_back(std::move(v));
      frames_ = unibiomed::read_safetensors(golden / c["frames"].get<std::string>()).at("frames");
    }
  }
  void SetUp() override {
    if (absent_ && Data::optional) GTEST_SKIP() << Data::golden() << " not shipped yet";
    ASSERT_EQ(cases_.size(), 2U);
  }
  static void TearDownTestSuite() {
    model_.reset();
    cases_.clear();
  }

  // Frame f of the golden input as the engine takes it: grey replicated to RGB.
  static unibiomed::Image8 frame(int f) {
    const torch::Tensor grey = frames_[f].contiguous();
    unibiomed::Image8 image;
    image.height = static_cast<int>(grey.size(0));
    image.width = static_cast<int>(grey.size(1));
    const std::uint8_t* p = grey.data_ptr<std::uint8_t>();
    for (std::int64_t i = 0; i < grey.numel(); ++i) image.rgb.insert(image.rgb.end(), 3, p[i]);
    return image;
  }
  static unibiomed::InputFrames input_frames() {
    unibiomed::InputFrames input;
    input.count = static_cast<int>(frames_.size(0));
    input.height = static_cast<int>(frames_.size(1));
    input.width = static_cast<int>(frames_.size(2));
    input.frame = &VideoParity::frame;
    return input;
  }

  inline static std::shared_ptr<const unibiomed::Model> model_;
  inline static bool absent_ = false;
  inline static std::vector<VideoCase> cases_;
  inline static torch::Tensor frames_;
};
TYPED_TEST_SUITE(VideoParity, Datasets);

TYPED_TEST(VideoParity, ReleaseRuleIsTheFirstFiveFrames) {
  EXPECT_EQ(unibiomed::release_llm_frames(8, this->model_->manifest().video_llm_frames),
            this->cases_[0].llm_frames());
  EXPECT_EQ(unibiomed::release_llm_frames(3, 5), (std::vector<int>{0, 1, 2}));
}

// Propagation from the golden conditioning embeddings: every frame's low-res logits and mask.
TYPED_TEST(VideoParity, PropagationMatchesEveryFrame) {
  torch::InferenceMode guard;
  for (const VideoCase& v : this->cases_) {
    SCOPED_TRACE(v.name());
    unibiomed::VideoOptions options;
    options.height = static_cast<int>(this->frames_.size(1));
    options.width = static_cast<int>(this->frames_.size(2));
    options.keep_low_res = true;
    const auto video = unibiomed::propagate_video(
        this->model_->parts(), this->model_->manifest(), static_cast<int>(this->frames_.size(0)),
        &TestFixture::frame, v.tensors.at("language_embeddings"), v.llm_frames(), options);
    EXPECT_EQ(video.order, unibiomed::propagation_order(v.llm_frames(), 8));
    const torch::Tensor gold_low = v.tensors.at("low_res");
    // fp32 rounding differences (TorchScript against eager) pass from frame to frame through
    // the memory: the demo bundle's last frame, seven frames from its prompt, is at 1.06e-5.
    // The masks below must still match voxel for voxel.
    for (int f = 0; f < 8; ++f) {
      SCOPED_TRACE("frame " + std::to_string(f));
      EXPECT_LT(relative_error(video.low_res.select(1, f), gold_low.select(1, f)), 5e-5);
    }
    const torch::Tensor gold = v.tensors.at("masks")[0].contiguous();
    const std::vector<std::uint8_t> expected(gold.data_ptr<std::uint8_t>(),
                                             gold.data_ptr<std::uint8_t>() + gold.numel());
    ASSERT_EQ(video.masks.size(), 1U);
    EXPECT_EQ(video.masks[0], expected) << "mask voxels differ";
  }
}

// The whole pipeline: ids, text, conditioning frames, phrase, masks, voxel count.
TYPED_TEST(VideoParity, SessionReproducesBothFrameRules) {
  unibiomed::Session session(this->model_);
  for (const VideoCase& v : this->cases_) {
    SCOPED_TRACE(v.name());
    unibiomed::InputFrames input = this->input_frames();
    input.prompt_frames =
        unibiomed::PromptFrames::Seen;  // the goldens follow the release, whatever the bundle says
    if (v.name() == "ch2_video_release") {
      input.rule = unibiomed::FrameRule::Release;
    } else {
      input.llm_frames = v.llm_frames();
    }
    unibiomed::InterpretRequest request;
    request.targets = {v.meta["target"].get<std::string>()};
    const auto result = session.interpret_frames(input, request);
    EXPECT_EQ(result.llm_frames, v.llm_frames());
    EXPECT_EQ(result.frames, 8);
    ASSERT_EQ(result.answers.size(), 1U);
    EXPECT_EQ(result.answers[0].prompt_ids, ids_of(v.tensors.at("prompt_ids")));
    EXPECT_EQ(result.answers[0].output_ids, ids_of(v.tensors.at("output_ids")));
    EXPECT_EQ(result.answers[0].text, v.meta["text"].get<std::string>());
    ASSERT_EQ(result.findings.size(), 1U);
    const auto& f = result.findings[0];
    EXPECT_EQ(f.phrase, v.meta["phrases"][0].get<std::string>());
    EXPECT_EQ(f.area_px, v.meta["mask_voxels"][0].get<std::size_t>());
    const torch::Tensor gold = v.tensors.at("masks")[0].contiguous();
    const std::vector<std::uint8_t> expected(gold.data_ptr<std::uint8_t>(),
                                             gold.data_ptr<std::uint8_t>() + gold.numel());
    EXPECT_EQ(f.mask, expected) << "mask voxels differ";
    EXPECT_FALSE(f.volume_ml.has_value());
    ASSERT_TRUE(f.frame_range.has_value());
  }
}

// The language side of the sequence: one tile per frame, the prompt with one <img> block per
// frame, and the [SEG] embedding that conditions the frames.
TYPED_TEST(VideoParity, ConditioningEmbeddingsMatch) {
  torch::InferenceMode guard;
  const auto& m = this->model_->manifest();
  for (const VideoCase& v : this->cases_) {
    SCOPED_TRACE(v.name());
    std::vector<unibiomed::Image8> tiles;
    for (const int f : v.llm_frames()) {
      tiles.push_back(
          unibiomed::resize_bicubic(this->frame(f), m.vision.tile_size, m.vision.tile_size));
    }
    const torch::Tensor vision = unibiomed::encode_tiles(this->model_->parts(), m, tiles);
    unibiomed::InterpretRequest request;
    request.targets = {v.meta["target"].get<std::string>()};
    unibiomed::KvCache cache;
    unibiomed::Interpretation result;
    const auto groundings = unibiomed::answer_prompts(
        *this->model_, cache, unibiomed::request_prompts(m.chat, request), vision,
        std::vector<int>(tiles.size(), m.vision.tokens_per_tile), request.generation, result, {});
    ASSERT_EQ(result.answers.size(), 1U);
    EXPECT_EQ(result.answers[0].prompt_ids, ids_of(v.tensors.at("prompt_ids")));
    ASSERT_EQ(groundings.language.size(0), 1);
    EXPECT_LT(relative_error(groundings.language, v.tensors.at("language_embeddings")), 1e-5);
  }
}

// Several objects are tracked in one batch per frame; each must come out as it does alone.
TYPED_TEST(VideoParity, ObjectsTrackedTogetherMatchEachAlone) {
  torch::InferenceMode guard;
  unibiomed::VideoOptions options;
  options.height = static_cast<int>(this->frames_.size(1));
  options.width = static_cast<int>(this->frames_.size(2));
  options.keep_low_res = true;
  const torch::Tensor gold = this->cases_[1].tensors.at("language_embeddings");
  const torch::Tensor two = torch::cat({gold, -0.5 * gold.flip({1})});
  const std::vector<int> cond = this->cases_[1].llm_frames();
  const auto together = unibiomed::propagate_video(this->model_->parts(), this->model_->manifest(),
                                                   8, &TestFixture::frame, two, cond, options);
  ASSERT_EQ(together.masks.size(), 2U);
  for (std::int64_t i = 0; i < 2; ++i) {
    SCOPED_TRACE("object " + std::to_string(i));
    const auto alone =
        unibiomed::propagate_video(this->model_->parts(), this->model_->manifest(), 8,
                                   &TestFixture::frame, two.narrow(0, i, 1), cond, options);
    EXPECT_LT(relative_error(together.low_res.narrow(0, i, 1), alone.low_res), 1e-5);
    EXPECT_EQ(together.masks[static_cast<std::size_t>(i)], alone.masks[0]);
    for (int f = 0; f < 8; ++f) {
      EXPECT_NEAR(together.object_score[static_cast<std::size_t>(i)][static_cast<std::size_t>(f)],
                  alone.object_score[0][static_cast<std::size_t>(f)], 1e-5);
    }
  }
  EXPECT_NE(together.masks[0], together.masks[1]) << "the two objects should differ";
}

// --prompt-frames every: each frame is decoded from the [SEG] prompt alone, exactly as it is as
// a conditioning frame of the release's run (the golden's, or one prompted on that frame only),
// and no memory is made; the Session says which frames it prompted.
TYPED_TEST(VideoParity, PromptingEveryFrameDecodesEachAlone) {
  torch::InferenceMode guard;
  const VideoCase& v = this->cases_[1];
  unibiomed::VideoOptions options;
  options.height = static_cast<int>(this->frames_.size(1));
  options.width = static_cast<int>(this->frames_.size(2));
  options.keep_low_res = true;
  const torch::Tensor language = v.tensors.at("language_embeddings");
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7};
  const auto every = unibiomed::propagate_video(this->model_->parts(), this->model_->manifest(), 8,
                                                &TestFixture::frame, language, all, options);
  EXPECT_EQ(every.order, all);
  EXPECT_EQ(every.peak_memories, 0);
  const torch::Tensor gold_low = v.tensors.at("low_res");
  const std::vector<int> cond = v.llm_frames();
  for (const int f : cond) {
    SCOPED_TRACE("conditioning frame " + std::to_string(f));
    EXPECT_LT(relative_error(every.low_res.select(1, f), gold_low.select(1, f)), 1e-5);
  }
  for (const int f : {0, 7}) {
    if (std::find(cond.begin(), cond.end(), f) != cond.end()) continue;
    SCOPED_TRACE("frame " + std::to_string(f));
    const auto alone = unibiomed::propagate_video(this->model_->parts(), this->model_->manifest(),
                                                  8, &TestFixture::frame, language, {f}, options);
    EXPECT_LT(relative_error(every.low_res.select(1, f), alone.low_res.select(1, f)), 1e-5);
  }

  unibiomed::Session session(this->model_);
  unibiomed::InputFrames input = this->input_frames();
  input.llm_frames = cond;
  input.prompt_frames = unibiomed::PromptFrames::Every;
  unibiomed::InterpretRequest request;
  request.targets = {v.meta["target"].get<std::string>()};
  const auto result = session.interpret_frames(input, request);
  EXPECT_EQ(result.prompt_frames, unibiomed::PromptFrames::Every);
  EXPECT_EQ(result.llm_frames, cond);
  ASSERT_EQ(result.findings.size(), 1U);
  EXPECT_EQ(result.findings[0].mask, every.masks[0]) << "mask voxels differ";
}

// Memory is bounded: a long sequence holds the conditioning frames' memories and a window of
// recent ones, never one per frame; and the memory selection follows SAM2's rule.
TYPED_TEST(VideoParity, MemoryBankStaysBounded) {
  torch::InferenceMode guard;
  const int count = 40;
  unibiomed::VideoOptions options;
  options.height = 16;
  options.width = 12;
  const auto small = [](int f) {
    unibiomed::Image8 image;
    image.width = 12;
    image.height = 16;
    image.rgb.assign(12 * 16 * 3, static_cast<std::uint8_t>(40 + 4 * f));
    return image;
  };
  const std::vector<int> cond = {10, 20, 30};
  const auto video =
      unibiomed::propagate_video(this->model_->parts(), this->model_->manifest(), count, small,
                                 this->cases_[0].tensors.at("language_embeddings"), cond, options);
  EXPECT_EQ(static_cast<int>(video.order.size()), count);
  EXPECT_EQ(std::set<int>(video.order.begin(), video.order.end()).size(),
            static_cast<std::size_t>(count));
  const int n = this->model_->manifest().sam.num_maskmem;
  // conditioning + a window behind the current frame + the window kept for the backward pass
  EXPECT_LE(video.peak_memories, static_cast<int>(cond.size()) + 2 * n + 2);
  EXPECT_LT(video.peak_memories, count / 2);
}

TEST(VideoMemorySelection, FollowsSam2) {
  unibiomed::MemoryPolicy policy;  // 7 memories, 16 pointers, all conditioning frames, stride 1
  // forward, frame 9 with conditioning frames 0..4 and 5..8 tracked
  std::set<int> tracked = {5, 6, 7, 8};
  auto s = unibiomed::select_memory(9, {0, 1, 2, 3, 4}, tracked, policy, 1, 20);
  EXPECT_EQ(s.mem_frames, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(s.tpos_rows, (std::vector<std::int64_t>{6, 6, 6, 6, 6, 3, 2, 1, 0}));
  EXPECT_EQ(s.ptr_frames, (std::vector<int>{0, 1, 2, 3, 4, 8, 7, 6, 5}));
  // backward from the first conditioning frame 4 (conditioning 4, 6), frame 3: 5 tracked
  tracked = {5, 7, 8};
  s = unibiomed::select_memory(3, {4, 6}, tracked, policy, -1, 10);
  EXPECT_EQ(s.mem_frames, (std::vector<int>{4, 6, 8, 7, 5}));
  EXPECT_EQ(s.tpos_rows, (std::vector<std::int64_t>{6, 6, 4, 3, 1}));
  EXPECT_EQ(s.ptr_frames, (std::vector<int>{4, 6, 5, 7, 8}));
  EXPECT_EQ(unibiomed::propagation_order({4, 6}, 9), (std::vector<int>{4, 6, 5, 7, 8, 3, 2, 1, 0}));
}

TEST(VideoFrameChoice, SpreadCoversTheBody) {
  // 20 frames, body in 5..14 (foreground 0.5), a sliver of table at 0 and 19
  std::vector<double> fg(20, 0.0);
  for (int f = 5; f < 15; ++f) fg[static_cast<std::size_t>(f)] = 0.5;
  fg[0] = fg[19] = 0.05;
  EXPECT_EQ(unibiomed::spread_llm_frames(fg, 5), (std::vector<int>{6, 8, 10, 12, 14}));
  EXPECT_EQ(unibiomed::spread_llm_frames(std::vector<double>(3, 0.2), 5),
            (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(unibiomed::spread_llm_frames(std::vector<double>(10, 0.0), 2),
            (std::vector<int>{2, 7}));
}

}  // namespace
