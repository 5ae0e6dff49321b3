// The measures of a finding's mask: pixel count, physical area, bounding box.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "results/results.h"
#include "unibiomed/error.h"

namespace unibiomed {

namespace {

// Voxels, in-plane box, and the frames of a frames x height x width mask.
struct MaskExtent {
  std::size_t voxels = 0;
  std::size_t frames_with_mask = 0;
  std::optional<std::array<int, 4>> box;
  std::optional<std::array<int, 2>> frame_range;
};

MaskExtent mask_extent(const std::vector<std::uint8_t>& mask, int width, int height, int frames) {
  const std::size_t plane = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  if (width < 0 || height < 0 || frames < 1 ||
      mask.size() != plane * static_cast<std::size_t>(frames)) {
    throw internal_error("mask of " + std::to_string(mask.size()) + " voxels for " +
                         std::to_string(width) + "x" + std::to_string(height) + "x" +
                         std::to_string(frames));
  }
  MaskExtent e;
  int x0 = width, y0 = height, x1 = -1, y1 = -1, z0 = -1, z1 = -1;
  for (int z = 0; z < frames; ++z) {
    std::size_t on = 0;
    for (int y = 0; y < height; ++y) {
      const std::uint8_t* row = mask.data() + plane * static_cast<std::size_t>(z) +
                                static_cast<std::size_t>(y) * static_cast<std::size_t>(width);
      for (int x = 0; x < width; ++x) {
        if (row[x] == 0) continue;
        ++on;
        x0 = std::min(x0, x);
        x1 = std::max(x1, x);
        y0 = std::min(y0, y);
        y1 = std::max(y1, y);
      }
    }
    if (on == 0) continue;
    e.voxels += on;
    ++e.frames_with_mask;
    if (z0 < 0) z0 = z;
    z1 = z;
  }
  if (e.voxels > 0) {
    e.box = std::array<int, 4>{x0, y0, x1, y1};
    e.frame_range = std::array<int, 2>{z0, z1};
  }
  return e;
}

}  // namespace

void measure_finding(Finding& f, int width, int height,
                     const std::optional<std::array<double, 2>>& spacing_mm) {
  const MaskExtent e = mask_extent(f.mask, width, height, 1);
  f.area_px = e.voxels;
  f.area_mm2.reset();
  if (spacing_mm) {
    f.area_mm2 = static_cast<double>(e.voxels) * (*spacing_mm)[0] * (*spacing_mm)[1];
  }
  f.box = e.box;
}

void measure_frames(Finding& f, int width, int height, int frames,
                    const std::optional<std::array<double, 3>>& spacing_mm) {
  const MaskExtent e = mask_extent(f.mask, width, height, frames);
  f.area_px = e.voxels;
  f.area_mm2.reset();
  f.box = e.box;
  f.frame_range = e.frame_range;
  f.frames_with_mask = e.frames_with_mask;
  f.volume_ml.reset();
  if (spacing_mm) {
    const auto& s = *spacing_mm;
    f.volume_ml = static_cast<double>(e.voxels) * s[0] * s[1] * s[2] / 1000.0;
  }
}

}  // namespace unibiomed
