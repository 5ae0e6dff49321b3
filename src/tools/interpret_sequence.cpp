#include "tools/interpret_sequence.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "unibiomed/error.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

std::string display_description(const DisplayVolume& d) {
  char text[160];
  switch (d.rule) {
    case IntensityRule::Window:
      std::snprintf(text, sizeof text, "CT window %s (%g to %g HU)", d.window.name.c_str(),
                    d.window.lo, d.window.hi);
      break;
    case IntensityRule::Percentile:
      std::snprintf(text, sizeof text,
                    "0.5 to 99.5 percentile of the voxels > 0 (%g to %g) to 0..255", d.range.lo,
                    d.range.hi);
      break;
    case IntensityRule::AsIs:
      std::snprintf(text, sizeof text, "8-bit values as stored");
      break;
  }
  return text;
}

// --llm-frames: "spread" (default), "release", or a comma-separated list of 0-based frames.
void set_frame_rule(InputFrames& frames, const std::string& text) {
  if (text.empty() || text == "spread" || text == "release") {
    frames.rule = parse_frame_rule(text.empty() ? "spread" : text);
    return;
  }
  std::stringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) {
    char* end = nullptr;
    const long value = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || value < 0 || value >= frames.count) {
      throw usage_error("--llm-frames '" + text + "': expected release, spread or frames 0.." +
                        std::to_string(frames.count - 1) + " separated by commas");
    }
    frames.llm_frames.push_back(static_cast<int>(value));
  }
  if (frames.llm_frames.empty()) throw usage_error("--llm-frames: no frame given");
}

std::string mm(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

}  // namespace

FrameSequence make_frame_sequence(const Volume& volume, const InterpretCommand& command) {
  FrameSequence seq;
  const bool cine = volume.source.multiframe;
  DisplayOptions options;
  options.window = command.window;
  if (volume.modality == Modality::CT && options.window.empty()) {
    options.window = default_ct_window(volume.geometry);
  }
  DisplayVolume display = to_display(volume, options);
  seq.display_text = display_description(display);
  if (cine) {
    seq.slicing = "frames";
  } else {
    const SliceAxis axis = parse_slice_axis(command.axis.empty() ? "axial" : command.axis);
    seq.map = slicing_axis_map(volume.geometry, axis);
    seq.slicing = to_string(axis);
  }
  seq.display = std::make_shared<const Volume>(
      seq.map.is_identity() ? std::move(display.volume) : reslice(display.volume, seq.map));
  const Geometry& g = seq.display->geometry;
  InputFrames& frames = seq.frames;
  frames.width = static_cast<int>(g.size[0]);
  frames.height = static_cast<int>(g.size[1]);
  frames.count = static_cast<int>(g.size[2]);
  try {
    check_image_size(frames.width, frames.height);
  } catch (const Error& e) {
    throw input_error(command.input + ": " + seq.slicing + " slices: " + e.what());
  }
  frames.frame = [volume = seq.display](int z) {
    return frame_rgb8(*volume, static_cast<std::size_t>(z));
  };
  set_frame_rule(frames, command.llm_frames);
  if (!command.prompt_frames.empty()) {
    frames.prompt_frames = prompt_frames_named(command.prompt_frames);
    if (!frames.prompt_frames) {
      throw usage_error("--prompt-frames '" + command.prompt_frames + "': expected seen or every");
    }
  }

  if (!cine) {
    frames.spacing_mm = {{g.spacing[0], g.spacing[1], g.spacing[2]}};
    const double wide = std::max(g.spacing[0], g.spacing[1]);
    const double narrow = std::min(g.spacing[0], g.spacing[1]);
    if (narrow > 0.0 && wide / narrow > 2.0) {
      seq.warnings.push_back(seq.slicing + " slices have " + mm(g.spacing[0]) + " x " +
                             mm(g.spacing[1]) +
                             " mm pixels: the model sees each slice resized to a square, so the "
                             "anatomy looks stretched; slicing across the thick axis (--axis) "
                             "avoids that");
    }
    if (g.spacing[2] > 5.0) {
      seq.warnings.push_back(seq.slicing + " slices are " + mm(g.spacing[2]) +
                             " mm apart: masks are carried across large steps, and structures "
                             "thinner than a slice may be missed");
    }
  }
  return seq;
}

void write_sequence_outputs(const FrameSequence& seq, const Volume& input,
                            const Interpretation& result, const std::filesystem::path& dir,
                            ResultContext& context) {
  const Geometry& frame_grid = seq.display->geometry;
  const AxisMap back = seq.map.inverse();
  LabelMap all;
  all.geometry = frame_grid;
  all.labels.assign(frame_grid.voxel_count(), 0);
  all.names = {"background"};
  for (std::size_t i = 0; i < result.findings.size(); ++i) {
    const Finding& finding = result.findings[i];
    if (finding.mask.size() != frame_grid.voxel_count()) {
      throw internal_error("finding " + std::to_string(i + 1) + " has " +
                           std::to_string(finding.mask.size()) + " voxels for a grid of " +
                           std::to_string(frame_grid.voxel_count()));
    }
    const std::string phrase = finding.phrase.empty() ? "finding" : finding.phrase;
    LabelMap mask;
    mask.geometry = frame_grid;
    mask.labels = finding.mask;
    mask.names = {"background", phrase};
    LabelMap on_input = seq.map.is_identity() ? std::move(mask) : reslice(mask, back);
    if (!on_input.geometry.same_grid(input.geometry, 1e-4)) {
      throw internal_error("the mask of finding " + std::to_string(i + 1) +
                           " does not come back onto the input's grid");
    }
    on_input.geometry = input.geometry;  // exactly the input's, to the last bit
    const std::string name = mask_file_name(i + 1, finding.phrase, false);
    write_label_map(on_input, dir / name);
    context.mask_files.push_back(name);
    if (i + 1 < 256) {
      const auto label = static_cast<std::uint8_t>(i + 1);
      for (std::size_t p = 0; p < finding.mask.size(); ++p) {
        if (finding.mask[p]) all.labels[p] = label;
      }
      all.names.push_back(std::to_string(i + 1) + " " + phrase);
    }
  }
  write_png(render_montage(*seq.display, all, 16), dir / "overlay.png");
  context.overlay_file = "overlay.png";
  context.slicing = seq.slicing;
  context.display = seq.display_text;
}

}  // namespace unibiomed
