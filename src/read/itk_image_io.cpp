#include "itk_image_io.h"

#include <itkImageIORegion.h>

#include <cstdint>
#include <string>
#include <vector>

#include "quiet_stderr.h"
#include "reader_internal.h"
#include "unibiomed/error.h"

namespace unibiomed::detail {
namespace {

template <typename T>
void convert_to_float(const std::vector<char>& bytes, std::size_t offset_values,
                      std::size_t count_values, std::vector<float>& out) {
  const T* src = reinterpret_cast<const T*>(bytes.data()) + offset_values;
  out.resize(count_values);
  for (std::size_t i = 0; i < count_values; ++i) out[i] = static_cast<float>(src[i]);
}

void convert(itk::IOComponentEnum type, const std::vector<char>& bytes, std::size_t offset,
             std::size_t count, std::vector<float>& out, const std::string& what) {
  using C = itk::IOComponentEnum;
  switch (type) {
    case C::UCHAR:
      return convert_to_float<std::uint8_t>(bytes, offset, count, out);
    case C::CHAR:
      return convert_to_float<std::int8_t>(bytes, offset, count, out);
    case C::USHORT:
      return convert_to_float<std::uint16_t>(bytes, offset, count, out);
    case C::SHORT:
      return convert_to_float<std::int16_t>(bytes, offset, count, out);
    case C::UINT:
      return convert_to_float<std::uint32_t>(bytes, offset, count, out);
    case C::INT:
      return convert_to_float<std::int32_t>(bytes, offset, count, out);
    case C::ULONG:
      return convert_to_float<unsigned long>(bytes, offset, count, out);
    case C::LONG:
      return convert_to_float<long>(bytes, offset, count, out);
    case C::ULONGLONG:
      return convert_to_float<unsigned long long>(bytes, offset, count, out);
    case C::LONGLONG:
      return convert_to_float<long long>(bytes, offset, count, out);
    case C::FLOAT:
      return convert_to_float<float>(bytes, offset, count, out);
    case C::DOUBLE:
      return convert_to_float<double>(bytes, offset, count, out);
    default:
      throw input_error(what + ": unsupported voxel type " + component_name(type));
  }
}

}  // namespace

std::string itk_reason(const itk::ExceptionObject& error) {
  std::string text = error.GetDescription();
  if (text.rfind("ITK ERROR: ", 0) == 0) {
    const auto end = text.find("): ");
    if (end != std::string::npos) text = text.substr(end + 3);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string component_name(itk::IOComponentEnum type) {
  using C = itk::IOComponentEnum;
  switch (type) {
    case C::UCHAR:
      return "uint8";
    case C::CHAR:
      return "int8";
    case C::USHORT:
      return "uint16";
    case C::SHORT:
      return "int16";
    case C::UINT:
      return "uint32";
    case C::INT:
      return "int32";
    case C::ULONG:
    case C::ULONGLONG:
      return "uint64";
    case C::LONG:
    case C::LONGLONG:
      return "int64";
    case C::FLOAT:
      return "float32";
    case C::DOUBLE:
      return "float64";
    default:
      return itk::ImageIOBase::GetComponentTypeAsString(type);
  }
}

Volume read_with_image_io(itk::ImageIOBase& io, const std::filesystem::path& path,
                          const std::string& format_name, const ReadOptions& options) {
  const std::string what = path.string();
  io.SetFileName(what);
  try {
    const QuietStderr quiet;
    io.ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw input_error(what + ": cannot read the " + format_name + " header (" + itk_reason(e) +
                      ")");
  }

  const unsigned dims = io.GetNumberOfDimensions();
  if (dims < 2 || dims > 4) {
    throw input_error(what + ": " + std::to_string(dims) +
                      "-D images are not supported (2-D, 3-D, and 4-D with one frame used)");
  }
  std::vector<std::size_t> size(dims);
  for (unsigned i = 0; i < dims; ++i) size[i] = io.GetDimensions(i);
  std::size_t components = io.GetNumberOfComponents();
  check_dimensions(what, size, components, options);

  const auto pixel = io.GetPixelType();
  const bool colour = pixel == itk::IOPixelEnum::RGB || pixel == itk::IOPixelEnum::RGBA;
  if (!colour && components != 1) {
    throw input_error(what + ": " + std::to_string(components) + " components per voxel (" +
                      itk::ImageIOBase::GetPixelTypeAsString(pixel) +
                      "); only scalar, RGB and RGBA images are supported");
  }

  std::vector<char> bytes(io.GetImageSizeInBytes());
  itk::ImageIORegion region(dims);
  for (unsigned i = 0; i < dims; ++i) {
    region.SetIndex(i, 0);
    region.SetSize(i, size[i]);
  }
  io.SetIORegion(region);
  try {
    const QuietStderr quiet;
    io.Read(bytes.data());
  } catch (const itk::ExceptionObject& e) {
    throw input_error(what + ": cannot read the " + format_name + " pixel data (" + itk_reason(e) +
                      ")");
  }

  Volume volume;
  volume.source.format = format_name;
  volume.source.pixel_type = component_name(io.GetComponentType());
  volume.source.photometric = colour ? "RGB" : "MONOCHROME";

  // Frame selection for 4-D inputs: the frame is the slowest-varying block.
  const std::size_t frames = dims == 4 ? size[3] : 1;
  std::size_t frame = 0;
  if (frames > 1) {
    frame = options.frame.value_or(0);
    if (frame >= frames) {
      throw usage_error(what + ": frame " + std::to_string(frame) +
                        " requested but the image has " + std::to_string(frames) + " frames");
    }
    volume.source.frame_used = frame;
    volume.source.warnings.push_back("4-D image with " + std::to_string(frames) +
                                     " frames: frame " + std::to_string(frame) + " used");
  }
  volume.source.frames_total = frames;
  const std::size_t values_per_frame = size[0] * size[1] * (dims >= 3 ? size[2] : 1) * components;
  std::vector<float> values;
  convert(io.GetComponentType(), bytes, frame * values_per_frame, values_per_frame, values, what);

  if (pixel == itk::IOPixelEnum::RGBA) {
    // Drop the alpha channel.
    std::vector<float> rgb(values.size() / 4 * 3);
    for (std::size_t p = 0, n = values.size() / 4; p < n; ++p) {
      for (std::size_t c = 0; c < 3; ++c) rgb[p * 3 + c] = values[p * 4 + c];
    }
    values.swap(rgb);
    components = 3;
  }
  volume.channels = static_cast<int>(components);
  volume.voxels = std::move(values);

  Geometry& g = volume.geometry;
  const unsigned spatial = dims >= 3 ? 3 : dims;
  for (unsigned i = 0; i < spatial; ++i) {
    g.size[i] = size[i];
    g.spacing[i] = io.GetSpacing(i);
    g.origin[i] = io.GetOrigin(i);
    const auto column = io.GetDirection(i);
    for (unsigned row = 0; row < 3; ++row) {
      g.direction[row * 3 + i] = row < column.size() ? column[row] : (row == i ? 1.0 : 0.0);
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (!(g.spacing[i] > 0.0)) {
      volume.source.warnings.push_back("non-positive spacing " + std::to_string(g.spacing[i]) +
                                       " on axis " + std::to_string(i) + " replaced by 1");
      g.spacing[i] = 1.0;
    }
  }
  return volume;
}

}  // namespace unibiomed::detail
