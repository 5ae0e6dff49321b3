#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>

#include "itk_image_io.h"
#include "reader_internal.h"
#include "unibiomed/error.h"

namespace unibiomed::detail {
namespace {

// A NIfTI .hdr needs its .img (or .img.gz) beside it.
void check_nifti_companion(const std::filesystem::path& path) {
  std::filesystem::path data = path;
  if (path.extension() == ".hdr") {
    data.replace_extension(".img");
    if (!std::filesystem::exists(data) && !std::filesystem::exists(data.string() + ".gz")) {
      throw input_error(path.string() + ": NIfTI header without its data file " +
                        data.filename().string());
    }
  }
}

}  // namespace

Volume read_itk_file(const std::filesystem::path& path, FileFormat format,
                     const ReadOptions& options) {
  itk::ImageIOBase::Pointer io;
  switch (format) {
    case FileFormat::NIfTI:
      io = itk::NiftiImageIO::New();
      break;
    case FileFormat::NRRD:
      io = itk::NrrdImageIO::New();
      break;
    case FileFormat::MetaImage:
      io = itk::MetaImageIO::New();
      break;
    default:
      throw internal_error(path.string() + ": not an ITK volume format");
  }
  if (format == FileFormat::NIfTI) check_nifti_companion(path);
  if (!io->CanReadFile(path.c_str())) {
    throw input_error(path.string() + ": not a valid " + to_string(format) + " file");
  }
  return read_with_image_io(*io, path, to_string(format), options);
}

}  // namespace unibiomed::detail
