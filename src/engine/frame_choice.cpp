#include "engine/frame_choice.h"

#include <algorithm>
#include <cmath>

#include "unibiomed/engine.h"
#include "unibiomed/error.h"

namespace unibiomed {

FrameRule parse_frame_rule(const std::string& name) {
  if (name == "release") return FrameRule::Release;
  if (name == "spread") return FrameRule::Spread;
  throw usage_error("--llm-frames '" + name + "': expected release, spread or a list of frames");
}

std::string to_string(FrameRule rule) {
  return rule == FrameRule::Release ? "release" : "spread";
}

std::vector<int> release_llm_frames(int count, int n) {
  std::vector<int> frames;
  for (int i = 0; i < std::min(count, n); ++i) frames.push_back(i);
  return frames;
}

double foreground_fraction(const Image8& frame) {
  const std::size_t pixels =
      static_cast<std::size_t>(frame.width) * static_cast<std::size_t>(frame.height);
  if (pixels == 0) return 0.0;
  std::size_t on = 0;
  for (std::size_t p = 0; p < pixels; ++p) {
    const std::uint8_t* rgb = &frame.rgb[p * 3];
    if (rgb[0] > 12 || rgb[1] > 12 || rgb[2] > 12) ++on;
  }
  return static_cast<double>(on) / static_cast<double>(pixels);
}

std::vector<int> spread_llm_frames(const std::vector<double>& foreground, int n) {
  const int count = static_cast<int>(foreground.size());
  if (n < 1) throw internal_error("spread_llm_frames: no frames asked for");
  if (count <= n) return release_llm_frames(count, count);
  const double most = *std::max_element(foreground.begin(), foreground.end());
  int first = 0;
  int last = count - 1;
  if (most > 0.0) {
    while (foreground[static_cast<std::size_t>(first)] < 0.25 * most) ++first;
    while (foreground[static_cast<std::size_t>(last)] < 0.25 * most) --last;
  }
  const double span = static_cast<double>(last - first + 1);
  std::vector<int> frames;
  for (int i = 0; i < n; ++i) {
    const int f = first + static_cast<int>(std::floor((i + 0.5) * span / n));
    if (frames.empty() || frames.back() != f) frames.push_back(f);
  }
  return frames;
}

}  // namespace unibiomed
