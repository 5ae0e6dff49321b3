// The C++ engine against the reference pipeline's goldens, stage by stage (so that a regression
// names the stage that broke) and end to end through Session::interpret. Every test runs on two
// datasets: the tiny bundle with its goldens, and the demo bundle (models/default) with its own.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/model_parts.h"
#include "language/generate.h"
#include "prompt/request_prompt.h"
#include "sam/segment_image.h"
#include "test_support.h"
#include "unibiomed/engine.h"
#include "unibiomed/model_input.h"
#include "unibiomed/read.h"
#include "unibiomed/safetensors.h"
#include "vision/vision_encoder.h"

namespace {

using unibiomed::test::read_json;
using unibiomed::test::relative_error;
using unibiomed::test::test_data;

using Datasets = ::testing::Types<parity::tiny, parity::demo>;

struct GoldenCase {
  nlohmann::json meta;
  std::map<std::string, torch::Tensor> tensors;
  unibiomed::Image8 image;
  std::string name() const { return meta["name"].get<std::string>(); }
};

unibiomed::InterpretRequest request_for(const GoldenCase& g) {
  unibiomed::InterpretRequest request;
  request.task = g.meta["task"].get<std::string>();
  const auto target = g.meta["target"].get<std::string>();
  if (!target.empty()) request.targets = {target};
  request.question = g.meta["question"].get<std::string>();
  return request;
}

std::vector<std::int32_t> ids_of(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kInt64).contiguous();
  return std::vector<std::int32_t>(c.data_ptr<std::int64_t>(),
                                   c.data_ptr<std::int64_t>() + c.numel());
}

// The model and the golden image cases are loaded once per dataset (each instantiation of the
// template has its own statics).
template <typename Data>
class EngineParity : public ::testing::Test {
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
      if (c["kind"] != "image") continue;
      GoldenCase g;
      g.meta = c;
      g.tensors = unibiomed::read_safetensors(golden / c["tensors"].get<std::string>());
      const auto volume = unibiomed::read_image(golden / c["image"].get<std::string>());
      g.image = unibiomed::frame_rgb8(unibiomed::to_display(volume).volume, 0);
      cases_.push_back(std::move(g));
    }
  }
  // Every test runs over all four golden image cases; none may pass on an empty list.
  void SetUp() override {
    if (absent_ && Data::optional) GTEST_SKIP() << Data::golden() << " not shipped yet";
    ASSERT_EQ(cases_.size(), 4U);
  }
  static void TearDownTestSuite() {
    model_.reset();
    cases_.clear();
  }
  static const unibiomed::ModelParts& parts() { return model_->parts(); }
  static const unibiomed::BundleManifest& manifest() { return model_->manifest(); }

  inline static std::shared_ptr<const unibiomed::Model> model_;
  inline static bool absent_ = false;
  inline static std::vector<GoldenCase> cases_;
};
TYPED_TEST_SUITE(EngineParity, Datasets);

TYPED_TEST(EngineParity, LoadsOnCpuInFp32) {
  EXPECT_EQ(this->model_->device_name(), "cpu");
  EXPECT_EQ(this->model_->dtype_name(), "fp32");
  EXPECT_EQ(this->cases_.size(), 4U);
}

TYPED_TEST(EngineParity, PreprocessedTilesMatch) {
  torch::InferenceMode guard;
  for (const GoldenCase& g : this->cases_) {
    SCOPED_TRACE(g.name());
    const auto tiles =
        unibiomed::dynamic_tiles(g.image, unibiomed::tiling_options(this->manifest().vision));
    const torch::Tensor batch = unibiomed::vision_batch(tiles);
    const torch::Tensor stats = torch::stack({batch.mean({1, 2, 3}), batch.std({1, 2, 3})}, 1);
    EXPECT_LT(relative_error(stats, g.tensors.at("tiles_mean_std")), 1e-5);
  }
}

TYPED_TEST(EngineParity, VisionTokensMatch) {
  torch::InferenceMode guard;
  for (const GoldenCase& g : this->cases_) {
    SCOPED_TRACE(g.name());
    const auto tiles =
        unibiomed::dynamic_tiles(g.image, unibiomed::tiling_options(this->manifest().vision));
    const torch::Tensor tokens = unibiomed::encode_tiles(this->parts(), this->manifest(), tiles);
    const torch::Tensor gold = g.tensors.at("vision_tokens");
    EXPECT_LT(relative_error(tokens, gold.reshape({-1, gold.size(2)})), 1e-5);
  }
}

TYPED_TEST(EngineParity, PromptIdsMatch) {
  for (const GoldenCase& g : this->cases_) {
    SCOPED_TRACE(g.name());
    const auto prompts = unibiomed::request_prompts(this->manifest().chat, request_for(g));
    ASSERT_EQ(prompts.size(), 1U);
    const auto tokens = g.tensors.at("vision_tokens");
    const std::string text = unibiomed::chat_prompt(
        this->manifest().chat,
        unibiomed::expand_image_tokens(prompts[0].user_text,
                                       {static_cast<int>(tokens.size(0) * tokens.size(1))}));
    EXPECT_EQ(this->model_->tokenizer().encode(text), ids_of(g.tensors.at("prompt_ids")));
  }
}

// Prefill and one decode step with the C++ cache: the first two tokens of the golden answer.
TYPED_TEST(EngineParity, PrefillAndOneDecodeStepMatch) {
  torch::InferenceMode guard;
  const auto& lang = this->manifest().language;
  for (const GoldenCase& g : this->cases_) {
    SCOPED_TRACE(g.name());
    const auto ids = ids_of(g.tensors.at("prompt_ids"));
    const auto expected = ids_of(g.tensors.at("output_ids"));
    const torch::Tensor vision = g.tensors.at("vision_tokens").reshape({-1, lang.hidden_size});
    const torch::Tensor embeds = unibiomed::embed_prompt(
        this->parts(), ids, vision, this->manifest().tokenizer.special_tokens.at("<IMG_CONTEXT>"));
    unibiomed::KvCache cache;
    const auto n = static_cast<std::int64_t>(ids.size());
    cache.reserve(this->parts(), lang, n + 1);
    const auto index = torch::tensor({n - 1}, torch::kInt64);
    auto out = this->parts().language.call_tuple(
        "forward", {embeds, std::int64_t{0}, cache.keys(), cache.values(), index});
    unibiomed::TokenSampler sampler(unibiomed::GenerationOptions{});
    const auto first = sampler.next(out.at(0)[0][-1]);
    ASSERT_EQ(first.id, expected.at(0));
    const torch::Tensor step = this->parts().language.call_tensor("embed", {first.on_device});
    out = this->parts().language.call_tuple(
        "forward", {step, n, cache.keys(), cache.values(), torch::tensor({0}, torch::kInt64)});
    EXPECT_EQ(sampler.next(out.at(0)[0][-1]).id, expected.at(1));
  }
}

TYPED_TEST(EngineParity, GenerationAndSegEmbeddingsMatch) {
  torch::InferenceMode guard;
  const auto& lang = this->manifest().language;
  for (const GoldenCase& g : this->cases_) {
    SCOPED_TRACE(g.name());
    const auto ids = ids_of(g.tensors.at("prompt_ids"));
    const torch::Tensor vision = g.tensors.at("vision_tokens").reshape({-1, lang.hidden_size});
    const torch::Tensor embeds = unibiomed::embed_prompt(
        this->parts(), ids, vision, this->manifest().tokenizer.special_tokens.at("<IMG_CONTEXT>"));
    unibiomed::KvCache cache;
    const auto gen = unibiomed::generate(this->parts(), this->manifest(), this->model_->tokenizer(),
                                         cache, embeds, unibiomed::GenerationOptions{});
    EXPECT_EQ(gen.output_ids, ids_of(g.tensors.at("output_ids")));
    EXPECT_EQ(gen.text, g.meta["text"].get<std::string>());
    EXPECT_EQ(gen.stopped_by, g.meta["stopped_by"].get<std::string>());
    ASSERT_EQ(gen.seg_hidden.size(0), g.tensors.at("seg_hidden").size(0));
    if (gen.seg_hidden.size(0) == 0) continue;  // an answer without [SEG] ("No focal lesion")
    EXPECT_LT(relative_error(gen.seg_hidden, g.tensors.at("seg_hidden")), 1e-5);
    const torch::Tensor language = this->parts().grounding.call_tensor("forward", {gen.seg_hidden});
    EXPECT_LT(relative_error(language, g.tensors.at("language_embeddings")), 1e-5);
  }
}

TYPED_TEST(EngineParity, MaskDecodeMatches) {
  torch::InferenceMode guard;
  for (const GoldenCase& g : this->cases_) {
    SCOPED_TRACE(g.name());
    if (g.tensors.at("language_embeddings").size(0) == 0) continue;  // no [SEG], no mask
    const auto features = unibiomed::encode_sam_image(this->parts(), this->manifest(), g.image);
    const auto candidates = unibiomed::decode_masks(this->parts(), this->manifest(), features,
                                                    g.tensors.at("language_embeddings"));
    EXPECT_LT(relative_error(candidates.logits, g.tensors.at("mask_logits")), 1e-5);
    EXPECT_LT(relative_error(candidates.iou, g.tensors.at("iou")), 1e-5);
    EXPECT_LT(relative_error(candidates.object_score, g.tensors.at("object_scores")), 1e-5);
    EXPECT_TRUE(torch::equal(candidates.best, g.tensors.at("best")));
    const torch::Tensor masks =
        unibiomed::masks_on_image(candidates, this->manifest().sam.image_size, g.image.height,
                                  g.image.width, this->manifest().sam.mask_threshold);
    EXPECT_TRUE(torch::equal(masks, g.tensors.at("masks"))) << "mask pixels differ";
  }
}

// The whole pipeline through the public API: ids, text, phrases, masks, measures.
TYPED_TEST(EngineParity, SessionReproducesEveryImageCase) {
  unibiomed::Session session(this->model_);
  for (const GoldenCase& g : this->cases_) {
    SCOPED_TRACE(g.name());
    unibiomed::InputImage input;
    input.rgb = g.image;
    const auto result = session.interpret(input, request_for(g));
    ASSERT_EQ(result.answers.size(), 1U);
    const auto& answer = result.answers[0];
    EXPECT_EQ(answer.prompt_ids, ids_of(g.tensors.at("prompt_ids")));
    EXPECT_EQ(answer.output_ids, ids_of(g.tensors.at("output_ids")));
    EXPECT_EQ(answer.text, g.meta["text"].get<std::string>());
    EXPECT_EQ(answer.stopped_by, g.meta["stopped_by"].get<std::string>());
    const auto& gold_masks = g.meta["masks"];
    ASSERT_EQ(result.findings.size(), gold_masks.size());
    const torch::Tensor masks = g.tensors.at("masks");
    for (std::size_t i = 0; i < result.findings.size(); ++i) {
      const auto& f = result.findings[i];
      const auto& gm = gold_masks[i];
      EXPECT_EQ(f.phrase, gm["phrase"].get<std::string>());
      EXPECT_EQ(f.area_px, gm["area_px"].get<std::size_t>());
      ASSERT_TRUE(f.box.has_value());
      EXPECT_EQ(std::vector<int>(f.box->begin(), f.box->end()), gm["box"].get<std::vector<int>>());
      EXPECT_EQ(f.candidate, gm["best"].get<int>());
      EXPECT_NEAR(f.iou, gm["iou"][static_cast<std::size_t>(f.candidate)].get<double>(), 1e-5);
      const torch::Tensor gold = masks[static_cast<std::int64_t>(i)].contiguous();
      const std::vector<std::uint8_t> expected(gold.data_ptr<std::uint8_t>(),
                                               gold.data_ptr<std::uint8_t>() + gold.numel());
      EXPECT_EQ(f.mask, expected) << "mask pixels differ";
      EXPECT_FALSE(f.area_mm2.has_value());
    }
    EXPECT_GT(result.times.total, 0.0);
    EXPECT_GT(result.times.decode_tokens, 0U);
  }
}

// A second request on the same image reuses the image features and gives the same result; the
// pixel spacing, when known, gives areas in mm².
// Relies on the first case of each dataset being a one-target segmentation with one golden mask
// (tiny: brain_pd_segment, demo: pd_ventricles_segment).
TYPED_TEST(EngineParity, SessionReusesImageFeaturesAndMeasuresMillimetres) {
  unibiomed::Session session(this->model_);
  const GoldenCase& g = this->cases_.at(0);
  unibiomed::InputImage input;
  input.rgb = g.image;
  input.spacing_mm = {{0.5, 2.0}};
  const auto first = session.interpret(input, request_for(g));
  const auto second = session.interpret(input, request_for(g));
  ASSERT_EQ(first.findings.size(), 1U);
  ASSERT_EQ(second.findings.size(), 1U);
  EXPECT_EQ(first.findings[0].mask, second.findings[0].mask);
  ASSERT_TRUE(first.findings[0].area_mm2.has_value());
  EXPECT_DOUBLE_EQ(*first.findings[0].area_mm2,
                   static_cast<double>(first.findings[0].area_px) * 0.5 * 2.0);
}

// Several targets: one prompt and one answer per target, the phrase of each mask its target.
TYPED_TEST(EngineParity, OneAnswerPerTarget) {
  unibiomed::Session session(this->model_);
  unibiomed::InputImage input;
  input.rgb = this->cases_.at(0).image;
  unibiomed::InterpretRequest request;
  request.targets = {"brain", "lateral ventricles"};
  const auto result = session.interpret(input, request);
  ASSERT_EQ(result.answers.size(), 2U);
  EXPECT_EQ(result.answers[0].target, "brain");
  EXPECT_EQ(result.answers[1].target, "lateral ventricles");
  for (const auto& f : result.findings) {
    EXPECT_EQ(f.phrase, result.answers[f.answer].target);
    EXPECT_EQ(f.mask.size(), static_cast<std::size_t>(input.rgb.width * input.rgb.height));
  }
}

}  // namespace
