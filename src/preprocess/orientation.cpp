#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {
namespace {

// Copies voxels (with `channels` interleaved values each) from the input grid to the output
// grid of `map`. Output index o maps to input index perm/flip as AxisMap defines.
template <typename T>
std::vector<T> permute_voxels(const std::vector<T>& src, const std::array<std::size_t, 3>& in_size,
                              const AxisMap& map, std::size_t channels) {
  std::array<std::size_t, 3> out_size{};
  for (int i = 0; i < 3; ++i) out_size[i] = in_size[map.perm[i]];
  const std::array<std::size_t, 3> in_stride{channels, channels * in_size[0],
                                             channels * in_size[0] * in_size[1]};
  // For each output axis: the input stride it walks, and the input offset of output index 0.
  std::array<std::ptrdiff_t, 3> step{};
  std::ptrdiff_t base = 0;
  for (int i = 0; i < 3; ++i) {
    const auto stride = static_cast<std::ptrdiff_t>(in_stride[map.perm[i]]);
    if (map.flip[i]) {
      base += static_cast<std::ptrdiff_t>(out_size[i] - 1) * stride;
      step[i] = -stride;
    } else {
      step[i] = stride;
    }
  }
  std::vector<T> dst(src.size());
  std::size_t out = 0;
  for (std::size_t z = 0; z < out_size[2]; ++z) {
    for (std::size_t y = 0; y < out_size[1]; ++y) {
      std::ptrdiff_t in = base + static_cast<std::ptrdiff_t>(z) * step[2] +
                          static_cast<std::ptrdiff_t>(y) * step[1];
      for (std::size_t x = 0; x < out_size[0]; ++x, in += step[0]) {
        for (std::size_t c = 0; c < channels; ++c) {
          dst[out++] = src[static_cast<std::size_t>(in) + c];
        }
      }
    }
  }
  return dst;
}

}  // namespace

AxisMap AxisMap::inverse() const {
  AxisMap inv;
  for (int i = 0; i < 3; ++i) {
    inv.perm[perm[i]] = i;
    inv.flip[perm[i]] = flip[i];
  }
  return inv;
}

AxisMap AxisMap::then(const AxisMap& next) const {
  // next's output axis i reads this map's output axis next.perm[i], which reads input axis
  // perm[next.perm[i]]; the flips compose by exclusive or.
  AxisMap combined;
  for (int i = 0; i < 3; ++i) {
    combined.perm[i] = perm[next.perm[i]];
    combined.flip[i] = flip[next.perm[i]] != next.flip[i];
  }
  return combined;
}

bool AxisMap::is_identity() const {
  for (int i = 0; i < 3; ++i) {
    if (perm[i] != i || flip[i]) return false;
  }
  return true;
}

SliceAxis parse_slice_axis(const std::string& name) {
  if (name == "axial") return SliceAxis::Axial;
  if (name == "coronal") return SliceAxis::Coronal;
  if (name == "sagittal") return SliceAxis::Sagittal;
  throw usage_error("slice axis '" + name + "' is not one of axial, coronal, sagittal");
}

std::string to_string(SliceAxis axis) {
  switch (axis) {
    case SliceAxis::Axial:
      return "axial";
    case SliceAxis::Coronal:
      return "coronal";
    case SliceAxis::Sagittal:
      return "sagittal";
  }
  return "";
}

AxisMap canonical_axis_map(const Geometry& geometry) {
  // Assign index axes to physical axes greedily by the largest |cosine|, so that an oblique
  // grid goes to the physical axes it is closest to and each physical axis is used once.
  AxisMap map;
  std::array<bool, 3> axis_used{false, false, false};
  std::array<bool, 3> physical_used{false, false, false};
  for (int round = 0; round < 3; ++round) {
    int best_axis = -1;
    int best_physical = -1;
    double best = -1.0;
    for (int axis = 0; axis < 3; ++axis) {
      if (axis_used[axis]) continue;
      const auto d = geometry.axis_direction(axis);
      for (int physical = 0; physical < 3; ++physical) {
        if (physical_used[physical]) continue;
        if (std::fabs(d[physical]) > best) {
          best = std::fabs(d[physical]);
          best_axis = axis;
          best_physical = physical;
        }
      }
    }
    axis_used[best_axis] = true;
    physical_used[best_physical] = true;
    map.perm[best_physical] = best_axis;
    map.flip[best_physical] = geometry.axis_direction(best_axis)[best_physical] < 0.0;
  }
  return map;
}

AxisMap slicing_axis_map(const Geometry& geometry, SliceAxis axis) {
  // From the canonical grid (x to L, y to P, z to S) to (columns, rows, slices).
  AxisMap view;
  switch (axis) {
    case SliceAxis::Axial:
      view = AxisMap{{0, 1, 2}, {false, false, false}};
      break;
    case SliceAxis::Coronal:
      view = AxisMap{{0, 2, 1}, {false, true, false}};
      break;
    case SliceAxis::Sagittal:
      view = AxisMap{{1, 2, 0}, {false, true, false}};
      break;
  }
  return canonical_axis_map(geometry).then(view);
}

Geometry reslice(const Geometry& geometry, const AxisMap& map) {
  Geometry out;
  std::array<double, 3> first_index{};
  for (int i = 0; i < 3; ++i) {
    const int source = map.perm[i];
    out.size[i] = geometry.size[source];
    out.spacing[i] = geometry.spacing[source];
    const double sign = map.flip[i] ? -1.0 : 1.0;
    for (int row = 0; row < 3; ++row)
      out.direction[row * 3 + i] = sign * geometry.direction[row * 3 + source];
    if (map.flip[i]) first_index[source] = static_cast<double>(geometry.size[source] - 1);
  }
  out.origin = geometry.index_to_point(first_index);
  return out;
}

Volume reslice(const Volume& volume, const AxisMap& map) {
  Volume out;
  out.geometry = reslice(volume.geometry, map);
  out.channels = volume.channels;
  out.modality = volume.modality;
  out.source = volume.source;
  out.voxels = permute_voxels(volume.voxels, volume.geometry.size, map,
                              static_cast<std::size_t>(volume.channels));
  return out;
}

LabelMap reslice(const LabelMap& labels, const AxisMap& map) {
  LabelMap out;
  out.geometry = reslice(labels.geometry, map);
  out.names = labels.names;
  out.labels = permute_voxels(labels.labels, labels.geometry.size, map, 1);
  return out;
}

}  // namespace unibiomed
