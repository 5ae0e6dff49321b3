// The bridge from preprocessing to LibTorch: model images as tensors.
#pragma once

#include <torch/types.h>

#include <vector>

#include "unibiomed/preprocess.h"

namespace unibiomed {

// [channels, height, width] float32 tensor holding a copy of the image.
torch::Tensor to_tensor(const ModelImage& image);

// The vision encoder's batch: [tiles, 3, tile, tile], tiles normalised with ImageNet statistics.
torch::Tensor vision_batch(const std::vector<Image8>& tiles);

}  // namespace unibiomed
