// Which format a file is: by its name, and by its first bytes (through gzip when compressed).
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../core/text.h"
#include "reader_internal.h"
#include "unibiomed/error.h"
#include "unibiomed/read.h"

namespace unibiomed {
namespace {

struct GzCloser {
  void operator()(gzFile file) const { gzclose(file); }
};
using GzHandle = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// First bytes of the file, decompressed when it is gzip.
std::vector<std::uint8_t> head_bytes(const std::filesystem::path& path, std::size_t count) {
  GzHandle file(gzopen(path.c_str(), "rb"));
  if (!file) throw input_error(path.string() + ": cannot open for reading");
  std::vector<std::uint8_t> bytes(count);
  const int got = gzread(file.get(), bytes.data(), static_cast<unsigned>(count));
  bytes.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return bytes;
}

bool starts_with(const std::vector<std::uint8_t>& bytes, std::size_t offset, const char* text) {
  const std::size_t n = std::strlen(text);
  return bytes.size() >= offset + n && std::memcmp(bytes.data() + offset, text, n) == 0;
}

std::uint32_t read_u32(const std::vector<std::uint8_t>& b, std::size_t offset, bool big_endian) {
  if (b.size() < offset + 4) return 0;
  if (big_endian) {
    return (std::uint32_t{b[offset]} << 24) | (std::uint32_t{b[offset + 1]} << 16) |
           (std::uint32_t{b[offset + 2]} << 8) | std::uint32_t{b[offset + 3]};
  }
  return (std::uint32_t{b[offset + 3]} << 24) | (std::uint32_t{b[offset + 2]} << 16) |
         (std::uint32_t{b[offset + 1]} << 8) | std::uint32_t{b[offset]};
}

bool looks_like_metaimage(const std::vector<std::uint8_t>& bytes) {
  const std::string text(bytes.begin(), bytes.end());
  return text.rfind("ObjectType", 0) == 0 || text.rfind("NDims", 0) == 0 ||
         text.find("\nNDims") != std::string::npos || text.find("ElementType") != std::string::npos;
}

}  // namespace

std::string to_string(FileFormat format) {
  switch (format) {
    case FileFormat::Unknown:
      return "unknown";
    case FileFormat::NIfTI:
      return "NIfTI";
    case FileFormat::NRRD:
      return "NRRD";
    case FileFormat::MetaImage:
      return "MetaImage";
    case FileFormat::DICOM:
      return "DICOM";
    case FileFormat::PNG:
      return "PNG";
    case FileFormat::JPEG:
      return "JPEG";
    case FileFormat::TIFF:
      return "TIFF";
    case FileFormat::BMP:
      return "BMP";
    case FileFormat::Gzip:
      return "gzip";
  }
  return "unknown";
}

FileFormat format_from_extension(const std::filesystem::path& path) {
  const std::string name = detail::to_lower(path.filename().string());
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".nii") || ends_with(".nii.gz")) return FileFormat::NIfTI;
  if (ends_with(".nrrd") || ends_with(".nhdr")) return FileFormat::NRRD;
  if (ends_with(".mha") || ends_with(".mhd")) return FileFormat::MetaImage;
  if (ends_with(".dcm") || ends_with(".dicom") || ends_with(".ima")) return FileFormat::DICOM;
  if (ends_with(".png")) return FileFormat::PNG;
  if (ends_with(".jpg") || ends_with(".jpeg")) return FileFormat::JPEG;
  if (ends_with(".tif") || ends_with(".tiff")) return FileFormat::TIFF;
  if (ends_with(".bmp")) return FileFormat::BMP;
  if (ends_with(".gz")) return FileFormat::Gzip;
  return FileFormat::Unknown;
}

FileFormat format_from_content(const std::filesystem::path& path) {
  const auto bytes = head_bytes(path, 1024);
  if (bytes.empty()) return FileFormat::Unknown;
  // NIfTI-1 (348-byte header) and NIfTI-2 (540), either byte order, with their magic.
  for (const bool big : {false, true}) {
    const auto header_size = read_u32(bytes, 0, big);
    if (header_size == 348 && (starts_with(bytes, 344, "n+1") || starts_with(bytes, 344, "ni1")))
      return FileFormat::NIfTI;
    if (header_size == 540 && (starts_with(bytes, 4, "n+2") || starts_with(bytes, 4, "ni2"))) {
      throw input_error(path.string() +
                        ": NIfTI-2 is not supported by the ITK this was built with; "
                        "convert it to NIfTI-1");
    }
  }
  if (starts_with(bytes, 0, "NRRD000")) return FileFormat::NRRD;
  if (starts_with(bytes, 128, "DICM")) return FileFormat::DICOM;
  if (starts_with(bytes, 0, "\x89PNG\r\n\x1a\n")) return FileFormat::PNG;
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
    return FileFormat::JPEG;
  if (starts_with(bytes, 0, "II*") || starts_with(bytes, 0, "MM")) {
    if (bytes.size() >= 4 && ((bytes[0] == 'I' && bytes[3] == 0) ||
                              (bytes[0] == 'M' && bytes[2] == 0 && bytes[3] == 42)))
      return FileFormat::TIFF;
  }
  if (starts_with(bytes, 0, "BM") && bytes.size() >= 26) return FileFormat::BMP;
  if (looks_like_metaimage(bytes)) return FileFormat::MetaImage;
  // DICOM without the 128-byte preamble: starts with an element of group 0008 (or 0002).
  if (bytes.size() >= 8 && (bytes[0] == 0x08 || bytes[0] == 0x02) && bytes[1] == 0x00 &&
      bytes[3] == 0x00)
    return FileFormat::DICOM;
  return FileFormat::Unknown;
}

namespace detail {

void check_gzip_stream(const std::filesystem::path& path) {
  std::ifstream probe(path, std::ios::binary);
  std::array<unsigned char, 2> magic{};
  probe.read(reinterpret_cast<char*>(magic.data()), 2);
  if (probe.gcount() != 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
    throw input_error(path.string() + ": named .gz but is not gzip-compressed");
  }
  probe.close();
  GzHandle file(gzopen(path.c_str(), "rb"));
  if (!file) throw input_error(path.string() + ": cannot open for reading");
  std::vector<char> buffer(std::size_t{1} << 20);
  while (true) {
    const int got = gzread(file.get(), buffer.data(), static_cast<unsigned>(buffer.size()));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file.get(), &code);
      throw input_error(path.string() + ": corrupt gzip data (" + message + ")");
    }
    if (got == 0) break;
  }
  // zlib reports a stream that ends early as a plain end of file; gzclose_r tells.
  int code = 0;
  gzerror(file.get(), &code);
  if (gzclose_r(file.release()) != Z_OK || code != Z_OK) {
    throw input_error(path.string() +
                      ": truncated gzip data (the stream ends before its end marker)");
  }
}

}  // namespace detail
}  // namespace unibiomed
