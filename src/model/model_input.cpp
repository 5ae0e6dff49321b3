#include "unibiomed/model_input.h"

#include <torch/torch.h>

#include "unibiomed/error.h"

namespace unibiomed {

torch::Tensor to_tensor(const ModelImage& image) {
  const auto expected = static_cast<std::size_t>(image.channels) *
                        static_cast<std::size_t>(image.height) *
                        static_cast<std::size_t>(image.width);
  if (image.data.size() != expected) throw internal_error("model image with inconsistent size");
  return torch::from_blob(const_cast<float*>(image.data.data()),
                          {image.channels, image.height, image.width}, torch::kFloat32)
      .clone();
}

torch::Tensor vision_batch(const std::vector<Image8>& tiles) {
  if (tiles.empty()) throw internal_error("vision batch of no tiles");
  std::vector<torch::Tensor> tensors;
  tensors.reserve(tiles.size());
  for (const auto& tile : tiles) tensors.push_back(to_tensor(normalize_imagenet(tile)));
  return torch::stack(tensors);
}

}  // namespace unibiomed
