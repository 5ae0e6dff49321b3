// `unibiomed interpret`: one image or volume in, the model's answer on stdout, and in the output
// folder the masks on the input's own grid, an overlay picture and the result JSON
// (docs/result-format.md).
#pragma once

#include <filesystem>
#include <ostream>
#include <string>

#include "unibiomed/engine.h"
#include "unibiomed/read.h"

namespace unibiomed {

struct InterpretCommand {
  std::string input;
  std::string output_dir;  // "": ./<input name>.unibiomed
  std::string model_dir;   // "": default_model_dir()
  ModelOptions model;
  InterpretRequest request;
  ReadOptions read;
  std::string window;         // CT window preset or "W,L"; "": by body region (default_ct_window)
  std::string axis;           // volumes: axial (default), coronal, sagittal
  std::string llm_frames;     // volumes: spread (default), release, or frames "0,40,80"
  std::string prompt_frames;  // volumes: seen (the llm_frames, as the release), every, or "": the
                              // model's video.prompt_frames
  bool json = false;          // stdout gets the result JSON instead of the text
  bool progress = false;      // a line on `log` at the start of each stage
};

// The folder a run writes into when none is given: <current dir>/<input name>.unibiomed.
std::filesystem::path default_output_dir(const std::filesystem::path& input);

// Reads the image, loads the model, interprets, writes the outputs (each atomically, the result
// JSON last), prints the answer on `out`. Throws Error naming the file or value at fault.
void run_interpret(const InterpretCommand& command, std::ostream& out, std::ostream& log);

}  // namespace unibiomed
