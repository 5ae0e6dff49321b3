// The SAM2 stage for a 2-D image: image encoding once, then one mask decode per language
// embedding (the [SEG] prompts, batched), the candidate with the best predicted IoU, and the
// upsampling to the image's own size. Internal.
#pragma once

#include <torch/types.h>

#include "engine/model_parts.h"
#include "unibiomed/manifest.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {

struct SamFeatures {
  torch::Tensor high_res_0;  // s0 [1, C0, 4h, 4w]
  torch::Tensor high_res_1;  // s1 [1, C1, 2h, 2w]
  torch::Tensor embed;       // [1, C, h, w], with the no-memory embedding added (image mode)
};

// The image resized straight to S x S (SAM's input), through the image encoder.
SamFeatures encode_sam_image(const ModelParts& parts, const BundleManifest& manifest,
                             const Image8& image);

struct MaskCandidates {
  torch::Tensor logits;        // [K, C, low, low] float32, every candidate
  torch::Tensor iou;           // [K, C] float32
  torch::Tensor object_score;  // [K, 1] float32 logits
  torch::Tensor best;          // [K] int64: the candidate with the highest predicted IoU
};

// language [K, D] -> the K prompts' candidates, on the model's device.
MaskCandidates decode_masks(const ModelParts& parts, const BundleManifest& manifest,
                            const SamFeatures& features, const torch::Tensor& language);

// The chosen candidates, bilinear to S x S and then to height x width (align_corners false, as
// the release does), thresholded: [K, height, width] uint8 0/1 on the CPU.
torch::Tensor masks_on_image(const MaskCandidates& candidates, int sam_size, int height, int width,
                             double threshold);

}  // namespace unibiomed
