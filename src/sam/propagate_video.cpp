#include "sam/propagate_video.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "unibiomed/error.h"
#include "unibiomed/model_input.h"

namespace unibiomed {
namespace {

int floor_div(int a, int b) {
  const int q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

template <typename T>
T arch_value(const BundleManifest& m, const char* key, T fallback) {
  if (!m.raw.contains("architecture")) return fallback;
  const auto& arch = m.raw.at("architecture");
  if (!arch.contains("sam") || !arch.at("sam").contains(key)) return fallback;
  return arch.at("sam").at(key).get<T>();
}

// SAM2's select_closest_cond_frames: all conditioning frames when max_cond allows, else the
// nearest before, the nearest at or after, then the closest others. Returns (selected, rest).
std::pair<std::vector<int>, std::vector<int>> select_cond_frames(int frame,
                                                                 const std::vector<int>& cond,
                                                                 int max_cond) {
  if (max_cond == -1 || static_cast<int>(cond.size()) <= max_cond) return {cond, {}};
  std::vector<int> selected;
  int before = -1;
  int after = -1;
  for (const int t : cond) {
    if (t < frame) before = std::max(before, t);
    if (t >= frame && (after < 0 || t < after)) after = t;
  }
  if (before >= 0) selected.push_back(before);
  if (after >= 0) selected.push_back(after);
  std::vector<int> others;
  for (const int t : cond) {
    if (std::find(selected.begin(), selected.end(), t) == selected.end()) others.push_back(t);
  }
  std::stable_sort(others.begin(), others.end(),
                   [frame](int a, int b) { return std::abs(a - frame) < std::abs(b - frame); });
  for (const int t : others) {
    if (static_cast<int>(selected.size()) >= max_cond) break;
    selected.push_back(t);
  }
  std::vector<int> rest;
  for (const int t : cond) {
    if (std::find(selected.begin(), selected.end(), t) == selected.end()) rest.push_back(t);
  }
  return {selected, rest};
}

double seconds_since(std::chrono::steady_clock::time_point start, bool cuda) {
  if (cuda) torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// What the propagation keeps per object batch for each frame it decoded.
struct Bank {
  std::map<int, torch::Tensor> memory;    // [K, M, h, w], only while a later frame may use it
  std::map<int, torch::Tensor> pointers;  // [K, C], small: all kept
};

struct Decoded {
  torch::Tensor masks, iou, object_score, tokens;
};

Decoded unpack(const std::vector<torch::Tensor>& out, std::int64_t k, std::int64_t low,
               const std::string& part) {
  if (out.size() < 4) {
    throw input_error("model part " + part + " returned " + std::to_string(out.size()) +
                      " tensors, expected 4 (masks, IoU, object scores, mask tokens)");
  }
  expect_shape(out[0], {k, -1, low, low}, part, "mask logits");
  expect_shape(out[1], {k, out[0].size(1)}, part, "predicted IoU");
  expect_shape(out[2], {k, 1}, part, "object scores");
  expect_shape(out[3], {k, out[0].size(1), -1}, part, "mask tokens");
  return {out[0], out[1], out[2], out[3]};
}

}  // namespace

MemoryPolicy memory_policy(const BundleManifest& m) {
  MemoryPolicy p;
  p.num_maskmem = m.sam.num_maskmem;
  p.max_obj_ptrs = m.sam.max_obj_ptrs;
  p.max_cond_frames = arch_value<int>(m, "max_cond_frames_in_attn", -1);
  p.stride = arch_value<int>(m, "memory_temporal_stride_for_eval", 1);
  p.only_obj_ptrs_in_past = arch_value<bool>(m, "only_obj_ptrs_in_the_past_for_eval", true);
  const std::string manifest_file = (m.dir / "manifest.json").string();
  if (p.num_maskmem < 1 || p.max_obj_ptrs < 1 || p.stride < 1 ||
      (p.max_cond_frames != -1 && p.max_cond_frames < 2)) {
    throw input_error(manifest_file +
                      ": SAM2 memory settings out of range (num_maskmem, max_obj_ptrs, "
                      "memory_temporal_stride_for_eval, max_cond_frames_in_attn)");
  }
  return p;
}

MemorySelection select_memory(int frame, const std::vector<int>& cond, const std::set<int>& tracked,
                              const MemoryPolicy& policy, int direction, int num_frames) {
  const bool reverse = direction < 0;
  const auto [selected, unselected] = select_cond_frames(frame, cond, policy.max_cond_frames);
  const auto available = [&](int t) {
    return tracked.count(t) > 0 ||
           std::find(unselected.begin(), unselected.end(), t) != unselected.end();
  };
  MemorySelection s;
  const int n = policy.num_maskmem;
  for (const int t : selected) {
    s.mem_frames.push_back(t);
    s.tpos_rows.push_back(n - 1);
  }
  const int r = policy.stride;
  for (int t_pos = 1; t_pos < n; ++t_pos) {
    const int t_rel = n - t_pos;
    int prev = 0;
    if (t_rel == 1) {
      prev = reverse ? frame + 1 : frame - 1;
    } else if (!reverse) {
      prev = floor_div(frame - 2, r) * r - (t_rel - 2) * r;
    } else {
      prev = -floor_div(-(frame + 2), r) * r + (t_rel - 2) * r;
    }
    if (available(prev)) {
      s.mem_frames.push_back(prev);
      s.tpos_rows.push_back(n - t_pos - 1);
    }
  }
  for (const int t : selected) {
    if (!policy.only_obj_ptrs_in_past || (reverse ? t >= frame : t <= frame)) {
      s.ptr_frames.push_back(t);
    }
  }
  const int pointers = std::min(num_frames, policy.max_obj_ptrs);
  for (int t_diff = 1; t_diff < pointers; ++t_diff) {
    const int t = reverse ? frame + t_diff : frame - t_diff;
    if (t < 0 || t >= num_frames) break;
    if (available(t)) s.ptr_frames.push_back(t);
  }
  return s;
}

std::vector<int> propagation_order(const std::vector<int>& cond, int num_frames) {
  std::vector<int> order(cond);
  const std::set<int> is_cond(cond.begin(), cond.end());
  for (int f = cond.front(); f < num_frames; ++f) {
    if (!is_cond.count(f)) order.push_back(f);
  }
  for (int f = cond.front() - 1; f >= 0; --f) {
    if (!is_cond.count(f)) order.push_back(f);
  }
  return order;
}

VideoMasks propagate_video(const ModelParts& parts, const BundleManifest& m, int num_frames,
                           const FrameImageFn& frame_image, const torch::Tensor& language,
                           const std::vector<int>& cond_in, const VideoOptions& options) {
  std::vector<int> cond(cond_in);
  std::sort(cond.begin(), cond.end());
  cond.erase(std::unique(cond.begin(), cond.end()), cond.end());
  if (num_frames < 1) throw internal_error("propagate_video: no frames");
  if (cond.empty() || cond.front() < 0 || cond.back() >= num_frames) {
    throw internal_error("propagate_video: conditioning frames outside 0.." +
                         std::to_string(num_frames - 1));
  }
  if (options.height < 1 || options.width < 1) {
    throw internal_error("propagate_video: no output size");
  }
  const MemoryPolicy policy = memory_policy(m);
  const Part& tracker = parts.sam_tracker;
  const std::int64_t k = language.size(0);
  const std::int64_t low = m.sam.low_res_size;
  const std::int64_t h = low / 4;
  const int size = m.sam.image_size;
  const bool cuda = parts.device.is_cuda();
  const std::size_t plane =
      static_cast<std::size_t>(options.height) * static_cast<std::size_t>(options.width);

  VideoMasks out;
  out.frames = num_frames;
  out.masks.assign(static_cast<std::size_t>(k),
                   std::vector<std::uint8_t>(plane * static_cast<std::size_t>(num_frames), 0));
  out.object_score.assign(static_cast<std::size_t>(k), std::vector<float>(num_frames, 0.0f));
  out.iou.assign(static_cast<std::size_t>(k), std::vector<float>(num_frames, 0.0f));
  out.candidate.assign(static_cast<std::size_t>(k), std::vector<int>(num_frames, 0));
  if (options.keep_low_res) out.low_res = torch::zeros({k, num_frames, 1, low, low});
  if (k == 0) return out;

  const torch::Tensor lang = language.to(parts.device, parts.dtype);
  const std::set<int> is_cond(cond.begin(), cond.end());
  const int reach = (policy.num_maskmem - 1) * policy.stride + 1;
  const bool backward = cond.front() > 0;
  // Every frame prompted: no frame is tracked, so no memory is ever read.
  const bool needs_memory = static_cast<int>(cond.size()) < num_frames;
  Bank bank;
  std::set<int> tracked;

  // Memories a later frame may still select: the conditioning frames; in the forward pass the
  // last `reach` frames, and the first `reach` after the first conditioning frame when a
  // backward pass follows; in the backward pass the `reach` frames after the current one.
  const auto evict = [&](int frame, int direction) {
    for (auto it = bank.memory.begin(); it != bank.memory.end();) {
      const int t = it->first;
      bool keep = is_cond.count(t) > 0;
      if (direction > 0) {
        keep = keep || t > frame - reach || (backward && t <= cond.front() + reach);
      } else {
        keep = keep || t < frame + reach;
      }
      it = keep ? std::next(it) : bank.memory.erase(it);
    }
  };

  // Best candidate, object pointer, memory, and the frame's output masks.
  const auto finish = [&](int frame, const torch::Tensor& embed, const Decoded& d,
                          bool is_cond_frame) {
    const auto best = tracker.call_tuple("best_mask", {d.masks, d.iou, d.object_score});
    const torch::Tensor& low_res = best.at(0);
    const torch::Tensor& high_res = best.at(1);
    expect_shape(high_res, {k, 1, size, size}, "sam_tracker", "best mask");
    if (needs_memory) {
      bank.pointers[frame] =
          tracker.call_tensor("object_pointer", {d.tokens, d.iou, d.object_score});
      const auto memory = tracker.call_tuple(
          "encode_memory",
          {embed.expand({k, -1, -1, -1}), high_res, d.object_score, is_cond_frame});
      expect_shape(memory.at(0), {k, -1, h, h}, "sam_tracker", "memory features");
      bank.memory[frame] = memory[0];
      out.peak_memories = std::max(out.peak_memories, static_cast<int>(bank.memory.size()));
    }

    const torch::Tensor image =
        torch::upsample_bilinear2d(high_res, {options.height, options.width}, false);
    const torch::Tensor on =
        (image.squeeze(1) > m.sam.mask_threshold).to(torch::kUInt8).to(torch::kCPU).contiguous();
    const torch::Tensor iou = d.iou.to(torch::kFloat32).to(torch::kCPU);
    const torch::Tensor chosen = iou.argmax(1);
    const torch::Tensor score = d.object_score.to(torch::kFloat32).to(torch::kCPU);
    for (std::int64_t i = 0; i < k; ++i) {
      const std::uint8_t* src = on[i].data_ptr<std::uint8_t>();
      std::copy(src, src + plane,
                out.masks[i].begin() + static_cast<std::ptrdiff_t>(plane * frame));
      const std::int64_t c = chosen[i].item<std::int64_t>();
      out.candidate[i][frame] = static_cast<int>(c);
      out.iou[i][frame] = iou[i][c].item<float>();
      out.object_score[i][frame] = score[i][0].item<float>();
    }
    if (options.keep_low_res) out.low_res.select(1, frame).copy_(low_res.to(torch::kCPU));
    out.order.push_back(frame);
    if (options.on_frame) options.on_frame(static_cast<int>(out.order.size()), num_frames);
  };

  // The frames through the SAM2 image encoder in one batch -> (s0, s1, embed, pos).
  const auto encode = [&](const std::vector<int>& batch) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<torch::Tensor> inputs;
    for (const int f : batch) inputs.push_back(to_tensor(sam_input(frame_image(f), size)));
    const torch::Tensor pixels = torch::stack(inputs).to(parts.device, parts.dtype);
    auto features = parts.sam_image.call_tuple("forward", {pixels});
    if (features.size() < 4) {
      throw input_error("model part sam_image_encoder returned " + std::to_string(features.size()) +
                        " tensors, expected 4");
    }
    expect_shape(features[2], {static_cast<std::int64_t>(batch.size()), -1, h, h},
                 "sam_image_encoder", "image embedding");
    out.encode_seconds += seconds_since(start, cuda);
    return features;  // s0, s1, embed, pos
  };

  // 1) the conditioning frames: 2-D decodes with the language embeddings, then their memory.
  // They do not depend on each other: each goes through the image encoder on its own (the
  // encoder's activations are the largest tensors of the run), and up to kCondBatch of them go
  // through the mask decoder in one batch (rows frame-major: frame i, object j -> i * k + j).
  constexpr std::size_t kCondBatch = 8;
  for (std::size_t first = 0; first < cond.size(); first += kCondBatch) {
    const std::vector<int> group(
        cond.begin() + static_cast<std::ptrdiff_t>(first),
        cond.begin() + static_cast<std::ptrdiff_t>(std::min(cond.size(), first + kCondBatch)));
    const auto n = static_cast<std::int64_t>(group.size());
    std::vector<torch::Tensor> s0, s1, embeds;
    for (const int f : group) {
      const auto feats = encode({f});
      s0.push_back(feats[0]);
      s1.push_back(feats[1]);
      embeds.push_back(feats[2]);
    }
    const auto start = std::chrono::steady_clock::now();
    const torch::Tensor embed = torch::cat(embeds);
    const torch::Tensor prompted = tracker.call_tensor("no_memory", {embed});
    const auto per_object = [k](const torch::Tensor& t) { return t.repeat_interleave(k, 0); };
    const Decoded d = unpack(
        parts.sam_decoder.call_tuple("forward", {per_object(prompted), per_object(torch::cat(s0)),
                                                 per_object(torch::cat(s1)), lang.repeat({n, 1})}),
        n * k, low, "sam_mask_decoder");
    for (std::int64_t i = 0; i < n; ++i) {
      const auto rows = [&](const torch::Tensor& t) { return t.narrow(0, i * k, k); };
      finish(group[static_cast<std::size_t>(i)], embed.narrow(0, i, 1),
             {rows(d.masks), rows(d.iou), rows(d.object_score), rows(d.tokens)}, true);
    }
    out.track_seconds += seconds_since(start, cuda);
  }

  // 2) forward from the first conditioning frame, 3) backward from it
  const auto track = [&](int f, int direction) {
    const auto feats = encode({f});
    const auto start = std::chrono::steady_clock::now();
    const MemorySelection sel = select_memory(f, cond, tracked, policy, direction, num_frames);
    std::vector<torch::Tensor> memories;
    for (const int t : sel.mem_frames) memories.push_back(bank.memory.at(t));
    std::vector<torch::Tensor> pointers;
    for (const int t : sel.ptr_frames) pointers.push_back(bank.pointers.at(t));
    const torch::Tensor embed = feats[2];
    const torch::Tensor ptrs = pointers.empty()
                                   ? torch::zeros({0, k, embed.size(1)}, embed.options())
                                   : torch::stack(pointers);
    const torch::Tensor tpos = torch::tensor(sel.tpos_rows, torch::kInt64).to(parts.device);
    const torch::Tensor pix = tracker.call_tensor(
        "condition", {embed.expand({k, -1, -1, -1}), feats[3], torch::stack(memories), tpos, ptrs});
    const Decoded d =
        unpack(tracker.call_tuple("decode_tracked", {pix, feats[0].expand({k, -1, -1, -1}),
                                                     feats[1].expand({k, -1, -1, -1})}),
               k, low, "sam_tracker");
    finish(f, embed, d, false);
    tracked.insert(f);
    evict(f, direction);
    out.track_seconds += seconds_since(start, cuda);
  };
  for (int f = cond.front(); f < num_frames; ++f) {
    if (!is_cond.count(f)) track(f, 1);
  }
  for (int f = cond.front() - 1; f >= 0; --f) track(f, -1);
  return out;
}

}  // namespace unibiomed
