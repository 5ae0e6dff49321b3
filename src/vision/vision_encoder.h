// The vision stage: InternVL dynamic tiles of the image through the vision encoder and projector,
// giving the tokens that replace the prompt's <IMG_CONTEXT> placeholders. Internal.
#pragma once

#include <torch/types.h>

#include <vector>

#include "engine/model_parts.h"
#include "unibiomed/manifest.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {

TilingOptions tiling_options(const VisionInputInfo& vision);

// tiles -> [tiles x tokens_per_tile, hidden] in the model's dtype, on its device.
torch::Tensor encode_tiles(const ModelParts& parts, const BundleManifest& manifest,
                           const std::vector<Image8>& tiles);

}  // namespace unibiomed
