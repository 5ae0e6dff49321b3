// Canonical orientation and slicing: geometry is kept (every voxel stays at its physical
// point), and slicing then unslicing is the identity.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "unibiomed/preprocess.h"

namespace unibiomed {
namespace {

// A volume whose voxel value encodes its index, on the given geometry.
Volume indexed_volume(const Geometry& geometry, int channels = 1) {
  Volume volume;
  volume.geometry = geometry;
  volume.channels = channels;
  volume.voxels.resize(geometry.voxel_count() * static_cast<std::size_t>(channels));
  for (std::size_t i = 0; i < volume.voxels.size(); ++i) volume.voxels[i] = static_cast<float>(i);
  return volume;
}

Geometry make_geometry(std::array<std::size_t, 3> size, std::array<double, 9> direction) {
  Geometry g;
  g.size = size;
  g.spacing = {0.8, 1.1, 2.5};
  g.origin = {-12.5, 40.0, 7.25};
  g.direction = direction;
  return g;
}

const std::array<double, 9> kIdentity{1, 0, 0, 0, 1, 0, 0, 0, 1};
const std::array<double, 9> kRas{-1, 0, 0, 0, -1, 0, 0, 0, 1};       // NIfTI's usual layout
const std::array<double, 9> kPermuted{0, 0, -1, 1, 0, 0, 0, -1, 0};  // sagittal acquisition

std::array<double, 9> oblique() {
  // Rotation by 20 degrees about S, then 10 about L.
  const double a = 20.0 * M_PI / 180.0, b = 10.0 * M_PI / 180.0;
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double rx[9] = {1, 0, 0, 0, std::cos(b), -std::sin(b), 0, std::sin(b), std::cos(b)};
  std::array<double, 9> d{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) d[i * 3 + j] += rx[i * 3 + k] * rz[k * 3 + j];
  return d;
}

// Every output voxel sits at the same physical point as the input voxel it was copied from.
void expect_same_physical_points(const Volume& in, const Volume& out) {
  ASSERT_EQ(in.voxels.size(), out.voxels.size());
  const auto& s = out.geometry.size;
  for (std::size_t z = 0; z < s[2]; ++z) {
    for (std::size_t y = 0; y < s[1]; ++y) {
      for (std::size_t x = 0; x < s[0]; ++x) {
        const auto source =
            static_cast<std::size_t>(out.at(x, y, z)) / static_cast<std::size_t>(in.channels);
        const std::array<double, 3> in_index{
            static_cast<double>(source % in.geometry.size[0]),
            static_cast<double>(source / in.geometry.size[0] % in.geometry.size[1]),
            static_cast<double>(source / (in.geometry.size[0] * in.geometry.size[1]))};
        const auto p = in.geometry.index_to_point(in_index);
        const auto q = out.geometry.index_to_point({double(x), double(y), double(z)});
        for (int i = 0; i < 3; ++i) ASSERT_NEAR(p[i], q[i], 1e-9) << x << "," << y << "," << z;
      }
    }
  }
}

TEST(AxisMap, InverseAndCompositionAreConsistent) {
  const AxisMap map{{2, 0, 1}, {true, false, true}};
  EXPECT_TRUE(map.then(map.inverse()).is_identity());
  EXPECT_TRUE(map.inverse().then(map).is_identity());
  EXPECT_FALSE(map.is_identity());
}

TEST(Canonical, OrientationCodes) {
  EXPECT_EQ(make_geometry({4, 5, 6}, kIdentity).orientation_code(), "LPS");
  EXPECT_EQ(make_geometry({4, 5, 6}, kRas).orientation_code(), "RAS");
  EXPECT_EQ(make_geometry({4, 5, 6}, kPermuted).orientation_code(), "PIR");
}

TEST(Canonical, BringsEveryLayoutToLpsKeepingPhysicalPoints) {
  for (const auto& direction : {kIdentity, kRas, kPermuted}) {
    const Volume in = indexed_volume(make_geometry({4, 5, 6}, direction));
    const Volume out = reslice(in, canonical_axis_map(in.geometry));
    EXPECT_EQ(out.geometry.orientation_code(), "LPS");
    for (int i = 0; i < 9; ++i) EXPECT_NEAR(out.geometry.direction[i], kIdentity[i], 1e-12);
    expect_same_physical_points(in, out);
  }
}

TEST(Canonical, ObliqueGridGoesToTheNearestAxes) {
  const Volume in = indexed_volume(make_geometry({5, 4, 3}, oblique()));
  const Volume out = reslice(in, canonical_axis_map(in.geometry));
  EXPECT_EQ(out.geometry.orientation_code(), "LPS");
  for (int axis = 0; axis < 3; ++axis) EXPECT_GT(out.geometry.axis_direction(axis)[axis], 0.9);
  expect_same_physical_points(in, out);
}

TEST(Slicing, AxesFollowTheRadiologicalDisplay) {
  const Geometry g = make_geometry({4, 5, 6}, kIdentity);
  // Axial: columns towards L, rows towards P, slices towards S.
  EXPECT_EQ(reslice(g, slicing_axis_map(g, SliceAxis::Axial)).orientation_code(), "LPS");
  // Coronal: columns towards L, rows downwards (towards I), slices towards P.
  EXPECT_EQ(reslice(g, slicing_axis_map(g, SliceAxis::Coronal)).orientation_code(), "LIP");
  // Sagittal: columns towards P, rows towards I, slices towards L.
  EXPECT_EQ(reslice(g, slicing_axis_map(g, SliceAxis::Sagittal)).orientation_code(), "PIL");
  EXPECT_EQ(reslice(g, slicing_axis_map(g, SliceAxis::Coronal)).size,
            (std::array<std::size_t, 3>{4, 6, 5}));
}

TEST(Slicing, SliceThenUnsliceIsTheIdentityForEveryAxisAndLayout) {
  for (const auto& direction : {kIdentity, kRas, kPermuted, oblique()}) {
    for (const auto axis : {SliceAxis::Axial, SliceAxis::Coronal, SliceAxis::Sagittal}) {
      const Volume in = indexed_volume(make_geometry({7, 5, 3}, direction), 3);
      const AxisMap map = slicing_axis_map(in.geometry, axis);
      const Volume sliced = reslice(in, map);
      expect_same_physical_points(in, sliced);
      const Volume back = reslice(sliced, map.inverse());
      EXPECT_EQ(back.voxels, in.voxels) << to_string(axis);
      EXPECT_TRUE(back.geometry.same_grid(in.geometry, 1e-9)) << to_string(axis);

      LabelMap labels;
      labels.geometry = sliced.geometry;
      labels.labels.resize(sliced.geometry.voxel_count());
      for (std::size_t i = 0; i < labels.labels.size(); ++i)
        labels.labels[i] = static_cast<std::uint8_t>(i % 7);
      const LabelMap unsliced = reslice(labels, map.inverse());
      EXPECT_TRUE(unsliced.geometry.same_grid(in.geometry, 1e-9));
      EXPECT_EQ(reslice(unsliced, map).labels, labels.labels);
    }
  }
}

TEST(Frames, GreyIsReplicatedAndQuantised) {
  Volume display;
  display.geometry.size = {2, 1, 2};
  display.voxels = {0.0f, 12.9f, 254.99f, 255.0f};
  const Image8 frame = frame_rgb8(display, 1);
  EXPECT_EQ(frame.width, 2);
  EXPECT_EQ(frame.at(0, 0, 0), 254);
  EXPECT_EQ(frame.at(0, 0, 2), 254);
  EXPECT_EQ(frame.at(1, 0, 1), 255);
}

}  // namespace
}  // namespace unibiomed
