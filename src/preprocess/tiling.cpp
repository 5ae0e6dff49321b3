#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {

TileGrid closest_tile_grid(int width, int height, const TilingOptions& options) {
  if (width <= 0 || height <= 0) throw internal_error("tile grid of an empty image");
  if (options.min_tiles < 1 || options.max_tiles < options.min_tiles) {
    throw usage_error("tile counts must satisfy 1 <= min <= max (got " +
                      std::to_string(options.min_tiles) + ".." + std::to_string(options.max_tiles) +
                      ")");
  }
  // Candidate grids in order of tile count. InternVL sorts a Python set by i*j, which leaves the
  // order inside one count to the set's hashing. It matters only when two grids of one count tie
  // for the best aspect difference, which needs a square grid to be excluded (min_tiles > 1 and
  // max_tiles < 4); here the order inside one count is by columns.
  std::vector<TileGrid> grids;
  for (int cols = 1; cols <= options.max_tiles; ++cols) {
    for (int rows = 1; cols * rows <= options.max_tiles; ++rows) {
      if (cols * rows >= options.min_tiles) grids.push_back({cols, rows});
    }
  }
  std::stable_sort(grids.begin(), grids.end(),
                   [](const TileGrid& a, const TileGrid& b) { return a.tiles() < b.tiles(); });

  const double aspect = static_cast<double>(width) / static_cast<double>(height);
  const double area = static_cast<double>(width) * static_cast<double>(height);
  const double tile_area = static_cast<double>(options.tile_size) * options.tile_size;
  double best_diff = std::numeric_limits<double>::infinity();
  TileGrid best{1, 1};
  for (const auto& grid : grids) {
    const double diff = std::fabs(aspect - static_cast<double>(grid.cols) / grid.rows);
    if (diff < best_diff) {
      best_diff = diff;
      best = grid;
    } else if (diff == best_diff && area > 0.5 * tile_area * grid.tiles()) {
      best = grid;
    }
  }
  return best;
}

std::vector<Image8> dynamic_tiles(const Image8& image, const TilingOptions& options) {
  const TileGrid grid = closest_tile_grid(image.width, image.height, options);
  const int size = options.tile_size;
  const Image8 resized = resize_bicubic(image, size * grid.cols, size * grid.rows);
  std::vector<Image8> tiles;
  tiles.reserve(static_cast<std::size_t>(grid.tiles()) + 1);
  for (int row = 0; row < grid.rows; ++row) {
    for (int col = 0; col < grid.cols; ++col) {
      tiles.push_back(crop(resized, col * size, row * size, size, size));
    }
  }
  if (options.thumbnail && tiles.size() != 1) tiles.push_back(resize_bicubic(image, size, size));
  return tiles;
}

ModelImage normalize_imagenet(const Image8& image) {
  static constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
  static constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
  ModelImage out;
  out.channels = 3;
  out.height = image.height;
  out.width = image.width;
  const std::size_t plane =
      static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height);
  out.data.resize(plane * 3);
  for (std::size_t p = 0; p < plane; ++p) {
    for (std::size_t c = 0; c < 3; ++c) {
      const float v = static_cast<float>(image.rgb[p * 3 + c]) / 255.0f;
      out.data[c * plane + p] = (v - kMean[c]) / kStd[c];
    }
  }
  return out;
}

ModelImage sam_input(const Image8& image, int size) {
  return normalize_imagenet(resize_bicubic(image, size, size));
}

}  // namespace unibiomed
