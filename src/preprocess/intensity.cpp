#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {
namespace {

Window from_width_level(double width, double level, const std::string& name) {
  return Window{level - width / 2.0, level + width / 2.0, name};
}

bool parse_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(out);
}

template <typename T>
double percentile_of(std::vector<T>& values, double q) {
  if (values.empty()) throw internal_error("percentile of an empty set");
  // numpy's "linear" method: position q/100 * (n - 1) between the order statistics.
  const double position = q / 100.0 * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(below),
                   values.end());
  const double low = values[below];
  double high = low;
  if (above != below) {
    high = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(below) + 1, values.end());
  }
  const double fraction = position - static_cast<double>(below);
  // numpy computes a + (b - a) * t, switching to b - (b - a) * (1 - t) when t >= 0.5.
  return fraction >= 0.5 ? high - (high - low) * (1.0 - fraction) : low + (high - low) * fraction;
}

}  // namespace

double percentile(std::vector<float>& values, double q) {
  return percentile_of(values, q);
}
double percentile(std::vector<double>& values, double q) {
  return percentile_of(values, q);
}

const std::vector<Window>& window_presets() {
  // The first six are BiomedParse's (inherited by the UniBiomed release); brain, bone and soft
  // are the usual radiology windows W80/L40, W1800/L400 and W400/L40.
  static const std::vector<Window> kPresets = {
      {-150, 250, "abdomen"}, {-1000, 1000, "lung"}, {-55, 200, "pelvis"},
      {-25, 230, "liver"},    {-68, 187, "colon"},   {-100, 200, "pancreas"},
      {0, 80, "brain"},       {-500, 1300, "bone"},  {-160, 240, "soft"},
  };
  return kPresets;
}

Window parse_window(const std::string& text) {
  for (const auto& preset : window_presets()) {
    if (preset.name == text) return preset;
  }
  const auto comma = text.find(',');
  double width = 0.0;
  double level = 0.0;
  if (comma != std::string::npos && parse_double(text.substr(0, comma), width) &&
      parse_double(text.substr(comma + 1), level)) {
    if (width <= 0.0) throw usage_error("CT window '" + text + "': the width must be positive");
    return from_width_level(width, level, text);
  }
  std::string names;
  for (const auto& preset : window_presets()) names += (names.empty() ? "" : ", ") + preset.name;
  throw usage_error("CT window '" + text + "' is neither a preset (" + names +
                    ") nor 'WIDTH,LEVEL'");
}

std::string default_ct_window(const Geometry& g) {
  if (g.size[2] <= 1) return "abdomen";
  double extent = 0.0;
  for (int i = 0; i < 3; ++i) {
    extent = std::max(extent, static_cast<double>(g.size[static_cast<std::size_t>(i)]) *
                                  g.spacing[static_cast<std::size_t>(i)]);
  }
  return extent >= 150.0 && extent <= 300.0 ? "brain" : "abdomen";
}

float window_value(double hu, const Window& window) {
  const double clipped = std::clamp(hu, window.lo, window.hi);
  return static_cast<float>((clipped - window.lo) / (window.hi - window.lo) * 255.0);
}

IntensityRange positive_percentile_range(const std::vector<float>& voxels, double lower_q,
                                         double upper_q) {
  std::vector<float> positive;
  positive.reserve(voxels.size());
  for (const float v : voxels) {
    if (v > 0.0f) positive.push_back(v);
  }
  if (positive.empty()) return {};
  const double lo = percentile(positive, lower_q);
  const double hi = percentile(positive, upper_q);
  return {lo, hi};
}

float percentile_value(double v, const IntensityRange& range) {
  if (!(v > 0.0) || !(range.hi > range.lo)) return 0.0f;
  const double clipped = std::clamp(v, range.lo, range.hi);
  return static_cast<float>((clipped - range.lo) / (range.hi - range.lo) * 255.0);
}

std::string to_string(IntensityRule rule) {
  switch (rule) {
    case IntensityRule::Window:
      return "CT window";
    case IntensityRule::Percentile:
      return "percentile 0.5-99.5 of voxels > 0";
    case IntensityRule::AsIs:
      return "as stored (8-bit)";
  }
  return "";
}

DisplayVolume to_display(const Volume& volume, const DisplayOptions& options) {
  DisplayVolume out;
  out.volume.geometry = volume.geometry;
  out.volume.channels = volume.channels;
  out.volume.modality = volume.modality;
  out.volume.source = volume.source;
  out.volume.voxels.resize(volume.voxels.size());
  auto& dst = out.volume.voxels;

  if (volume.modality == Modality::CT && volume.channels == 1) {
    out.rule = IntensityRule::Window;
    out.window = parse_window(options.window.empty() ? "abdomen" : options.window);
    std::transform(volume.voxels.begin(), volume.voxels.end(), dst.begin(),
                   [&](float v) { return window_value(v, out.window); });
  } else if (volume.source.pixel_type == "uint8" || volume.channels > 1) {
    out.rule = IntensityRule::AsIs;
    // Colour stored with more than 8 bits per channel is brought to 0..255 by its full scale.
    const double scale = volume.source.pixel_type == "uint16" ? 255.0 / 65535.0 : 1.0;
    std::transform(volume.voxels.begin(), volume.voxels.end(), dst.begin(), [&](float v) {
      return static_cast<float>(std::clamp(static_cast<double>(v) * scale, 0.0, 255.0));
    });
  } else {
    out.rule = IntensityRule::Percentile;
    out.range = positive_percentile_range(volume.voxels);
    std::transform(volume.voxels.begin(), volume.voxels.end(), dst.begin(),
                   [&](float v) { return percentile_value(v, out.range); });
  }
  return out;
}

}  // namespace unibiomed
