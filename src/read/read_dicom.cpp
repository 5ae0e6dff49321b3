// DICOM through GDCM (via ITK): single files, multi-frame files and series folders. GDCM
// decodes the compressed transfer syntaxes (JPEG baseline and lossless, JPEG-LS, RLE,
// JPEG 2000), applies palette colour tables and the rescale slope/intercept.
#include <gdcmReader.h>
#include <gdcmTrace.h>
#include <gdcmUIDs.h>
#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageSeriesReader.h>
#include <itkMetaDataObject.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "../core/text.h"
#include "itk_image_io.h"
#include "quiet_stderr.h"
#include "reader_internal.h"
#include "unibiomed/error.h"

namespace unibiomed::detail {
namespace {

// GDCM and ITK print warnings about odd headers to the terminal; the reader reports what
// matters itself, so their own output is turned off.
void quiet_libraries() {
  gdcm::Trace::WarningOff();
  gdcm::Trace::DebugOff();
  gdcm::Trace::ErrorOff();
  itk::Object::GlobalWarningDisplayOff();
}

std::string tag(const itk::MetaDataDictionary& dictionary, const std::string& key) {
  std::string value;
  itk::ExposeMetaData<std::string>(dictionary, key, value);
  return trim(value);
}

// The transfer syntax of a file, as "UID (name)", read from its meta header with GDCM (ITK's
// dictionary does not carry group 0002).
std::string transfer_syntax_of(const std::string& file) {
  gdcm::Reader reader;
  reader.SetFileName(file.c_str());
  if (!reader.ReadUpToTag(gdcm::Tag(0x0008, 0x0000))) return "";
  const std::string uid = reader.GetFile().GetHeader().GetDataSetTransferSyntax().GetString();
  gdcm::UIDs known;
  if (uid.empty() || !known.SetFromUID(uid.c_str())) return uid;
  return uid + " (" + known.GetName() + ")";
}

std::string element_text(const gdcm::DataSet& dataset, gdcm::Tag tag) {
  if (!dataset.FindDataElement(tag)) return "";
  const gdcm::ByteValue* value = dataset.GetDataElement(tag).GetByteValue();
  if (value == nullptr) return "";
  return trim(std::string(value->GetPointer(), value->GetLength()));
}

// Looks at the header before ITK does, to refuse with a clear reason the files that hold no
// image (structure sets, reports, plans, waveforms) and those whose header makes GDCM abort
// (a frame increment pointer without a number of frames).
void screen_dicom_header(const std::filesystem::path& path) {
  const gdcm::Tag pixel_data(0x7fe0, 0x0010);
  gdcm::Reader header;
  header.SetFileName(path.c_str());
  if (!header.ReadUpToTag(gdcm::Tag(0x0028, 0xffff))) {
    throw input_error(path.string() + ": not a readable DICOM file (GDCM cannot parse its header)");
  }
  const gdcm::DataSet& dataset = header.GetFile().GetDataSet();
  // Whether Pixel Data is there, without reading its value (GDCM cannot skip through a
  // deflated data set; those are left to the full read).
  gdcm::Reader presence;
  presence.SetFileName(path.c_str());
  const bool deflated = header.GetFile().GetHeader().GetDataSetTransferSyntax() ==
                        gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian;
  if (!deflated && presence.ReadSelectedTags({pixel_data}, false) &&
      !presence.GetFile().GetDataSet().FindDataElement(pixel_data)) {
    std::string what = element_text(dataset, gdcm::Tag(0x0008, 0x0060));
    const std::string sop_class = element_text(dataset, gdcm::Tag(0x0008, 0x0016));
    gdcm::UIDs uid;
    if (!sop_class.empty() && uid.SetFromUID(sop_class.c_str()) && uid.GetName() != nullptr) {
      what += std::string(what.empty() ? "" : ", ") + uid.GetName();
    }
    throw input_error(path.string() + ": DICOM file without an image" +
                      (what.empty() ? std::string() : " (" + what + ")"));
  }
  if (dataset.FindDataElement(gdcm::Tag(0x0028, 0x0009)) &&
      !dataset.FindDataElement(gdcm::Tag(0x0028, 0x0008))) {
    throw input_error(path.string() +
                      ": DICOM header has a Frame Increment Pointer but no Number of Frames; "
                      "not supported");
  }
}

// Fills the DICOM-specific fields of the source description from the header of `io`.
void describe_dicom(const itk::GDCMImageIO& io, const std::string& file, Volume& volume) {
  const auto& dictionary = io.GetMetaDataDictionary();
  SourceInfo& s = volume.source;
  s.photometric = tag(dictionary, "0028|0004");
  s.transfer_syntax = transfer_syntax_of(file);
  s.rescale_slope = io.GetRescaleSlope();
  s.rescale_intercept = io.GetRescaleIntercept();
  s.series_uid = tag(dictionary, "0020|000e");
  s.series_description = tag(dictionary, "0008|103e");
  s.pixel_type = component_name(io.GetInternalComponentType());
  const std::string modality = tag(dictionary, "0008|0060");
  volume.modality = modality_from_dicom(modality);
  if (volume.modality != Modality::Unknown) s.modality_source = "DICOM tag (" + modality + ")";
  const std::string frames = tag(dictionary, "0028|0008");
  const unsigned long frame_count = std::strtoul(frames.c_str(), nullptr, 10);
  if (frame_count > 1) {
    s.frames_total = frame_count;
    // Cine (ultrasound, angiography) frames are moments in time, not positions in space.
    s.multiframe = volume.modality == Modality::Ultrasound || volume.modality == Modality::XRay;
  }
}

// Slice positions (Image Position Patient) projected on the slice normal; ITK assumes even
// spacing, so a series whose gaps differ by more than 1% gets a warning naming the range.
void warn_if_uneven_spacing(const std::vector<itk::MetaDataDictionary*>& slices, const Geometry& g,
                            SourceInfo& source) {
  const auto normal = g.axis_direction(2);
  std::vector<double> positions;
  for (const auto* dictionary : slices) {
    double p[3];
    const std::string text = tag(*dictionary, "0020|0032");
    if (std::sscanf(text.c_str(), "%lf\\%lf\\%lf", &p[0], &p[1], &p[2]) != 3) return;
    positions.push_back(p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]);
  }
  if (positions.size() < 3) return;
  double smallest = std::numeric_limits<double>::max();
  double largest = 0.0;
  for (std::size_t i = 1; i < positions.size(); ++i) {
    const double gap = std::fabs(positions[i] - positions[i - 1]);
    smallest = std::min(smallest, gap);
    largest = std::max(largest, gap);
  }
  if (largest - smallest > 0.01 * largest) {
    char text[160];
    std::snprintf(text, sizeof text,
                  "uneven slice spacing: gaps from %.4g to %.4g mm; the mean %.4g mm is used",
                  smallest, largest, g.spacing[2]);
    source.warnings.push_back(text);
  }
}

}  // namespace

Volume read_dicom_file(const std::filesystem::path& path, const ReadOptions& options) {
  quiet_libraries();
  screen_dicom_header(path);
  auto io = itk::GDCMImageIO::New();
  bool readable = false;
  {
    const QuietStderr quiet;  // CanReadFile decodes, and OpenJPEG talks
    readable = io->CanReadFile(path.c_str());
  }
  if (!readable) {
    throw input_error(path.string() + ": GDCM cannot read the image of this DICOM file");
  }
  Volume volume;
  try {
    volume = read_with_image_io(*io, path, "DICOM", options);
  } catch (const Error& e) {
    // Name the transfer syntax when the pixel data could not be decoded.
    const std::string syntax = transfer_syntax_of(path.string());
    if (syntax.empty()) throw;
    throw Error(e.kind(), std::string(e.what()) + " [transfer syntax " + syntax + "]");
  }
  describe_dicom(*io, path.string(), volume);
  if (volume.source.photometric == "PALETTE COLOR")
    volume.source.photometric += " (expanded to RGB)";
  return volume;
}

Volume read_dicom_folder(const std::filesystem::path& folder, const ReadOptions& options) {
  const std::string what = folder.string();
  quiet_libraries();
  auto names = itk::GDCMSeriesFileNames::New();
  names->SetUseSeriesDetails(true);
  names->SetGlobalWarningDisplay(false);
  std::vector<std::string> uids;
  try {
    names->SetDirectory(what);
    uids = names->GetSeriesUIDs();
  } catch (const itk::ExceptionObject& e) {
    throw input_error(what + ": cannot scan the folder for DICOM series (" + itk_reason(e) + ")");
  }
  if (uids.empty()) throw input_error(what + ": folder holds no DICOM images");

  // The series with the most slices.
  std::string chosen;
  std::vector<std::string> files;
  for (const auto& uid : uids) {
    auto candidate = names->GetFileNames(uid);
    if (candidate.size() > files.size()) {
      files = std::move(candidate);
      chosen = uid;
    }
  }
  if (files.size() == 1) {
    Volume single = read_dicom_file(files.front(), options);
    single.source.series_found = uids.size();
    single.source.files_in_series = 1;
    single.source.format = "DICOM series";
    return single;
  }

  auto io = itk::GDCMImageIO::New();
  io->SetFileName(files.front());
  try {
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw input_error(files.front() + ": cannot read the DICOM header (" + itk_reason(e) + ")");
  }
  if (io->GetNumberOfComponents() != 1) {
    throw input_error(what + ": colour DICOM series are not supported; give one file instead");
  }
  check_dimensions(what, {io->GetDimensions(0), io->GetDimensions(1), files.size()}, 1, options);

  using Image = itk::Image<float, 3>;
  auto reader = itk::ImageSeriesReader<Image>::New();
  reader->SetImageIO(io);
  reader->SetFileNames(files);
  try {
    const QuietStderr quiet;
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw input_error(what + ": cannot read the DICOM series " + chosen + " (" + itk_reason(e) +
                      ")");
  }
  const Image* image = reader->GetOutput();

  Volume volume;
  volume.source.format = "DICOM series";
  describe_dicom(*io, files.front(), volume);
  volume.source.series_uid = chosen;
  volume.source.series_found = uids.size();
  volume.source.files_in_series = files.size();
  const auto region = image->GetLargestPossibleRegion();
  Geometry& g = volume.geometry;
  for (unsigned i = 0; i < 3; ++i) {
    g.size[i] = region.GetSize(i);
    g.spacing[i] = image->GetSpacing()[i];
    g.origin[i] = image->GetOrigin()[i];
    for (unsigned row = 0; row < 3; ++row) g.direction[row * 3 + i] = image->GetDirection()(row, i);
  }
  warn_if_uneven_spacing(*reader->GetMetaDataDictionaryArray(), g, volume.source);
  const float* buffer = image->GetBufferPointer();
  volume.voxels.assign(buffer, buffer + g.voxel_count());
  return volume;
}

}  // namespace unibiomed::detail
