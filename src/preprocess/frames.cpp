#include <cstddef>

#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {

Image8 frame_rgb8(const Volume& display, std::size_t z) {
  const auto& size = display.geometry.size;
  if (z >= size[2]) {
    throw internal_error("frame " + std::to_string(z) + " of a volume with " +
                         std::to_string(size[2]) + " slices");
  }
  if (display.channels != 1 && display.channels != 3) {
    throw input_error(display.source.path + ": " + std::to_string(display.channels) +
                      " channels per pixel; only grey and RGB are supported");
  }
  Image8 out;
  out.width = static_cast<int>(size[0]);
  out.height = static_cast<int>(size[1]);
  const std::size_t pixels = size[0] * size[1];
  out.rgb.resize(pixels * 3);
  const std::size_t channels = static_cast<std::size_t>(display.channels);
  const float* src = display.voxels.data() + z * pixels * channels;
  for (std::size_t p = 0; p < pixels; ++p) {
    for (std::size_t c = 0; c < 3; ++c) {
      out.rgb[p * 3 + c] = quantize_u8(src[p * channels + (channels == 1 ? 0 : c)]);
    }
  }
  return out;
}

}  // namespace unibiomed
