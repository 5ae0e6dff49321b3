// The results stage: the phrase of each [SEG] (against the Python reference) and the measures
// of a mask (the JSON and the text: test_result_json.cpp).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "results/results.h"
#include "test_support.h"
#include "unibiomed/error.h"

namespace {

using unibiomed::test::test_data;

struct PhraseCase {
  std::string answer;
  std::vector<std::string> targets;
  std::vector<std::string> expected;
};

// Made by tools/unibiomed_ref/prompt.py's seg_phrases (/usr/bin/python3, tools/ on sys.path):
// for each (answer, targets), the list it returns.
const std::vector<PhraseCase>& python_cases() {
  static const std::vector<PhraseCase> kCases = {
      {"It is [SEG].", {}, {"It is"}},
      {"It is [SEG].", {"brain"}, {"brain"}},
      {"There is a lesion <p>lesion</p> [SEG] in the left frontal lobe.", {}, {"lesion"}},
      {"The <p>lateral ventricles</p> [SEG] are not dilated.", {}, {"lateral ventricles"}},
      {"The [SEG].", {"brain"}, {"brain"}},
      {"", {}, {}},
      {"", {"liver"}, {}},
      {"No segmentation token here.", {}, {}},
      {"[SEG]", {}, {""}},
      {"[SEG]", {"liver", "spleen"}, {"liver"}},
      {"[SEG][SEG][SEG]", {"liver", "spleen"}, {"liver", "spleen", "spleen"}},
      {"<p>liver</p> [SEG], <p>spleen</p> [SEG] and <p> left kidney </p>[SEG].",
       {},
       {"liver", "spleen", "left kidney"}},
      {"<p>liver</p> [SEG] and the <p>spleen</p> is [SEG].", {}, {"liver", "and the spleen is"}},
      {"<p>liver</p> and more text [SEG].", {}, {"liver and more text"}},
      {"<p>liver</p> and more text [SEG].", {"organ"}, {"organ"}},
      {"<p>liver</p>.;: ,[SEG]", {}, {"liver"}},
      {"<p>liver</p>\n[SEG]", {}, {""}},
      {"<p>liver</p>\n[SEG]", {"x"}, {"x"}},
      {"<p>a</p><p>b</p>[SEG]", {}, {"b"}},
      {"<p>a</p> x </p>[SEG]", {}, {"a"}},
      {"<p>a</p> x </p>[SEG]", {"t"}, {"a"}},
      {"<p>unclosed [SEG] here.", {}, {"unclosed here"}},
      {"<p></p>[SEG]", {}, {""}},
      {"<p>  \t </p>[SEG]", {}, {""}},
      {"<p>multi\nline\nphrase</p> [SEG]", {}, {"multi\nline\nphrase"}},
      {"<p>p>x</p>[SEG]", {}, {"p>x"}},
      {"First sentence. The tumour [SEG] is large. Last.", {}, {"The tumour is large"}},
      {"First sentence.\nThe   tumour\t[SEG]   is\n large.", {}, {"The tumour is"}},
      {"A [SEG] and B [SEG] here.", {}, {"A and B", "and B here"}},
      {"A. [SEG]. B.", {}, {""}},
      {"Mass<vp></vp> at <img> [SEG] </img> region", {}, {"Mass at region"}},
      {"The [SE[SEG]G] odd", {}, {"The odd"}},
      {"Der Tumor (größer) [SEG] ist hier.", {}, {"Der Tumor (größer) ist hier"}},
      {"肝脏 <p>肝脏</p> [SEG]。", {}, {"肝脏"}},
      {"肝脏 [SEG] 在这里", {}, {"肝脏 在这里"}},
      {"\u3000全角\u3000[SEG]\u3000スペース\u3000", {}, {"全角 スペース"}},
      {"<p>\u00a0nbsp phrase\u2003</p>[SEG]", {}, {"nbsp phrase"}},
      {"word\u2028other [SEG] x\xc2\x85y", {}, {"word other x y"}},
      {"café\u00a0au\u00a0lait [SEG]", {}, {"café au lait"}},
      {"emoji 🧠 brain [SEG] 🫀.", {}, {"emoji 🧠 brain 🫀"}},
      {"\x1c"
       "fs\x1d [SEG] gs\x1e\x1f",
       {},
       {"fs gs"}},
      {"x [SEG] y\u200bz", {}, {"x y\u200bz"}},
      {"<p>liver</p> [SEG]", {"ignored"}, {"liver"}},
      {"tail text [SEG] then <p>spleen</p>[SEG] and [SEG]", {"t1", "t2"}, {"t1", "spleen", "t2"}},
      {"tail text [SEG] then <p>spleen</p>[SEG] and [SEG]",
       {},
       {"tail text then spleen", "spleen", "and"}},
      {"<P>upper</P> [SEG]", {}, {"<P>upper</P>"}},
      {"<p>a</p> , . ; : [SEG]", {}, {"a"}},
      {"<p>a</p> - [SEG]", {}, {"a -"}},
      {"[SEG] is the liver. More.", {}, {"is the liver"}},
      {"Line one\r\nthe <b>mass</b> [SEG]\r\nnext", {}, {"the <b>mass</b>"}},
      {"a\vb\fc [SEG] d\re", {}, {"a b c d e"}},
      {"only close </p> [SEG]", {}, {"only close"}},
      {"<p>3.5 cm mass</p> [SEG].", {}, {"3.5 cm mass"}},
      {"x [SEG] y.\nz", {}, {"x y"}},
      {"x [SEG] y\n.z", {}, {"x y"}},
      {"Findings:\n1. <p>nodule</p> [SEG]\n2. effusion [SEG]\n", {}, {"nodule", "effusion"}},
  };
  return kCases;
}

TEST(Phrases, MatchPythonReference) {
  for (const PhraseCase& c : python_cases()) {
    EXPECT_EQ(unibiomed::seg_phrases(c.answer, c.targets), c.expected) << "answer: " << c.answer;
  }
}

TEST(Phrases, DefaultTargetsAreNone) {
  EXPECT_EQ(unibiomed::seg_phrases("It is [SEG]."), std::vector<std::string>{"It is"});
}

// The golden answers of the tiny bundle: the phrase of each mask as the reference pipeline gave
// it (the target of a segment request, else the text).
TEST(Phrases, TinyGoldenCases) {
  const auto cases = unibiomed::test::read_json(test_data("tiny-golden") / "cases.json");
  std::size_t checked = 0;
  for (const auto& c : cases.at("cases")) {
    const std::string target = c.at("target").get<std::string>();
    const std::vector<std::string> targets =
        target.empty() ? std::vector<std::string>{} : std::vector<std::string>{target};
    std::vector<std::string> expected;
    if (c.contains("phrases")) {
      expected = c.at("phrases").get<std::vector<std::string>>();
    } else {
      for (const auto& m : c.at("masks")) expected.push_back(m.at("phrase").get<std::string>());
    }
    EXPECT_EQ(unibiomed::seg_phrases(c.at("text").get<std::string>(), targets), expected)
        << c.at("name").get<std::string>();
    ++checked;
  }
  EXPECT_GE(checked, 6u);
}

unibiomed::Finding finding_with_mask(int width, int height,
                                     const std::vector<std::array<int, 2>>& pixels) {
  unibiomed::Finding f;
  f.mask.assign(static_cast<std::size_t>(width) * static_cast<std::size_t>(height), 0);
  for (const auto& p : pixels) f.mask[static_cast<std::size_t>(p[1] * width + p[0])] = 1;
  return f;
}

TEST(Findings, AreaMm2AndBox) {
  // 5 x 4 image, pixels (x, y) = (1, 1), (3, 1), (2, 3).
  auto f = finding_with_mask(5, 4, {{1, 1}, {3, 1}, {2, 3}});
  unibiomed::measure_finding(f, 5, 4, std::array<double, 2>{0.5, 0.25});
  EXPECT_EQ(f.area_px, 3u);
  ASSERT_TRUE(f.area_mm2.has_value());
  EXPECT_DOUBLE_EQ(*f.area_mm2, 3 * 0.5 * 0.25);
  ASSERT_TRUE(f.box.has_value());
  EXPECT_EQ(*f.box, (std::array<int, 4>{1, 1, 3, 3}));

  unibiomed::measure_finding(f, 5, 4, std::nullopt);  // no spacing: no physical area
  EXPECT_EQ(f.area_px, 3u);
  EXPECT_FALSE(f.area_mm2.has_value());
  EXPECT_EQ(*f.box, (std::array<int, 4>{1, 1, 3, 3}));
}

TEST(Findings, CornersAndFullMask) {
  auto corner = finding_with_mask(7, 3, {{6, 2}});
  unibiomed::measure_finding(corner, 7, 3, std::nullopt);
  EXPECT_EQ(corner.area_px, 1u);
  EXPECT_EQ(*corner.box, (std::array<int, 4>{6, 2, 6, 2}));

  unibiomed::Finding full;
  full.mask.assign(12, 1);
  unibiomed::measure_finding(full, 4, 3, std::array<double, 2>{2.0, 3.0});
  EXPECT_EQ(full.area_px, 12u);
  EXPECT_DOUBLE_EQ(*full.area_mm2, 72.0);
  EXPECT_EQ(*full.box, (std::array<int, 4>{0, 0, 3, 2}));
}

TEST(Findings, EmptyMask) {
  auto f = finding_with_mask(4, 4, {});
  f.box = std::array<int, 4>{1, 2, 3, 4};  // stale values are replaced
  f.area_px = 9;
  unibiomed::measure_finding(f, 4, 4, std::array<double, 2>{0.7, 0.7});
  EXPECT_EQ(f.area_px, 0u);
  EXPECT_DOUBLE_EQ(*f.area_mm2, 0.0);
  EXPECT_FALSE(f.box.has_value());
}

TEST(Findings, MaskOfTheWrongSizeIsABug) {
  auto f = finding_with_mask(4, 4, {{0, 0}});
  EXPECT_THROW(unibiomed::measure_finding(f, 5, 4, std::nullopt), unibiomed::Error);
}

}  // namespace
