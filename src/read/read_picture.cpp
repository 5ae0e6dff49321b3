// 2-D pictures (PNG, JPEG, TIFF, BMP; 8 or 16 bit, grey or colour) through OpenCV.
#include <array>
#include <cstdint>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <string>
#include <vector>

#include "quiet_stderr.h"
#include "reader_internal.h"
#include "unibiomed/error.h"

namespace unibiomed::detail {
namespace {

std::vector<std::uint8_t> read_head(const std::filesystem::path& path, std::size_t count) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> bytes(count);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(count));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t o) {
  return (std::uint32_t{b[o]} << 24) | (std::uint32_t{b[o + 1]} << 16) |
         (std::uint32_t{b[o + 2]} << 8) | std::uint32_t{b[o + 3]};
}
std::int32_t le32(const std::vector<std::uint8_t>& b, std::size_t o) {
  return static_cast<std::int32_t>(std::uint32_t{b[o]} | (std::uint32_t{b[o + 1]} << 8) |
                                   (std::uint32_t{b[o + 2]} << 16) |
                                   (std::uint32_t{b[o + 3]} << 24));
}

// Width and height from the header, for the formats where that is cheap, so that a zero or
// absurd size is refused before the decoder allocates anything.
std::optional<std::array<std::int64_t, 2>> header_size(const std::filesystem::path& path,
                                                       FileFormat format) {
  const auto b = read_head(path, 1 << 16);
  if (format == FileFormat::PNG && b.size() >= 24) return {{be32(b, 16), be32(b, 20)}};
  if (format == FileFormat::BMP && b.size() >= 26) {
    const std::int64_t h = le32(b, 22);
    return {{le32(b, 18), h < 0 ? -h : h}};
  }
  if (format == FileFormat::JPEG) {
    // Walk the markers to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC).
    std::size_t o = 2;
    while (o + 9 < b.size()) {
      if (b[o] != 0xFF) return std::nullopt;
      const std::uint8_t marker = b[o + 1];
      const std::size_t length = (std::size_t{b[o + 2]} << 8) | b[o + 3];
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
        return {
            {(std::int64_t{b[o + 7]} << 8) | b[o + 8], (std::int64_t{b[o + 5]} << 8) | b[o + 6]}};
      }
      o += 2 + length;
    }
  }
  return std::nullopt;
}

std::string depth_name(int depth) {
  switch (depth) {
    case CV_8U:
      return "uint8";
    case CV_16U:
      return "uint16";
    case CV_16S:
      return "int16";
    case CV_32F:
      return "float32";
    case CV_64F:
      return "float64";
    default:
      return "depth " + std::to_string(depth);
  }
}

bool is_grey(const cv::Mat& colour) {
  std::vector<cv::Mat> planes;
  cv::split(colour, planes);
  return cv::countNonZero(planes[0] != planes[1]) == 0 &&
         cv::countNonZero(planes[1] != planes[2]) == 0;
}

}  // namespace

Volume read_picture(const std::filesystem::path& path, FileFormat format,
                    const ReadOptions& options) {
  const std::string what = path.string();
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  if (const auto size = header_size(path, format)) {
    const auto [w, h] = *size;
    if (w < 0 || h < 0) throw input_error(what + ": invalid image size in the header");
    check_dimensions(what, {static_cast<std::size_t>(w), static_cast<std::size_t>(h)}, 1, options);
  }
  cv::Mat image;
  try {
    const QuietStderr quiet;
    image = cv::imread(what, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw input_error(what + ": cannot decode the " + to_string(format) + " image (" + e.msg + ")");
  }
  if (image.empty()) {
    throw input_error(what + ": cannot decode the " + to_string(format) +
                      " image (corrupt, truncated or unsupported)");
  }
  check_dimensions(what,
                   {static_cast<std::size_t>(image.cols), static_cast<std::size_t>(image.rows)},
                   static_cast<std::size_t>(image.channels()), options);

  Volume volume;
  volume.source.format = to_string(format);
  volume.source.pixel_type = depth_name(image.depth());
  cv::Mat converted;
  switch (image.channels()) {
    case 1:
      converted = image;
      volume.source.photometric = "MONOCHROME";
      break;
    case 2:  // grey + alpha
      cv::extractChannel(image, converted, 0);
      volume.source.photometric = "MONOCHROME";
      volume.source.warnings.push_back("alpha channel dropped");
      break;
    case 3:
      cv::cvtColor(image, converted, cv::COLOR_BGR2RGB);
      volume.source.photometric = "RGB";
      break;
    case 4:
      cv::cvtColor(image, converted, cv::COLOR_BGRA2RGB);
      volume.source.photometric = "RGB";
      volume.source.warnings.push_back("alpha channel dropped");
      break;
    default:
      throw input_error(what + ": " + std::to_string(image.channels()) + " channels not supported");
  }
  // Palette and RGB files often hold a grey picture (R = G = B everywhere): keep it as grey.
  if (converted.channels() == 3 && is_grey(converted)) {
    cv::extractChannel(converted, converted, 0);
    volume.source.photometric = "MONOCHROME (stored as colour)";
  }
  cv::Mat as_float;
  converted.convertTo(as_float, CV_MAKETYPE(CV_32F, converted.channels()));
  volume.channels = as_float.channels();
  volume.geometry.size = {static_cast<std::size_t>(as_float.cols),
                          static_cast<std::size_t>(as_float.rows), 1};
  volume.voxels.resize(static_cast<std::size_t>(as_float.total()) *
                       static_cast<std::size_t>(volume.channels));
  const std::size_t row_values =
      static_cast<std::size_t>(as_float.cols) * static_cast<std::size_t>(volume.channels);
  for (int y = 0; y < as_float.rows; ++y) {
    const float* row = as_float.ptr<float>(y);
    std::copy(row, row + row_values,
              volume.voxels.begin() +
                  static_cast<std::ptrdiff_t>(y) * static_cast<std::ptrdiff_t>(row_values));
  }
  return volume;
}

}  // namespace unibiomed::detail
