// CT windows and percentile normalisation against the Python reference's golden values.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "test_support.h"
#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {
namespace {

using test::number;

TEST(Window, PresetsHaveTheReleaseBounds) {
  EXPECT_EQ(parse_window("abdomen").lo, -150);
  EXPECT_EQ(parse_window("abdomen").hi, 250);
  EXPECT_EQ(parse_window("lung").lo, -1000);
  EXPECT_EQ(parse_window("liver").hi, 230);
  const Window free = parse_window("400,40");
  EXPECT_EQ(free.lo, -160);
  EXPECT_EQ(free.hi, 240);
}

TEST(Window, RejectsBadSpecificationsByName) {
  try {
    parse_window("abdomenn");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("'abdomenn'"), std::string::npos);
  }
  EXPECT_THROW(parse_window("-5,40"), Error);
  EXPECT_THROW(parse_window("40"), Error);
}

TEST(Window, MatchesTheReferenceOnEveryGoldenCase) {
  const auto rows = test::read_tsv(test::golden_dir() / "window_cases.tsv");
  ASSERT_GT(rows.size(), 500u);
  for (const auto& row : rows) {
    const Window window = parse_window(row.at("spec"));
    ASSERT_EQ(window.lo, number(row, "lo")) << row.at("spec");
    ASSERT_EQ(window.hi, number(row, "hi")) << row.at("spec");
    const float value = window_value(number(row, "hu"), window);
    EXPECT_EQ(value, static_cast<float>(number(row, "windowed_f32")))
        << row.at("spec") << " at " << row.at("hu");
    EXPECT_EQ(quantize_u8(value), static_cast<int>(number(row, "u8")))
        << row.at("spec") << " at " << row.at("hu");
  }
}

TEST(Quantize, TruncatesAndClamps) {
  EXPECT_EQ(quantize_u8(-3.0f), 0);
  EXPECT_EQ(quantize_u8(0.99f), 0);
  EXPECT_EQ(quantize_u8(127.5f), 127);
  EXPECT_EQ(quantize_u8(254.999f), 254);
  EXPECT_EQ(quantize_u8(300.0f), 255);
  EXPECT_EQ(quantize_u8(std::nanf("")), 0);
}

TEST(Percentile, MatchesNumpyOnHandComputedValues) {
  std::vector<double> values = {5, 1, 4, 2, 3};  // sorted 1..5
  EXPECT_DOUBLE_EQ(percentile(values, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(values, 100), 5.0);
  EXPECT_DOUBLE_EQ(percentile(values, 50), 3.0);
  EXPECT_DOUBLE_EQ(percentile(values, 10), 1.4);    // position 0.4
  EXPECT_DOUBLE_EQ(percentile(values, 87.5), 4.5);  // position 3.5
}

TEST(Percentile, NormalisationMatchesTheReferenceOnEveryGoldenCase) {
  const auto rows = test::read_tsv(test::golden_dir() / "percentile_cases.tsv");
  std::map<std::string, std::vector<const test::Row*>> cases;
  for (const auto& row : rows) cases[row.at("case")].push_back(&row);
  ASSERT_GE(cases.size(), 4u);
  for (const auto& [name, items] : cases) {
    std::vector<double> positive;
    for (const auto* row : items) {
      if (number(*row, "input") > 0) positive.push_back(number(*row, "input"));
    }
    IntensityRange range;
    if (!positive.empty()) {
      auto scratch = positive;
      range.lo = percentile(scratch, 0.5);
      range.hi = percentile(scratch, 99.5);
      EXPECT_EQ(range.lo, number(*items.front(), "lo")) << name;
      EXPECT_EQ(range.hi, number(*items.front(), "hi")) << name;
    }
    for (const auto* row : items) {
      const float value = percentile_value(number(*row, "input"), range);
      EXPECT_EQ(value, static_cast<float>(number(*row, "normalized_f32")))
          << name << " index " << row->at("index");
      EXPECT_EQ(quantize_u8(value), static_cast<int>(number(*row, "u8"))) << name;
    }
  }
}

TEST(Display, ChoosesTheRuleByModalityAndStorage) {
  Volume ct;
  ct.geometry.size = {2, 1, 1};
  ct.modality = Modality::CT;
  ct.voxels = {-1000.0f, 50.0f};
  const auto ct_display = to_display(ct);
  EXPECT_EQ(ct_display.rule, IntensityRule::Window);
  EXPECT_EQ(ct_display.window.name, "abdomen");
  EXPECT_FLOAT_EQ(ct_display.volume.voxels[0], 0.0f);
  EXPECT_FLOAT_EQ(ct_display.volume.voxels[1], 127.5f);
  EXPECT_EQ(to_display(ct, {"lung"}).volume.voxels[1], window_value(50.0, parse_window("lung")));

  Volume picture = ct;
  picture.modality = Modality::Unknown;
  picture.source.pixel_type = "uint8";
  picture.voxels = {3.0f, 200.0f};
  EXPECT_EQ(to_display(picture).rule, IntensityRule::AsIs);
  EXPECT_EQ(to_display(picture).volume.voxels, picture.voxels);

  Volume mr = picture;
  mr.modality = Modality::MR;
  mr.source.pixel_type = "int16";
  mr.voxels = {0.0f, 10.0f};
  EXPECT_EQ(to_display(mr).rule, IntensityRule::Percentile);
}

}  // namespace
}  // namespace unibiomed
