// Reading one file through an ITK ImageIO object (NIfTI, NRRD, MetaImage, DICOM).
#pragma once

#include <itkImageIOBase.h>

#include <filesystem>
#include <string>

#include "unibiomed/read.h"
#include "unibiomed/volume.h"

namespace unibiomed::detail {

// Reads the header, checks it, reads the pixels and converts them to float. A 4-D input
// contributes one frame (options.frame, default 0); 5-D and more are refused.
Volume read_with_image_io(itk::ImageIOBase& io, const std::filesystem::path& path,
                          const std::string& format_name, const ReadOptions& options);

std::string component_name(itk::IOComponentEnum type);

// An ITK exception's description without its "ITK ERROR: Class(0x...): " prefix.
std::string itk_reason(const itk::ExceptionObject& error);

}  // namespace unibiomed::detail
