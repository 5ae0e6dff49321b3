// The results stage: the phrase each [SEG] names, the measures of each mask, the result JSON
// (docs/result-format.md) and the plain text printed on stdout, and the names of the files a
// run writes. No LibTorch, no imaging libraries: only the engine's result structs.
#pragma once

#include <array>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "unibiomed/engine.h"
#include "unibiomed/volume.h"

namespace unibiomed {

// The phrase each [SEG] of an answer refers to, in order (one per [SEG]); a port of the Python
// reference's seg_phrases (tools/unibiomed_ref/prompt.py), with Python's str semantics:
//   - the text between <p> and </p> just before the [SEG] (stripped), when nothing but
//     " ,.;:" follows the last </p> before it;
//   - else the requested target: the i-th for the i-th [SEG], the last one repeated;
//   - else the sentence around the [SEG] (from the last '.' or newline before it to the first
//     '.' or newline after it), the added tokens removed and whitespace runs collapsed.
std::vector<std::string> seg_phrases(const std::string& answer,
                                     const std::vector<std::string>& targets = {});

// Fills area_px, area_mm2 (area_px * sx * sy when the pixel spacing is known) and box (inclusive
// x0, y0, x1, y1 of the nonzero pixels; none when the mask is empty) from f.mask, a row-major
// height x width mask. Throws Error(Internal) when the mask does not have width x height pixels.
void measure_finding(Finding& f, int width, int height,
                     const std::optional<std::array<double, 2>>& spacing_mm);

// The same for a frame sequence's mask (frames x height x width): area_px counts voxels, box is
// the union over the frames, frame_range and frames_with_mask where it lies, volume_ml =
// voxels x the three spacings / 1000 when they are known (column, row, slice), area_mm2 none.
void measure_frames(Finding& f, int width, int height, int frames,
                    const std::optional<std::array<double, 3>>& spacing_mm);

// What the result JSON says besides the interpretation: the input, the model, the files.
struct ResultContext {
  std::string input_path;
  std::string input_format;  // as the reader names it: "NIfTI", "PNG", "DICOM series", ...
  Geometry input_geometry;
  std::string model_name;
  std::string model_dir;
  bool demo = false;   // the model is a demo bundle (random or tiny weights), not the release
  std::string device;  // "cpu", "cuda:0"
  std::string dtype;   // "fp32", "fp16", "bf16"
  std::vector<std::string> mask_files;  // per finding, names in the output folder; may be empty
  std::string overlay_file;             // name in the output folder; empty: none written
  // Frame sequences: how the input became frames ("axial", "coronal", "sagittal": slices of the
  // canonical orientation; "frames": the frames of a cine as stored).
  std::string slicing;
  std::string display;  // how intensities were mapped to 0..255, e.g. "window brain (80,40)"
};

// The result document (docs/result-format.md). Never holds mask pixels.
nlohmann::json interpretation_to_json(const Interpretation& r, const ResultContext& ctx);

// The text for stdout: each answer with every [SEG] replaced by "[mask N]" (N: the finding's
// 1-based number) and the <p> </p> markers removed, then one line per finding.
std::string interpretation_text(const Interpretation& r);

// A file-name-safe form of a phrase: lower-case ASCII letters and digits, every other run of
// bytes one '_', no '_' at either end, at most 40 characters; "finding" when nothing is left.
std::string finding_slug(const std::string& phrase);

// "mask_NN_<slug>.png" for picture inputs, "mask_NN_<slug>.nii.gz" for inputs with a geometry;
// NN: the 1-based finding number, two digits at least.
std::string mask_file_name(std::size_t number, const std::string& phrase, bool picture_input);

}  // namespace unibiomed
