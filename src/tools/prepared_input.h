// The three stages of interpreting one study, shared by `interpret` and `batch`: the input read
// and made ready for the model (no model needed, so a batch reads ahead while the model runs),
// the model run, and the outputs written. Internal to the tools.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tools/interpret_sequence.h"
#include "unibiomed/engine.h"
#include "unibiomed/interpret.h"
#include "unibiomed/volume.h"

namespace unibiomed {

struct PreparedInput {
  std::string path;
  Volume volume;  // as read, on its own grid
  bool sequence = false;
  bool picture = false;                 // PNG/JPEG/TIFF/BMP: masks as PNG, areas in pixels
  InputImage image;                     // 2-D inputs
  std::optional<FrameSequence> frames;  // volumes and cines
};

// Reads command.input and makes it the image or frame sequence the engine takes (display
// mapping, slicing along command.axis, frame rule, box check). Throws Error naming the input.
PreparedInput prepare_input(const InterpretCommand& command);

// Runs the model on a prepared input; the reader's and the slicing's warnings come first.
Interpretation interpret_prepared(Session& session, const PreparedInput& input,
                                  const InterpretRequest& request, const StageCallback& stage = {});

// Writes the masks on the input's grid, the overlay and result.json (last, each atomically)
// into output_dir, creating it; returns the result document.
nlohmann::json write_outputs(const PreparedInput& input, const Interpretation& result,
                             const Model& model, const std::filesystem::path& model_dir,
                             const std::filesystem::path& output_dir);

}  // namespace unibiomed
