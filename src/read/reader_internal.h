// Shared pieces of the readers; not part of the public API.
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "unibiomed/read.h"
#include "unibiomed/volume.h"

namespace unibiomed::detail {

// Checks a header's dimensions before anything is allocated: every size > 0 and the total
// within options.max_values. `what` names the file.
void check_dimensions(const std::string& what, const std::vector<std::size_t>& size,
                      std::size_t channels, const ReadOptions& options);

// Replaces NaN with 0 and +/-Inf with the largest/smallest finite value; records the count and
// a warning in volume.source.
void replace_nonfinite(Volume& volume);

// Verifies that a gzip file decompresses completely; throws an input error otherwise.
void check_gzip_stream(const std::filesystem::path& path);

Volume read_itk_file(const std::filesystem::path& path, FileFormat format,
                     const ReadOptions& options);
Volume read_dicom_file(const std::filesystem::path& path, const ReadOptions& options);
Volume read_dicom_folder(const std::filesystem::path& folder, const ReadOptions& options);
Volume read_picture(const std::filesystem::path& path, FileFormat format,
                    const ReadOptions& options);

}  // namespace unibiomed::detail
