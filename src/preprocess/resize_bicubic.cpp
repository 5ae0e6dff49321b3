// Bicubic resampling defined as Pillow's ImagingResample computes it for 8-bit images, so that
// the engine's model inputs equal those the released model was trained on (PIL/torchvision
// BICUBIC). The definition, written from Pillow's documented behaviour:
//   - kernel: cubic convolution with a = -0.5, support 2;
//   - when shrinking by s > 1 the kernel is stretched by s (support 2s): antialiasing;
//   - output pixel i is centred at (i + 0.5) * in/out in input coordinates; taps cover
//     [center - support, center + support), clamped to the image, weights normalised to sum 1;
//   - weights are converted to fixed point with 22 fractional bits, rounded half away from 0;
//   - a horizontal pass (skipped when the width is unchanged) rounds to 8 bits, then a vertical
//     pass (skipped when the height is unchanged) does the same.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Fixed-point taps of one output position: first input index and integer weights.
struct Taps {
  int first = 0;
  std::vector<std::int32_t> weights;
};

std::vector<Taps> compute_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale;
  std::vector<Taps> taps(static_cast<std::size_t>(out_size));
  std::vector<double> w;
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    int lo = static_cast<int>(center - support + 0.5);
    int hi = static_cast<int>(center + support + 0.5);
    lo = std::max(lo, 0);
    hi = std::min(hi, in_size);
    w.assign(static_cast<std::size_t>(std::max(hi - lo, 0)), 0.0);
    double total = 0.0;
    for (int x = lo; x < hi; ++x) {
      const double weight = bicubic_kernel((x - center + 0.5) / filter_scale);
      w[static_cast<std::size_t>(x - lo)] = weight;
      total += weight;
    }
    auto& t = taps[static_cast<std::size_t>(i)];
    t.first = lo;
    t.weights.resize(w.size());
    for (std::size_t k = 0; k < w.size(); ++k) {
      const double normalised = total != 0.0 ? w[k] / total : w[k];
      const double fixed = normalised * (1 << kPrecisionBits);
      t.weights[k] = static_cast<std::int32_t>(fixed < 0 ? fixed - 0.5 : fixed + 0.5);
    }
  }
  return taps;
}

std::uint8_t round_fixed(std::int64_t sum) {
  const std::int64_t v = sum >> kPrecisionBits;
  return static_cast<std::uint8_t>(std::clamp<std::int64_t>(v, 0, 255));
}

Image8 resize_horizontal(const Image8& in, int width) {
  const auto taps = compute_taps(in.width, width);
  Image8 out{width, in.height,
             std::vector<std::uint8_t>(static_cast<std::size_t>(width) *
                                       static_cast<std::size_t>(in.height) * 3)};
  for (int y = 0; y < in.height; ++y) {
    const std::uint8_t* row =
        &in.rgb[static_cast<std::size_t>(y) * static_cast<std::size_t>(in.width) * 3];
    std::uint8_t* dst = &out.rgb[static_cast<std::size_t>(y) * static_cast<std::size_t>(width) * 3];
    for (int x = 0; x < width; ++x) {
      const auto& t = taps[static_cast<std::size_t>(x)];
      for (int c = 0; c < 3; ++c) {
        std::int64_t sum = std::int64_t{1} << (kPrecisionBits - 1);
        for (std::size_t k = 0; k < t.weights.size(); ++k) {
          sum +=
              static_cast<std::int64_t>(
                  row[(static_cast<std::size_t>(t.first) + k) * 3 + static_cast<std::size_t>(c)]) *
              t.weights[k];
        }
        dst[static_cast<std::size_t>(x) * 3 + static_cast<std::size_t>(c)] = round_fixed(sum);
      }
    }
  }
  return out;
}

Image8 resize_vertical(const Image8& in, int height) {
  const auto taps = compute_taps(in.height, height);
  const std::size_t row_bytes = static_cast<std::size_t>(in.width) * 3;
  Image8 out{in.width, height,
             std::vector<std::uint8_t>(row_bytes * static_cast<std::size_t>(height))};
  std::vector<std::int64_t> sums(row_bytes);
  for (int y = 0; y < height; ++y) {
    const auto& t = taps[static_cast<std::size_t>(y)];
    std::fill(sums.begin(), sums.end(), std::int64_t{1} << (kPrecisionBits - 1));
    for (std::size_t k = 0; k < t.weights.size(); ++k) {
      const std::uint8_t* src = &in.rgb[(static_cast<std::size_t>(t.first) + k) * row_bytes];
      const std::int64_t weight = t.weights[k];
      for (std::size_t i = 0; i < row_bytes; ++i) sums[i] += src[i] * weight;
    }
    std::uint8_t* dst = &out.rgb[static_cast<std::size_t>(y) * row_bytes];
    for (std::size_t i = 0; i < row_bytes; ++i) dst[i] = round_fixed(sums[i]);
  }
  return out;
}

}  // namespace

Image8 resize_bicubic(const Image8& image, int width, int height) {
  if (width <= 0 || height <= 0) {
    throw usage_error("resize to " + std::to_string(width) + "x" + std::to_string(height) +
                      ": the size must be positive");
  }
  if (image.width <= 0 || image.height <= 0) throw internal_error("resize of an empty image");
  Image8 out = image;
  if (width != image.width) out = resize_horizontal(out, width);
  if (height != image.height) out = resize_vertical(out, height);
  return out;
}

Image8 crop(const Image8& image, int x0, int y0, int width, int height) {
  if (x0 < 0 || y0 < 0 || width <= 0 || height <= 0 || x0 + width > image.width ||
      y0 + height > image.height) {
    throw internal_error("crop outside the image");
  }
  Image8 out{width, height,
             std::vector<std::uint8_t>(static_cast<std::size_t>(width) *
                                       static_cast<std::size_t>(height) * 3)};
  for (int y = 0; y < height; ++y) {
    const auto src =
        image.rgb.begin() + static_cast<std::ptrdiff_t>(((static_cast<std::size_t>(y0 + y) *
                                                          static_cast<std::size_t>(image.width)) +
                                                         static_cast<std::size_t>(x0)) *
                                                        3);
    std::copy(src, src + static_cast<std::ptrdiff_t>(width) * 3,
              out.rgb.begin() + static_cast<std::ptrdiff_t>(y) * width * 3);
  }
  return out;
}

}  // namespace unibiomed
