// The executable on bad input: one line on stderr naming the file and the fault, a documented
// exit code, nothing on stdout.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_support.h"
#include "test_support.h"

namespace {

using unibiomed::test::CliRun;
using unibiomed::test::quoted;
using unibiomed::test::unibiomed_cli;

// An input error: exit code 3, one line naming the file and containing `reason`.
void expect_input_error(const std::filesystem::path& path, const std::string& reason) {
  const CliRun run = unibiomed_cli("info " + quoted(path));
  EXPECT_EQ(run.code, 3) << path << ": " << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_NE(run.err.find(path.string()), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(reason), std::string::npos) << run.err;
}

using unibiomed::test::sample;

TEST(CliBadInput, MissingFile) {
  expect_input_error(sample("bad") / "no_such_scan.nii.gz", "no such file");
}
TEST(CliBadInput, EmptyFile) {
  expect_input_error(sample("bad/empty.nii"), "file is empty");
}
TEST(CliBadInput, TruncatedGzip) {
  expect_input_error(sample("bad/truncated.nii.gz"), "truncated gzip");
}
TEST(CliBadInput, CorruptGzip) {
  expect_input_error(sample("bad/corrupt.nii.gz"), "corrupt gzip");
}
TEST(CliBadInput, ContentNotWhatTheExtensionSays) {
  expect_input_error(sample("bad/png_named.nii"), "named as NIfTI but its content is PNG");
  expect_input_error(sample("bad/notdicom.dcm"), "not a DICOM file");
}
TEST(CliBadInput, FolderWithoutDicomImages) {
  const auto empty = unibiomed::test::scratch_dir("empty_dicom_dir");
  expect_input_error(empty, "no DICOM images");
  expect_input_error(sample("bad/text_only_dir"), "no DICOM images");
}
TEST(CliBadInput, ZeroAndAbsurdDimensionsAreRefusedBeforeAllocating) {
  expect_input_error(sample("bad/zero.mhd"), "zero dimension");
  expect_input_error(sample("bad/absurd.mhd"), "refusing to allocate");
}
TEST(CliBadInput, FiveDimensionsAreRefused) {
  expect_input_error(sample("bad/five_d.nii"), "5-D images are not supported");
}

TEST(CliInput, NonFiniteVoxelsAreReportedAndReplaced) {
  const CliRun run = unibiomed_cli("info --json " + quoted(sample("bad/nan.mhd")));
  EXPECT_EQ(run.code, 0) << run.err;
  const auto json = nlohmann::json::parse(run.out);
  // nan.raw holds 0, 1, 2, two NaN, +Inf and -Inf.
  EXPECT_EQ(json["intensity"]["nonfinite_replaced"], 4);
  EXPECT_EQ(json["intensity"]["max"], 2.0);  // +Inf became the largest finite value
  EXPECT_EQ(json["intensity"]["min"], 0.0);  // -Inf became the smallest, NaN became 0
}

TEST(CliInput, FourDimensionsSayWhichFrameIsUsed) {
  const CliRun run = unibiomed_cli("info " + quoted(sample("nibabel/example4d.nii.gz")));
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.out.find("frame 0 used"), std::string::npos) << run.out;
  const CliRun second =
      unibiomed_cli("info --frame 5 " + quoted(sample("nibabel/example4d.nii.gz")));
  EXPECT_EQ(second.code, 2) << second.err;
  EXPECT_NE(second.err.find("frame 5 requested but the image has 2 frames"), std::string::npos)
      << second.err;
}

TEST(CliUsage, UnknownOptionsAndValuesAreUsageErrors) {
  const CliRun unknown = unibiomed_cli("info --no-such-option x.nii");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("usage error"), std::string::npos) << unknown.err;
  const CliRun modality =
      unibiomed_cli("info --modality banana " + quoted(sample("mricron/ch2.nii.gz")));
  EXPECT_EQ(modality.code, 2);
  EXPECT_NE(modality.err.find("unknown modality 'banana'"), std::string::npos) << modality.err;
  EXPECT_EQ(unibiomed_cli("").code, 2);
}

TEST(CliInfo, DescribesTheCh2Scan) {
  const CliRun run = unibiomed_cli("info --json " + quoted(sample("mricron/ch2.nii.gz")));
  ASSERT_EQ(run.code, 0) << run.err;
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["format"], "NIfTI");
  EXPECT_EQ(json["size"], (std::vector<int>{181, 217, 181}));
  EXPECT_EQ(json["orientation"], "RAS");
  EXPECT_EQ(json["modality"], "unknown");
  const CliRun text = unibiomed_cli("info --modality mr " + quoted(sample("mricron/ch2.nii.gz")));
  EXPECT_NE(text.out.find("MR  (--modality)"), std::string::npos) << text.out;
}

}  // namespace

namespace {

using unibiomed::test::sample;

TEST(CliBadInput, DicomWithoutAnImageNamesWhatItIs) {
  expect_input_error(sample("pydicom/rtstruct.dcm"),
                     "DICOM file without an image (RTSTRUCT, RT Structure Set Storage)");
  expect_input_error(sample("pydicom/waveform_ecg.dcm"), "without an image (ECG");
}
TEST(CliBadInput, HeadersThatMakeGdcmAbortAreRefusedFirst) {
  // GDCM asserts (and aborts) on a frame increment pointer without a number of frames.
  expect_input_error(sample("pydicom/rtdose_1frame.dcm"),
                     "Frame Increment Pointer but no Number of Frames");
}
TEST(CliBadInput, UnsupportedVariantsSayWhatToDo) {
  expect_input_error(sample("nibabel/siemens_dwi_1000.dcm.gz"), "decompress it first");
  expect_input_error(sample("nibabel/example_nifti2.nii.gz"), "NIfTI-2 is not supported");
  expect_input_error(sample("nibabel/nifti1.hdr"), "without its data file nifti1.img");
  expect_input_error(sample("skimage/truncated.jpg"), "cannot decode the JPEG image");
}

}  // namespace
