#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "reader_internal.h"
#include "unibiomed/error.h"

namespace unibiomed::detail {

void check_dimensions(const std::string& what, const std::vector<std::size_t>& size,
                      std::size_t channels, const ReadOptions& options) {
  std::string shape;
  for (const auto n : size) shape += (shape.empty() ? "" : "x") + std::to_string(n);
  for (const auto n : size) {
    if (n == 0) throw input_error(what + ": image has a zero dimension (" + shape + ")");
  }
  // Multiply in long double so that an absurd header cannot overflow the check itself.
  long double total = static_cast<long double>(channels);
  for (const auto n : size) total *= static_cast<long double>(n);
  if (total > static_cast<long double>(options.max_values)) {
    throw input_error(what + ": image of " + shape + " x " + std::to_string(channels) +
                      " values is larger than the limit of " + std::to_string(options.max_values) +
                      " values; refusing to allocate it");
  }
}

void replace_nonfinite(Volume& volume) {
  float lowest = std::numeric_limits<float>::max();
  float highest = std::numeric_limits<float>::lowest();
  std::size_t count = 0;
  for (const float v : volume.voxels) {
    if (std::isfinite(v)) {
      lowest = std::min(lowest, v);
      highest = std::max(highest, v);
    } else {
      ++count;
    }
  }
  if (count == 0) return;
  if (lowest > highest) lowest = highest = 0.0f;  // nothing finite at all
  for (float& v : volume.voxels) {
    if (std::isnan(v)) {
      v = 0.0f;
    } else if (std::isinf(v)) {
      v = v > 0 ? highest : lowest;
    }
  }
  volume.source.nonfinite_replaced = count;
  volume.source.warnings.push_back(std::to_string(count) +
                                   " NaN/Inf voxels replaced (NaN by 0, +/-Inf by the largest/"
                                   "smallest finite value)");
}

}  // namespace unibiomed::detail
