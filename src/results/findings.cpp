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

void measure_finding(Finding& f, int width, int height,
                     const std::optional<std::array<double, 2>>& spacing_mm) {
  if (width < 0 || height < 0 ||
      f.mask.size() != static_cast<std::size_t>(width) * static_cast<std::size_t>(height)) {
    throw internal_error("mask of " + std::to_string(f.mask.size()) + " pixels for a " +
                         std::to_string(width) + "x" + std::to_string(height) + " image");
  }
  std::size_t area = 0;
  int x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (int y = 0; y < height; ++y) {
    const std::uint8_t* row =
        f.mask.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(width);
    for (int x = 0; x < width; ++x) {
      if (row[x] == 0) continue;
      ++area;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = y;
    }
  }
  f.area_px = area;
  f.area_mm2.reset();
  if (spacing_mm) {
    f.area_mm2 = static_cast<double>(area) * (*spacing_mm)[0] * (*spacing_mm)[1];
  }
  f.box.reset();
  if (area > 0) f.box = std::array<int, 4>{x0, y0, x1, y1};
}

}  // namespace unibiomed
