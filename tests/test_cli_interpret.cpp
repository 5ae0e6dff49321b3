// `unibiomed interpret` with the tiny test bundle on real sample images of several kinds (X-ray
// DICOM, pathology PNG, fundus JPEG, MR PNG and MR DICOM), one task each: the answer on stdout,
// result.json as docs/result-format.md describes it, and mask files that lie on the input's own
// grid (PNG of the picture's size, or NIfTI with the scan's geometry) and agree with the
// findings' area and box.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli_support.h"
#include "test_support.h"
#include "unibiomed/read.h"
#include "unibiomed/volume.h"

namespace fs = std::filesystem;

namespace {

using unibiomed::test::CliRun;
using unibiomed::test::interpret_tiny;
using unibiomed::test::Interpreted;
using unibiomed::test::quoted;
using unibiomed::test::read_json;
using unibiomed::test::sample;
using unibiomed::test::scratch_dir;
using unibiomed::test::test_data;
using unibiomed::test::unibiomed_cli;

// Runs `unibiomed interpret -q -m tiny-bundle -o <fresh folder> INPUT ARGUMENTS`.
Interpreted interpret(const std::string& name, const fs::path& input,
                      const std::string& arguments) {
  return interpret_tiny(name, input, arguments);
}

// The smallest box holding the nonzero pixels of a width x height mask (x fastest).
std::optional<std::array<int, 4>> box_of(const std::vector<float>& values, int width, int height,
                                         int channels) {
  std::optional<std::array<int, 4>> box;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const std::size_t i = (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                             static_cast<std::size_t>(x)) *
                            static_cast<std::size_t>(channels);
      if (values[i] == 0.0f) continue;
      if (!box) {
        box = std::array<int, 4>{x, y, x, y};
      } else {
        (*box)[0] = std::min((*box)[0], x);
        (*box)[1] = std::min((*box)[1], y);
        (*box)[2] = std::max((*box)[2], x);
        (*box)[3] = std::max((*box)[3], y);
      }
    }
  }
  return box;
}

void expect_same_geometry(const unibiomed::Geometry& got, const unibiomed::Geometry& want) {
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

// Everything every successful run must satisfy. `picture`: PNG masks and no mm² areas; else
// NIfTI masks on the input's geometry and areas in mm². `json`: stdout holds the document, not
// the text.
void expect_complete_result(const Interpreted& r, const fs::path& input, bool picture,
                            bool json = false) {
  ASSERT_EQ(r.run.code, 0) << r.run.err;
  if (!json) {
    EXPECT_NE(r.run.out.find("[mask 1]"), std::string::npos) << r.run.out;
    EXPECT_NE(r.run.out.find("\nmask 1: "), std::string::npos) << r.run.out;
  }
  ASSERT_TRUE(r.result.is_object()) << "no result.json in " << r.dir;
  const nlohmann::json& j = r.result;
  EXPECT_EQ(j["format"], "unibiomed-result");
  EXPECT_EQ(j["format_version"], 1);

  const unibiomed::Volume in = unibiomed::read_image(input);
  const int width = static_cast<int>(in.geometry.size[0]);
  const int height = static_cast<int>(in.geometry.size[1]);
  EXPECT_EQ(j["image"]["width"], width);
  EXPECT_EQ(j["image"]["height"], height);
  EXPECT_EQ(j["input"]["size"], nlohmann::json(in.geometry.size));
  EXPECT_EQ(j["input"]["format"], in.source.format);
  EXPECT_EQ(j["model"]["name"], "unibiomed-tiny-test");
  EXPECT_TRUE(j["warnings"].is_array());

  // Answers: each one's text holds as many [SEG] as it has findings (the tiny model writes one).
  ASSERT_TRUE(j["answers"].is_array());
  ASSERT_FALSE(j["answers"].empty());
  std::size_t listed = 0;
  for (std::size_t a = 0; a < j["answers"].size(); ++a) {
    const auto& answer = j["answers"][a];
    const std::string text = answer["text"];
    EXPECT_NE(text.find("[SEG]"), std::string::npos) << text;
    EXPECT_FALSE(answer["output_ids"].empty());
    EXPECT_FALSE(answer["prompt_ids"].empty());
    EXPECT_EQ(answer["truncated"], answer["stopped_by"] == "max_new_tokens");
    for (const auto& f : answer["findings"]) {
      ASSERT_LT(f.get<std::size_t>(), j["findings"].size());
      EXPECT_EQ(j["findings"][f.get<std::size_t>()]["answer"], a);
      ++listed;
    }
  }
  ASSERT_FALSE(j["findings"].empty());
  EXPECT_EQ(listed, j["findings"].size());

  for (std::size_t i = 0; i < j["findings"].size(); ++i) {
    const auto& f = j["findings"][i];
    SCOPED_TRACE("finding " + std::to_string(i + 1));
    EXPECT_EQ(f["number"], i + 1);
    if (!json) {
      EXPECT_NE(r.run.out.find("[mask " + std::to_string(i + 1) + "]"), std::string::npos)
          << r.run.out;
    }
    const std::size_t area = f["area_px"];
    EXPECT_EQ(f["empty"], area == 0);
    EXPECT_EQ(f["box"].is_null(), area == 0);
    EXPECT_EQ(f["object_present"], f["object_score"].get<double>() > 0.0);
    ASSERT_TRUE(f["mask_file"].is_string());
    const std::string name = f["mask_file"];
    char number[32];
    std::snprintf(number, sizeof(number), "%02zu", i + 1);
    EXPECT_EQ(name.rfind(std::string("mask_") + number + "_", 0), 0U) << name;
    const fs::path file = r.dir / name;
    ASSERT_TRUE(fs::is_regular_file(file)) << file;

    const unibiomed::Volume mask = unibiomed::read_image(file);
    std::size_t on = 0;
    bool binary = true;
    const float one = picture ? 255.0f : 1.0f;
    for (const float v : mask.voxels) {
      if (v == one) ++on;
      binary = binary && (v == 0.0f || v == one);
    }
    on /= static_cast<std::size_t>(mask.channels);
    EXPECT_TRUE(binary) << file << " holds values other than 0 and " << one;
    if (picture) {
      EXPECT_EQ(name.substr(name.size() - 4), ".png") << name;
      EXPECT_EQ(mask.source.format, "PNG");
      EXPECT_EQ(mask.geometry.size[0], in.geometry.size[0]) << "mask width";
      EXPECT_EQ(mask.geometry.size[1], in.geometry.size[1]) << "mask height";
      EXPECT_EQ(mask.geometry.size[2], 1U);
      EXPECT_TRUE(f["area_mm2"].is_null()) << f["area_mm2"];
    } else {
      EXPECT_EQ(name.substr(name.size() - 7), ".nii.gz") << name;
      EXPECT_EQ(mask.source.format, "NIfTI");
      EXPECT_EQ(mask.channels, 1);
      expect_same_geometry(mask.geometry, in.geometry);
      ASSERT_TRUE(f["area_mm2"].is_number()) << f["area_mm2"];
      EXPECT_NEAR(f["area_mm2"].get<double>(),
                  static_cast<double>(area) * in.geometry.spacing[0] * in.geometry.spacing[1],
                  1e-6 * std::max(1.0, f["area_mm2"].get<double>()));
    }
    EXPECT_EQ(on, area) << "mask pixels in " << file;
    if (mask.geometry.size[0] == in.geometry.size[0] &&
        mask.geometry.size[1] == in.geometry.size[1]) {
      const auto box = box_of(mask.voxels, width, height, mask.channels);
      if (box) {
        EXPECT_EQ(f["box"], nlohmann::json(*box));
      } else {
        EXPECT_TRUE(f["box"].is_null());
      }
    }
  }

  ASSERT_EQ(j["overlay_file"], "overlay.png");
  ASSERT_TRUE(fs::is_regular_file(r.dir / "overlay.png"));
  const unibiomed::Volume overlay = unibiomed::read_image(r.dir / "overlay.png");
  EXPECT_EQ(overlay.geometry.size[0], in.geometry.size[0]) << "overlay width";
  EXPECT_EQ(overlay.geometry.size[1], in.geometry.size[1]) << "overlay height";
  EXPECT_EQ(overlay.channels, 3);
  // No temporary files are left behind.
  for (const auto& entry : fs::directory_iterator(r.dir)) {
    const std::string file = entry.path().filename().string();
    EXPECT_TRUE(file == "result.json" || file == "overlay.png" || file.rfind("mask_", 0) == 0)
        << "unexpected file " << file;
  }
}

TEST(CliInterpret, XRayDicomSegmentGivesNiftiMasksOnTheScanGrid) {
  const fs::path input = sample("ami/monochrome2.dcm");  // CR, 4240 x 3480, 0.1 mm pixels
  const Interpreted r = interpret("xray", input, "--task segment --target 'left lung'");
  expect_complete_result(r, input, /*picture=*/false);
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["answers"].size(), 1U);
  EXPECT_EQ(r.result["answers"][0]["target"], "left lung");
  EXPECT_EQ(r.result["input"]["format"], "DICOM");
  EXPECT_EQ(r.result["findings"][0]["phrase"], "left lung");
  EXPECT_EQ(r.result["findings"][0]["mask_file"], "mask_01_left_lung.nii.gz");
}

TEST(CliInterpret, PathologyPngDiagnose) {
  const fs::path input = sample("skimage/ihc.png");
  const Interpreted r = interpret("ihc", input, "--task diagnose");
  expect_complete_result(r, input, /*picture=*/true);
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["answers"][0]["target"], "");
  EXPECT_NE(r.result["answers"][0]["user_text"].get<std::string>().find("abnormality"),
            std::string::npos);
}

TEST(CliInterpret, FundusJpegReportGivesPngMasks) {
  const fs::path input = sample("skimage/retina.jpg");
  const Interpreted r = interpret("retina", input, "--task report --modality fundus");
  expect_complete_result(r, input, /*picture=*/true);
}

TEST(CliInterpret, MrPngVqa) {
  const fs::path input = sample("itk/BrainT1Slice.png");
  const Interpreted r =
      interpret("t1_vqa", input, "--task vqa --question 'Where are the ventricles?'");
  expect_complete_result(r, input, /*picture=*/true);
  if (!r.result.is_object()) return;
  EXPECT_NE(
      r.result["answers"][0]["user_text"].get<std::string>().find("Where are the ventricles?"),
      std::string::npos);
}

// An oblique sagittal MR slice: the NIfTI mask keeps its direction cosines and origin.
TEST(CliInterpret, MrDicomRegionKeepsTheObliqueGeometry) {
  const fs::path input = sample("ami/adi_slice.dcm");  // 192 x 192, PIR, 1.146 mm pixels
  const Interpreted r = interpret("adi_region", input,
                                  "--task region --box 40,50,120,140 --question 'What is this?'");
  expect_complete_result(r, input, /*picture=*/false);
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["input"]["direction"].size(), 9U);
  EXPECT_GT(r.result["findings"][0]["area_mm2"].get<double>(), 0.0);
}

TEST(CliInterpret, JsonPrintsTheResultDocument) {
  const fs::path input = test_data("tiny-golden") / "inputs" / "brain_pd_segment.png";
  const Interpreted r = interpret("json", input, "--json --target brain");
  expect_complete_result(r, input, /*picture=*/true, /*json=*/true);
  if (!r.result.is_object()) return;
  const nlohmann::json printed = nlohmann::json::parse(r.run.out);
  EXPECT_EQ(printed, r.result);
  // The golden answer of this case.
  EXPECT_EQ(r.result["answers"][0]["text"], "It is [SEG].");
  EXPECT_EQ(r.result["findings"][0]["phrase"], "brain");
}

TEST(CliInterpret, SeveralTargetsGiveOneAnswerEach) {
  const fs::path input = sample("itk/BrainT1Slice.png");
  const Interpreted r = interpret("targets", input,
                                  "--task segment --target brain --target 'left ventricle' "
                                  "--target skull");
  expect_complete_result(r, input, /*picture=*/true);
  if (!r.result.is_object()) return;
  const auto& answers = r.result["answers"];
  ASSERT_EQ(answers.size(), 3U);
  const std::vector<std::string> targets = {"brain", "left ventricle", "skull"};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(answers[i]["target"], targets[i]);
    EXPECT_NE(answers[i]["user_text"].get<std::string>().find(targets[i]), std::string::npos);
    EXPECT_FALSE(answers[i]["findings"].empty());
    // Each answer's line on stdout starts with its target.
    EXPECT_NE(r.run.out.find(targets[i] + ": "), std::string::npos) << r.run.out;
  }
  ASSERT_GE(r.result["findings"].size(), 3U);
  // Findings are numbered answer by answer, in the order the targets were given.
  std::size_t last = 0;
  for (const auto& f : r.result["findings"]) {
    EXPECT_GE(f["answer"].get<std::size_t>(), last);
    last = f["answer"];
  }
  EXPECT_EQ(r.result["findings"][0]["phrase"], "brain");
}

// A MetaImage slice with NaN voxels: the reader replaces them and says so; docs/result-format.md
// lists "NaN voxels replaced" among the warnings the result carries.
TEST(CliInterpret, ReaderWarningsReachTheResult) {
  const fs::path dir = scratch_dir("interpret_nan_input");
  const fs::path input = dir / "nan_slice.mha";
  {
    std::ofstream out(input, std::ios::binary);
    out << "ObjectType = Image\nNDims = 2\nDimSize = 64 48\nElementSpacing = 0.5 0.7\n"
           "Offset = 10 -20\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n";
    for (int y = 0; y < 48; ++y) {
      for (int x = 0; x < 64; ++x) {
        float v = static_cast<float>((x - 32) * (x - 32) + (y - 24) * (y - 24) < 300 ? 400 : 50);
        if (x == 3 && y < 5) v = std::nanf("");
        out.write(reinterpret_cast<const char*>(&v), sizeof(v));
      }
    }
  }
  const unibiomed::Volume volume = unibiomed::read_image(input);
  ASSERT_EQ(volume.source.nonfinite_replaced, 5U);
  ASSERT_FALSE(volume.source.warnings.empty());

  const Interpreted r = interpret("nan", input, "--target lesion --modality mr");
  expect_complete_result(r, input, /*picture=*/false);
  if (!r.result.is_object()) return;
  EXPECT_EQ(r.result["input"]["format"], "MetaImage");
  const std::string warnings = r.result["warnings"].dump();
  EXPECT_NE(warnings.find(volume.source.warnings.front()), std::string::npos)
      << "result.json warnings " << warnings << " do not carry the reader's warning '"
      << volume.source.warnings.front() << "'";
}

}  // namespace
