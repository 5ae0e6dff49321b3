// A Volume is what every reader produces: float voxels on a grid with its full geometry
// (size, spacing, origin, direction cosines in LPS, as ITK and DICOM define them), the
// modality when it is known, and what later steps need to know about the source.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace unibiomed {

// Geometry of a 3-D grid. A 2-D image has size[2] == 1. direction is row-major: column j,
// (direction[0*3+j], direction[1*3+j], direction[2*3+j]), is the physical direction of index
// axis j. Physical point of index (i,j,k) = origin + D * diag(spacing) * (i,j,k).
struct Geometry {
  std::array<std::size_t, 3> size{1, 1, 1};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  std::array<double, 3> origin{0.0, 0.0, 0.0};
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};

  std::size_t voxel_count() const { return size[0] * size[1] * size[2]; }
  std::array<double, 3> axis_direction(int axis) const {
    return {direction[axis], direction[3 + axis], direction[6 + axis]};
  }
  std::array<double, 3> index_to_point(const std::array<double, 3>& index) const;
  // Three-letter orientation code in DICOM's LPS convention, one letter per index axis naming
  // the direction it increases towards: "LPS" is the identity; "RAS" is NIfTI's usual layout.
  std::string orientation_code() const;
  bool same_grid(const Geometry& other, double tolerance = 1e-6) const;
};

enum class Modality {
  Unknown,
  CT,
  MR,
  XRay,  // CR, DX, XA, RF, MG
  Ultrasound,
  PET,  // PT, NM
  Pathology,
  Fundus,
  Endoscopy,
  Dermoscopy,
  OCT,
  Other,
};

std::string to_string(Modality modality);
// Parses a --modality value ("ct", "mr", "xray", "us", ...); throws a usage error naming it.
Modality parse_modality(const std::string& name);
// Maps a DICOM Modality (0008,0060) value; Unknown when it names none of ours.
Modality modality_from_dicom(const std::string& code);

// What the reader learned about the source that later steps need, or that `info` shows.
struct SourceInfo {
  std::string path;
  std::string format;           // "NIfTI", "NRRD", "MetaImage", "DICOM series", "PNG", ...
  std::string pixel_type;       // stored component type, e.g. "int16", "uint8"
  std::string photometric;      // DICOM photometric interpretation, or "RGB"/"MONOCHROME"
  std::string transfer_syntax;  // DICOM transfer syntax UID
  std::string modality_source;  // "DICOM tag", "--modality", or "" when unknown
  double rescale_slope = 1.0;   // DICOM rescale, already applied to the voxels
  double rescale_intercept = 0.0;
  std::string series_uid;  // DICOM series chosen
  std::string series_description;
  std::size_t series_found = 0;  // DICOM series in the folder
  std::size_t files_in_series = 0;
  std::size_t frames_total = 1;           // frames of a 4-D or multi-frame input
  std::optional<std::size_t> frame_used;  // set when one frame of a 4-D input was taken
  bool multiframe = false;                // third axis is time (cine), not space
  std::size_t nonfinite_replaced = 0;     // NaN/Inf voxels replaced on reading
  std::vector<std::string> warnings;
};

struct Volume {
  Geometry geometry;
  int channels = 1;           // 1 grey, 3 RGB (interleaved innermost)
  std::vector<float> voxels;  // x fastest, then y, then z; channels interleaved
  Modality modality = Modality::Unknown;
  SourceInfo source;

  std::size_t index(std::size_t x, std::size_t y, std::size_t z, int c = 0) const {
    return ((z * geometry.size[1] + y) * geometry.size[0] + x) *
               static_cast<std::size_t>(channels) +
           static_cast<std::size_t>(c);
  }
  float at(std::size_t x, std::size_t y, std::size_t z, int c = 0) const {
    return voxels[index(x, y, z, c)];
  }
  bool is_2d() const { return geometry.size[2] == 1; }
};

// A label map on a grid: 0 is background, value v names labels[v].
struct LabelMap {
  Geometry geometry;
  std::vector<std::uint8_t> labels;
  std::vector<std::string> names;  // names[v] for v >= 1; names[0] is "background"
};

}  // namespace unibiomed
