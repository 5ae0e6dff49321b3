// The SAM2 stage for a volume or any frame sequence (video mode, as the release runs it): the
// conditioning frames are decoded with the [SEG] language embeddings like 2-D images, then
// SAM2's memory (memory encoder, memory attention, object pointers) carries the masks forward
// through the other frames and, when the conditioning frames do not start at frame 0, backward.
// Frames are streamed through the image encoder one at a time and only the memories that a
// later frame can still select are kept, so memory does not grow with the number of frames.
// All objects (one per [SEG]) are tracked together, in one batch per frame. Internal.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <set>
#include <vector>

#include "engine/model_parts.h"
#include "unibiomed/manifest.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {

// SAM2's memory-bank settings in evaluation (from the manifest's architecture.sam).
struct MemoryPolicy {
  int num_maskmem = 7;                // memories: the conditioning frames + num_maskmem - 1 recent
  int max_obj_ptrs = 16;              // object pointers looked back on
  int max_cond_frames = -1;           // conditioning frames in attention; -1: all
  int stride = 1;                     // memory_temporal_stride_for_eval
  bool only_obj_ptrs_in_past = true;  // only_obj_ptrs_in_the_past_for_eval
};

MemoryPolicy memory_policy(const BundleManifest& manifest);

// Which stored frames condition a tracked frame (SAM2Base._prepare_memory_conditioned_features).
struct MemorySelection {
  std::vector<int> mem_frames;          // conditioning frames first, then farthest to nearest
  std::vector<std::int64_t> tpos_rows;  // row of maskmem_tpos_enc for each of mem_frames
  std::vector<int> ptr_frames;          // object pointers: conditioning first, then by distance
};

// frame: the frame being tracked; cond: the conditioning frames (ascending); tracked: frames
// with a memory that are not conditioning frames; direction: +1 forward, -1 backward.
MemorySelection select_memory(int frame, const std::vector<int>& cond, const std::set<int>& tracked,
                              const MemoryPolicy& policy, int direction, int num_frames);

// The frames a propagation run visits, in order: the conditioning frames, then forward from
// the first of them to the end, then backward from it to frame 0 (conditioning frames once).
std::vector<int> propagation_order(const std::vector<int>& cond, int num_frames);

// One frame of the sequence as an 8-bit RGB image; called once per frame, in the order of
// propagation_order, so frames can be produced on demand.
using FrameImageFn = std::function<Image8(int frame)>;

struct VideoOptions {
  int height = 0;  // size of the output masks (the frames' own size)
  int width = 0;
  bool keep_low_res = false;  // keep every frame's low-res logits (tests)
  // Called after each frame with (frames done, frames in all).
  std::function<void(int, int)> on_frame;
};

struct VideoMasks {
  int frames = 0;
  // per object: frames x height x width, 0/1
  std::vector<std::vector<std::uint8_t>> masks;
  // per object, per frame: SAM2's object score logit, the chosen candidate and its IoU
  std::vector<std::vector<float>> object_score;
  std::vector<std::vector<float>> iou;
  std::vector<std::vector<int>> candidate;
  std::vector<int> order;       // frames in the order they were decoded
  torch::Tensor low_res;        // [K, F, 1, low, low] float32 on the CPU, when keep_low_res
  double encode_seconds = 0.0;  // SAM image encoder
  double track_seconds = 0.0;   // decoding, memory attention, memory encoding, masks
  int peak_memories = 0;        // most frames whose memory features were held at once
};

// language: [K, D] grounding-projector outputs, one object each; cond: the conditioning frames.
VideoMasks propagate_video(const ModelParts& parts, const BundleManifest& manifest, int num_frames,
                           const FrameImageFn& frame_image, const torch::Tensor& language,
                           const std::vector<int>& cond, const VideoOptions& options);

}  // namespace unibiomed
