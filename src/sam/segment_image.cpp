#include "sam/segment_image.h"

#include <torch/torch.h>

#include "unibiomed/error.h"
#include "unibiomed/model_input.h"

namespace unibiomed {

SamFeatures encode_sam_image(const ModelParts& parts, const BundleManifest& manifest,
                             const Image8& image) {
  const int size = manifest.sam.image_size;
  const torch::Tensor pixels =
      to_tensor(sam_input(image, size)).unsqueeze(0).to(parts.device, parts.dtype);
  const auto out = parts.sam_image.call_tuple("forward", {pixels});
  if (out.size() < 3) {
    throw internal_error("model part sam_image_encoder returned " + std::to_string(out.size()) +
                         " tensors, expected 4");
  }
  SamFeatures features;
  features.high_res_0 = out[0];
  features.high_res_1 = out[1];
  features.embed = parts.sam_tracker.call_tensor("no_memory", {out[2]});
  const std::int64_t h = manifest.sam.low_res_size / 4;
  expect_shape(features.embed, {1, -1, h, h}, "sam_image_encoder", "image embedding");
  expect_shape(features.high_res_0, {1, -1, 4 * h, 4 * h}, "sam_image_encoder",
               "high-resolution features s0");
  expect_shape(features.high_res_1, {1, -1, 2 * h, 2 * h}, "sam_image_encoder",
               "high-resolution features s1");
  return features;
}

MaskCandidates decode_masks(const ModelParts& parts, const BundleManifest& manifest,
                            const SamFeatures& features, const torch::Tensor& language) {
  const std::int64_t k = language.size(0);
  const auto out = parts.sam_decoder.call_tuple(
      "forward",
      {features.embed.expand({k, -1, -1, -1}), features.high_res_0.expand({k, -1, -1, -1}),
       features.high_res_1.expand({k, -1, -1, -1}), language.to(parts.dtype)});
  const std::int64_t low = manifest.sam.low_res_size;
  expect_shape(out.at(0), {k, -1, low, low}, "sam_mask_decoder", "mask logits");
  const std::int64_t candidates = out.at(0).size(1);
  expect_shape(out.at(1), {k, candidates}, "sam_mask_decoder", "predicted IoU");
  expect_shape(out.at(2), {k, 1}, "sam_mask_decoder", "object scores");
  MaskCandidates result;
  result.logits = out[0].to(torch::kFloat32);
  result.iou = out[1].to(torch::kFloat32);
  result.object_score = out[2].to(torch::kFloat32);
  result.best = result.iou.argmax(1);
  return result;
}

torch::Tensor masks_on_image(const MaskCandidates& candidates, int sam_size, int height, int width,
                             double threshold) {
  const std::int64_t k = candidates.logits.size(0);
  const torch::Tensor rows = torch::arange(k, candidates.best.options());
  const torch::Tensor chosen = candidates.logits.index({rows, candidates.best}).unsqueeze(1);
  const torch::Tensor sam = torch::upsample_bilinear2d(chosen, {sam_size, sam_size}, false);
  const torch::Tensor image = torch::upsample_bilinear2d(sam, {height, width}, false);
  return (image.squeeze(1) > threshold).to(torch::kUInt8).to(torch::kCPU).contiguous();
}

}  // namespace unibiomed
