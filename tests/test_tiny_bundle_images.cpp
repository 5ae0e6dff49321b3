// From the golden PNG to the mask, in C++: the foundation's reading and preprocessing feed the
// tiny bundle's vision encoder and SAM2 parts, and the results equal the reference pipeline's.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.h"
#include "unibiomed/model_input.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/read.h"
#include "unibiomed/safetensors.h"

namespace fs = std::filesystem;

namespace {

using unibiomed::test::read_json;
using unibiomed::test::relative_error;
using unibiomed::test::test_data;

TEST(TinyBundleImages, PreprocessingVisionAndSamMatchTheReference) {
  torch::NoGradGuard no_grad;
  const auto manifest = read_json(test_data("tiny-bundle") / "manifest.json");
  const auto cases = read_json(test_data("tiny-golden") / "cases.json")["cases"];
  const auto load = [&](const char* part) {
    return torch::jit::load(
        (test_data("tiny-bundle") / manifest["files"][part]["path"].get<std::string>()).string());
  };
  auto vision = load("vision_encoder");
  auto sam_image = load("sam_image_encoder");
  auto sam_decoder = load("sam_mask_decoder");
  auto tracker = load("sam_tracker");
  const auto& vin = manifest["vision_input"];
  unibiomed::TilingOptions tiling;
  tiling.min_tiles = vin["min_tiles"].get<int>();
  tiling.max_tiles = vin["max_tiles"].get<int>();
  tiling.tile_size = vin["tile_size"].get<int>();
  tiling.thumbnail = vin["use_thumbnail"].get<bool>();
  const int sam_size = manifest["sam"]["image_size"].get<int>();
  int checked = 0;
  for (const auto& c : cases) {
    if (c["kind"] != "image") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    auto gold =
        unibiomed::read_safetensors(test_data("tiny-golden") / c["tensors"].get<std::string>());
    const auto volume =
        unibiomed::read_image(test_data("tiny-golden") / c["image"].get<std::string>());
    const auto display = unibiomed::to_display(volume);
    const unibiomed::Image8 image = unibiomed::frame_rgb8(display.volume, 0);

    const torch::Tensor tiles = unibiomed::vision_batch(unibiomed::dynamic_tiles(image, tiling));
    const torch::Tensor tokens = vision.forward({tiles}).toTensor();
    EXPECT_LT(relative_error(tokens, gold.at("vision_tokens")), 1e-5);

    const torch::Tensor sam_in =
        unibiomed::to_tensor(unibiomed::sam_input(image, sam_size)).unsqueeze(0);
    const auto enc = sam_image.forward({sam_in}).toTuple();
    const torch::Tensor language = gold.at("language_embeddings");
    const std::int64_t k = language.size(0);
    const torch::Tensor embed =
        tracker.run_method("no_memory", enc->elements()[2].toTensor()).toTensor();
    const auto dec = sam_decoder
                         .forward({embed.expand({k, -1, -1, -1}),
                                   enc->elements()[0].toTensor().expand({k, -1, -1, -1}),
                                   enc->elements()[1].toTensor().expand({k, -1, -1, -1}), language})
                         .toTuple();
    const torch::Tensor masks = dec->elements()[0].toTensor();
    const torch::Tensor iou = dec->elements()[1].toTensor();
    EXPECT_LT(relative_error(masks, gold.at("mask_logits")), 1e-5);
    EXPECT_LT(relative_error(iou, gold.at("iou")), 1e-5);

    // Best candidate, bilinear to S x S, then to the image size, logit > threshold.
    const torch::Tensor best = iou.argmax(1);
    EXPECT_TRUE(torch::equal(best, gold.at("best")));
    // (F.interpolate with a size and align_corners=False is upsample_bilinear2d.)
    const auto bilinear = [](const torch::Tensor& x, std::int64_t h, std::int64_t w) {
      return torch::upsample_bilinear2d(x, {h, w}, false);
    };
    const torch::Tensor chosen = masks.index({torch::arange(k), best}).unsqueeze(1);
    const torch::Tensor up =
        bilinear(bilinear(chosen, sam_size, sam_size), image.height, image.width).squeeze(1);
    const torch::Tensor final_masks =
        (up > manifest["sam"]["mask_threshold"].get<double>()).to(torch::kUInt8);
    const std::int64_t differ = (final_masks != gold.at("masks")).sum().item<std::int64_t>();
    EXPECT_EQ(differ, 0) << "mask pixels differ";
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

}  // namespace
