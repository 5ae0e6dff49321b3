// Preprocessing: from a Volume read off disk to the images the two model inputs see.
//
//   intensities  CT window or percentile normalisation to 0..255 (BiomedParse's rules)
//   orientation  canonical LPS orientation and slicing along an anatomical axis, invertible
//   frames       one slice as an 8-bit RGB image
//   resize       bicubic resize defined exactly as Pillow's (the released model's training)
//   tiling       InternVL dynamic tiling for the vision encoder, direct resize for SAM
//
// Nothing here needs ITK or OpenCV: it is part of the model runtime.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "unibiomed/volume.h"

namespace unibiomed {

// ---- intensities ---------------------------------------------------------------------------

struct Window {
  double lo = 0.0;
  double hi = 0.0;
  std::string name;  // preset name, or "W,L" as given
};

// Presets: abdomen, lung, pelvis, liver, colon, pancreas, brain, bone, soft; or "W,L" (width,
// level). Throws a usage error naming the value when it is neither.
Window parse_window(const std::string& text);
const std::vector<Window>& window_presets();

// The CT window a volume gets when none is asked for, by body region: "brain" for a 3-D
// volume whose largest physical extent is 150..300 mm (a head), else "abdomen" (BiomedParse's
// default). 2-D images always get "abdomen".
std::string default_ct_window(const Geometry& geometry);

// Clip to the window and scale linearly to 0..255.
float window_value(double hu, const Window& window);

// numpy.percentile with linear interpolation, q in [0,100]. values is reordered.
double percentile(std::vector<float>& values, double q);
double percentile(std::vector<double>& values, double q);

struct IntensityRange {
  double lo = 0.0;
  double hi = 0.0;
};
// The 0.5 and 99.5 percentiles of the voxels > 0 (BiomedParse's MR rule).
IntensityRange positive_percentile_range(const std::vector<float>& voxels, double lower_q = 0.5,
                                         double upper_q = 99.5);
// Clip to the range and scale to 0..255; voxels that were <= 0 become 0.
float percentile_value(double v, const IntensityRange& range);

// Quantisation of 0..255 floats to 8 bits: truncation, as numpy's astype(uint8) on the
// release's preprocessed slices.
inline std::uint8_t quantize_u8(float v) {
  if (!(v > 0.0f)) return 0;
  if (v >= 255.0f) return 255;
  return static_cast<std::uint8_t>(v);
}

enum class IntensityRule { Window, Percentile, AsIs };
std::string to_string(IntensityRule rule);

struct DisplayOptions {
  std::string window;  // CT window preset or "W,L"; empty: the CT default (abdomen)
};

// A Volume mapped to display intensities 0..255 (float), with the rule that was used.
struct DisplayVolume {
  Volume volume;
  IntensityRule rule = IntensityRule::AsIs;
  Window window;         // when rule == Window
  IntensityRange range;  // when rule == Percentile
};

// CT -> window; 8-bit sources (grey or colour) -> as they are; everything else -> percentile.
DisplayVolume to_display(const Volume& volume, const DisplayOptions& options = {});

// ---- orientation and slicing --------------------------------------------------------------

// Output index axis i is input axis perm[i], reversed when flip[i].
struct AxisMap {
  std::array<int, 3> perm{0, 1, 2};
  std::array<bool, 3> flip{false, false, false};

  AxisMap inverse() const;
  AxisMap then(const AxisMap& next) const;  // apply this, then next
  bool is_identity() const;
};

enum class SliceAxis { Axial, Coronal, Sagittal };
SliceAxis parse_slice_axis(const std::string& name);
std::string to_string(SliceAxis axis);

// The map that brings a grid to the canonical orientation: index axes along +L, +P, +S
// (DICOM's LPS; for an oblique grid, each index axis goes to the physical axis it is closest to).
AxisMap canonical_axis_map(const Geometry& geometry);

// The map from a grid to slices along an anatomical axis, displayed as a radiologist reads them:
// x = columns, y = rows (top first), z = slice index. Axial: columns R->L, rows A->P, slices I->S.
// Coronal: columns R->L, rows S->I, slices A->P. Sagittal: columns A->P, rows S->I, slices R->L.
AxisMap slicing_axis_map(const Geometry& geometry, SliceAxis axis);

Geometry reslice(const Geometry& geometry, const AxisMap& map);
Volume reslice(const Volume& volume, const AxisMap& map);
LabelMap reslice(const LabelMap& labels, const AxisMap& map);

// ---- 8-bit frames and resizing --------------------------------------------------------------

// An 8-bit RGB picture, rows top first, pixels interleaved R, G, B.
struct Image8 {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;

  std::uint8_t at(int x, int y, int c) const {
    return rgb[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                static_cast<std::size_t>(x)) *
                   3 +
               static_cast<std::size_t>(c)];
  }
};

// Slice z of a display volume (0..255 floats) as RGB: grey is replicated, values quantised.
Image8 frame_rgb8(const Volume& display, std::size_t z);

// Bicubic resize exactly as Pillow's Image.resize(..., BICUBIC) computes it for RGB images:
// cubic kernel a = -0.5, support widened by the scale when shrinking (antialiasing), separable
// passes horizontal then vertical, each in 22-bit fixed point rounded to 8 bits.
Image8 resize_bicubic(const Image8& image, int width, int height);

Image8 crop(const Image8& image, int x0, int y0, int width, int height);

// ---- model inputs ---------------------------------------------------------------------------

struct TileGrid {
  int cols = 1;
  int rows = 1;
  int tiles() const { return cols * rows; }
};

struct TilingOptions {
  int min_tiles = 1;
  int max_tiles = 12;
  int tile_size = 448;
  bool thumbnail = true;
};

// InternVL's find_closest_aspect_ratio over every grid with min..max tiles, in order of tile
// count; on a tie the larger grid wins when the image area exceeds half of the grid's area.
TileGrid closest_tile_grid(int width, int height, const TilingOptions& options = {});

// The tiles the vision encoder sees: the image resized to the grid, cut row by row, plus a
// thumbnail of the whole image when there is more than one tile.
std::vector<Image8> dynamic_tiles(const Image8& image, const TilingOptions& options = {});

// Channel-first float image, normalised for a model.
struct ModelImage {
  int channels = 3;
  int height = 0;
  int width = 0;
  std::vector<float> data;  // [channels][height][width]
};

// /255, then ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
ModelImage normalize_imagenet(const Image8& image);

// SAM's input: direct bicubic resize to size x size (no padding), normalised as above.
ModelImage sam_input(const Image8& image, int size = 1024);

}  // namespace unibiomed
