// The one entry point: decides what the path is and hands it to the right reader.
#include <filesystem>
#include <string>
#include <system_error>

#include "reader_internal.h"
#include "unibiomed/error.h"
#include "unibiomed/read.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;

bool has_gz_suffix(const fs::path& path) {
  return path.extension() == ".gz" || path.extension() == ".GZ";
}

FileFormat checked_format(const fs::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  if (ec) throw input_error(name + ": cannot read file size (" + ec.message() + ")");
  if (bytes == 0) throw input_error(name + ": file is empty (0 bytes)");
  if (has_gz_suffix(path)) detail::check_gzip_stream(path);

  const FileFormat by_name = format_from_extension(path);
  const FileFormat by_content = format_from_content(path);
  if (by_content == FileFormat::Unknown) {
    if (by_name != FileFormat::Unknown && by_name != FileFormat::Gzip) {
      throw input_error(name + ": named as " + to_string(by_name) + " but its content is not a " +
                        to_string(by_name) + " file");
    }
    throw input_error(name +
                      ": unrecognised file format (supported: NIfTI, NRRD, MetaImage, "
                      "DICOM, PNG, JPEG, TIFF, BMP)");
  }
  if (by_name != FileFormat::Unknown && by_name != FileFormat::Gzip && by_name != by_content) {
    throw input_error(name + ": named as " + to_string(by_name) + " but its content is " +
                      to_string(by_content));
  }
  if (has_gz_suffix(path) && by_content != FileFormat::NIfTI) {
    throw input_error(name + ": gzip-compressed " + to_string(by_content) +
                      " is not supported (only NIfTI may be gzipped); decompress it first");
  }
  return by_content;
}

}  // namespace

Volume read_image(const fs::path& path, const ReadOptions& options) {
  const std::string name = path.string();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw input_error(name + ": no such file or folder");

  Volume volume;
  if (fs::is_directory(status)) {
    volume = detail::read_dicom_folder(path, options);
  } else if (!fs::is_regular_file(status)) {
    throw input_error(name + ": not a regular file or folder");
  } else {
    const FileFormat format = checked_format(path);
    switch (format) {
      case FileFormat::NIfTI:
      case FileFormat::NRRD:
      case FileFormat::MetaImage:
        volume = detail::read_itk_file(path, format, options);
        break;
      case FileFormat::DICOM:
        volume = detail::read_dicom_file(path, options);
        break;
      case FileFormat::PNG:
      case FileFormat::JPEG:
      case FileFormat::TIFF:
      case FileFormat::BMP:
        volume = detail::read_picture(path, format, options);
        break;
      default:
        throw input_error(name + ": unsupported format " + to_string(format));
    }
  }
  volume.source.path = name;
  if (options.modality) {
    volume.modality = *options.modality;
    volume.source.modality_source = "--modality";
  }
  detail::replace_nonfinite(volume);
  return volume;
}

}  // namespace unibiomed
