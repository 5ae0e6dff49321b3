#include <itkImage.h>
#include <itkImageFileWriter.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "unibiomed/error.h"
#include "unibiomed/read.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

itk::ImageIOBase::Pointer io_for(const std::filesystem::path& path) {
  switch (format_from_extension(path)) {
    case FileFormat::NIfTI:
      return itk::NiftiImageIO::New().GetPointer();
    case FileFormat::NRRD:
      return itk::NrrdImageIO::New().GetPointer();
    case FileFormat::MetaImage:
      return itk::MetaImageIO::New().GetPointer();
    default:
      throw usage_error(path.string() + ": masks are written as .nii, .nii.gz, .nrrd or .mha");
  }
}

void check_size(const LabelMap& labels, const std::filesystem::path& path) {
  if (labels.labels.size() != labels.geometry.voxel_count()) {
    throw internal_error(path.string() + ": label map holds " +
                         std::to_string(labels.labels.size()) + " values for a grid of " +
                         std::to_string(labels.geometry.voxel_count()));
  }
}

}  // namespace

void write_label_map(const LabelMap& labels, const std::filesystem::path& path) {
  check_size(labels, path);
  auto io = io_for(path);
  using Image = itk::Image<std::uint8_t, 3>;
  auto image = Image::New();
  Image::RegionType region;
  Image::SpacingType spacing;
  Image::PointType origin;
  Image::DirectionType direction;
  const Geometry& g = labels.geometry;
  for (unsigned i = 0; i < 3; ++i) {
    region.SetSize(i, g.size[i]);
    spacing[i] = g.spacing[i];
    origin[i] = g.origin[i];
    for (unsigned j = 0; j < 3; ++j) direction(i, j) = g.direction[i * 3 + j];
  }
  image->SetRegions(region);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  std::copy(labels.labels.begin(), labels.labels.end(), image->GetBufferPointer());

  write_atomically(path, [&](const std::filesystem::path& temp) {
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetImageIO(io);
    writer->SetFileName(temp.string());
    writer->SetInput(image);
    writer->SetUseCompression(true);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw output_error(std::string("ITK could not write the mask (") + e.GetDescription() + ")");
    }
  });
}

void write_label_png(const LabelMap& labels, const std::filesystem::path& path) {
  check_size(labels, path);
  if (labels.geometry.size[2] != 1) throw usage_error(path.string() + ": a PNG mask must be 2-D");
  const cv::Mat mask(static_cast<int>(labels.geometry.size[1]),
                     static_cast<int>(labels.geometry.size[0]), CV_8UC1,
                     const_cast<std::uint8_t*>(labels.labels.data()));
  write_atomically(path, [&](const std::filesystem::path& temp) {
    if (!cv::imwrite(temp.string(), mask)) throw output_error("OpenCV could not write the PNG");
  });
}

void write_png(const Image8& image, const std::filesystem::path& path) {
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<std::uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  write_atomically(path, [&](const std::filesystem::path& temp) {
    if (!cv::imwrite(temp.string(), bgr)) throw output_error("OpenCV could not write the PNG");
  });
}

}  // namespace unibiomed
