// Reading a scan or picture from disk into a Volume. One entry point for every format:
// NIfTI (.nii, .nii.gz), NRRD, MetaImage (.mha/.mhd), DICOM (a file, a multi-frame file or a
// series folder), PNG, JPEG, TIFF, BMP.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

#include "unibiomed/volume.h"

namespace unibiomed {

enum class FileFormat { Unknown, NIfTI, NRRD, MetaImage, DICOM, PNG, JPEG, TIFF, BMP, Gzip };
std::string to_string(FileFormat format);

// What the name says the file is (by extension), and what its first bytes say it is.
FileFormat format_from_extension(const std::filesystem::path& path);
FileFormat format_from_content(const std::filesystem::path& path);

struct ReadOptions {
  std::optional<Modality> modality;  // overrides the file's (a DICOM tag); never guessed
  std::optional<std::size_t> frame;  // frame of a 4-D input to use (default: the first)
  // Refuse inputs larger than this before allocating (voxels x channels).
  std::size_t max_values = std::size_t{1} << 31;
};

// Reads `path` (a file, or a folder holding a DICOM series). Throws Error(Input) naming the
// path and what is wrong when it cannot.
Volume read_image(const std::filesystem::path& path, const ReadOptions& options = {});

}  // namespace unibiomed
