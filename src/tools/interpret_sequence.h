// `unibiomed interpret` on a volume or a cine: the input made into a frame sequence in display
// orientation, and the masks brought back onto the input's own grid. Internal to the tool.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "results/results.h"
#include "unibiomed/engine.h"
#include "unibiomed/interpret.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {

struct FrameSequence {
  std::shared_ptr<const Volume> display;  // 0..255, resliced to the frames' orientation
  AxisMap map;                            // input grid -> frame grid
  std::string slicing;                    // "axial", "coronal", "sagittal" or "frames"
  std::string display_text;               // how intensities were mapped
  InputFrames frames;                     // reads from display
  std::vector<std::string> warnings;
};

// Slices `volume` along command.axis (canonical orientation; a cine keeps its frames as they
// are), maps intensities (command.window, or the default per body region for CT), and sets the
// frame rule from command.llm_frames. Throws Error(Usage) for a bad --axis or --llm-frames,
// Error(Input) for slices the model cannot take.
FrameSequence make_frame_sequence(const Volume& volume, const InterpretCommand& command);

// Writes one NIfTI mask per finding on the input's exact grid and a montage overlay of the
// slices the masks occupy; fills the mask and overlay file names in context.
void write_sequence_outputs(const FrameSequence& sequence, const Volume& input,
                            const Interpretation& result, const std::filesystem::path& dir,
                            ResultContext& context);

}  // namespace unibiomed
