// Writing results: masks on the input's own grid, and overlay pictures. Every write is atomic:
// the file appears complete under its name, or not at all.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "unibiomed/preprocess.h"
#include "unibiomed/volume.h"

namespace unibiomed {

// Calls write(temp) with a temporary path in the target's folder that keeps the target's
// extension, then renames it onto target. On any failure the temporary file is removed and
// an output error naming target is thrown.
void write_atomically(const std::filesystem::path& target,
                      const std::function<void(const std::filesystem::path& temp)>& write);

// `text` as the file `path`, atomically (through write_atomically).
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// A label map as NIfTI (.nii / .nii.gz; also .nrrd, .mha by extension), uint8, with the exact
// size, spacing, origin and direction of its geometry.
void write_label_map(const LabelMap& labels, const std::filesystem::path& path);

// A 2-D label map as an 8-bit PNG holding the label values.
void write_label_png(const LabelMap& labels, const std::filesystem::path& path);

// An 8-bit RGB picture as PNG.
void write_png(const Image8& image, const std::filesystem::path& path);

// The colour of label v in overlays and legends.
std::array<std::uint8_t, 3> label_colour(std::size_t label);

// The picture with each label filled semi-transparently in its colour, outlined, and named in
// a legend. labels must be 2-D and of the picture's size.
Image8 render_overlay(const Image8& picture, const LabelMap& labels);

// For a volume: a montage of overlays of the slices that hold labels (at most max_slices,
// evenly spread), each captioned with its slice number. display is a display volume (0..255)
// and labels a label map on the same slicing grid.
Image8 render_montage(const Volume& display, const LabelMap& labels, int max_slices = 16);

}  // namespace unibiomed
