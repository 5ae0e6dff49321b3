#include "vision/vision_encoder.h"

#include "unibiomed/model_input.h"

namespace unibiomed {

TilingOptions tiling_options(const VisionInputInfo& vision) {
  TilingOptions options;
  options.min_tiles = vision.min_tiles;
  options.max_tiles = vision.max_tiles;
  options.tile_size = vision.tile_size;
  options.thumbnail = vision.use_thumbnail;
  return options;
}

torch::Tensor encode_tiles(const ModelParts& parts, const BundleManifest& manifest,
                           const std::vector<Image8>& tiles) {
  const torch::Tensor pixels = vision_batch(tiles).to(parts.device, parts.dtype);
  const torch::Tensor tokens = parts.vision.call_tensor("forward", {pixels});
  expect_shape(tokens,
               {static_cast<std::int64_t>(tiles.size()), manifest.vision.tokens_per_tile,
                manifest.language.hidden_size},
               "vision_encoder", "image tokens");
  return tokens.reshape({-1, tokens.size(2)});
}

}  // namespace unibiomed
