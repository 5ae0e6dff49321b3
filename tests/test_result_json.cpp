// The result JSON and the text printed on stdout of an interpretation, and the names of the
// mask files.
#include <gtest/gtest.h>

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results/results.h"

namespace {

// Two answers (one per segment target), three findings: a lesion with a physical area, an empty
// one, and one without spacing.
unibiomed::Interpretation sample_interpretation() {
  unibiomed::Interpretation r;
  r.width = 20;
  r.height = 10;
  unibiomed::Answer liver;
  liver.target = "liver";
  liver.user_text = "<image>Please segment liver.";
  liver.prompt_ids = {1, 2, 3};
  liver.output_ids = {7, 8, 9, 2};
  liver.text = "The <p>liver</p> [SEG] and a <p>cyst</p>[SEG].";
  liver.stopped_by = "stop_word";
  liver.findings = {0, 1};
  unibiomed::Answer spleen;
  spleen.target = "spleen";
  spleen.user_text = "<image>Please segment spleen.";
  spleen.prompt_ids = {1, 2, 4};
  spleen.output_ids = {7, 7, 7, 7, 7};
  spleen.text = "It is [SEG] and";
  spleen.stopped_by = "max_new_tokens";
  spleen.findings = {2};
  r.answers = {liver, spleen};

  unibiomed::Finding a;
  a.answer = 0;
  a.phrase = "liver";
  a.mask.assign(200, 0);
  a.area_px = 120;
  a.area_mm2 = 30.0;
  a.box = std::array<int, 4>{2, 3, 14, 17};
  a.candidate = 2;
  a.candidate_iou = {0.25f, 0.5f, 0.87f};
  a.iou = 0.87f;
  a.object_score = 3.5f;
  unibiomed::Finding b;
  b.answer = 0;
  b.phrase = "cyst";
  b.area_mm2 = 0.0;
  b.candidate_iou = {0.1f, 0.2f, 0.3f};
  b.iou = 0.3f;
  b.object_score = -2.0f;
  unibiomed::Finding c;
  c.answer = 1;
  c.phrase = "spleen";
  c.area_px = 5;
  c.box = std::array<int, 4>{0, 0, 4, 0};
  c.iou = 0.5f;
  r.findings = {a, b, c};
  r.times.preprocess = 0.5;
  r.times.vision = 1.0;
  r.times.prefill = 0.25;
  r.times.decode = 2.0;
  r.times.decode_tokens = 9;
  r.times.sam_encode = 0.75;
  r.times.sam_decode = 0.125;
  r.times.postprocess = 0.0625;
  r.times.total = 5.0;
  r.warnings = {"a warning"};
  return r;
}

unibiomed::ResultContext sample_context() {
  unibiomed::ResultContext ctx;
  ctx.input_path = "/data/ct.nii.gz";
  ctx.input_format = "nifti";
  ctx.input_geometry.size = {20, 10, 3};
  ctx.input_geometry.spacing = {0.5, 0.5, 2.0};
  ctx.input_geometry.origin = {-10.0, 5.0, 1.5};
  ctx.input_geometry.direction = {-1, 0, 0, 0, -1, 0, 0, 0, 1};
  ctx.model_name = "tiny";
  ctx.model_dir = "/models/tiny";
  ctx.demo = true;
  ctx.device = "cpu";
  ctx.dtype = "fp32";
  ctx.mask_files = {"mask_01_liver.nii.gz", "mask_02_cyst.nii.gz", "mask_03_spleen.nii.gz"};
  ctx.overlay_file = "overlay.png";
  return ctx;
}

TEST(Results, JsonFields) {
  const auto j = unibiomed::interpretation_to_json(sample_interpretation(), sample_context());
  EXPECT_EQ(j.at("format"), "unibiomed-result");
  EXPECT_EQ(j.at("format_version"), 1);
  const auto& in = j.at("input");
  EXPECT_EQ(in.at("path"), "/data/ct.nii.gz");
  EXPECT_EQ(in.at("format"), "nifti");
  EXPECT_EQ(in.at("size"), nlohmann::json({20, 10, 3}));
  EXPECT_EQ(in.at("spacing"), nlohmann::json({0.5, 0.5, 2.0}));
  EXPECT_EQ(in.at("origin"), nlohmann::json({-10.0, 5.0, 1.5}));
  EXPECT_EQ(in.at("direction"), nlohmann::json({-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0}));
  EXPECT_EQ(j.at("image"), nlohmann::json({{"width", 20}, {"height", 10}, {"frames", 1}}));
  EXPECT_FALSE(j.contains("sequence"));
  EXPECT_EQ(j.at("model"), nlohmann::json({{"name", "tiny"},
                                           {"dir", "/models/tiny"},
                                           {"demo", true},
                                           {"device", "cpu"},
                                           {"dtype", "fp32"}}));
  const auto& answers = j.at("answers");
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].at("target"), "liver");
  EXPECT_EQ(answers[0].at("user_text"), "<image>Please segment liver.");
  EXPECT_EQ(answers[0].at("prompt_ids"), nlohmann::json({1, 2, 3}));
  EXPECT_EQ(answers[0].at("output_ids"), nlohmann::json({7, 8, 9, 2}));
  EXPECT_EQ(answers[0].at("text"), "The <p>liver</p> [SEG] and a <p>cyst</p>[SEG].");
  EXPECT_EQ(answers[0].at("stopped_by"), "stop_word");
  EXPECT_EQ(answers[0].at("truncated"), false);
  EXPECT_EQ(answers[0].at("findings"), nlohmann::json({0, 1}));
  EXPECT_EQ(answers[1].at("truncated"), true);
  EXPECT_EQ(answers[1].at("findings"), nlohmann::json({2}));

  const auto& findings = j.at("findings");
  ASSERT_EQ(findings.size(), 3u);
  const auto& a = findings[0];
  EXPECT_EQ(a.at("number"), 1);
  EXPECT_EQ(a.at("answer"), 0);
  EXPECT_EQ(a.at("phrase"), "liver");
  EXPECT_EQ(a.at("area_px"), 120);
  EXPECT_EQ(a.at("area_mm2"), 30.0);
  EXPECT_EQ(a.at("box"), nlohmann::json({2, 3, 14, 17}));
  EXPECT_EQ(a.at("empty"), false);
  EXPECT_EQ(a.at("iou"), 0.87);  // the float's shortest form, not 0.8700000047683716
  EXPECT_EQ(a.at("candidate"), 2);
  EXPECT_EQ(a.at("candidate_iou"), nlohmann::json({0.25, 0.5, 0.87}));
  EXPECT_EQ(a.at("object_score"), 3.5);
  EXPECT_EQ(a.at("object_present"), true);
  EXPECT_EQ(a.at("mask_file"), "mask_01_liver.nii.gz");
  EXPECT_EQ(a.size(), 13u);  // no other key: above all, no mask pixels
  const auto& b = findings[1];
  EXPECT_EQ(b.at("number"), 2);
  EXPECT_EQ(b.at("area_px"), 0);
  EXPECT_EQ(b.at("area_mm2"), 0.0);
  EXPECT_TRUE(b.at("box").is_null());
  EXPECT_EQ(b.at("empty"), true);
  EXPECT_EQ(b.at("object_present"), false);
  EXPECT_EQ(findings[2].at("answer"), 1);
  EXPECT_TRUE(findings[2].at("area_mm2").is_null());
  EXPECT_EQ(findings[2].at("candidate_iou"), nlohmann::json::array());
  EXPECT_EQ(j.at("overlay_file"), "overlay.png");

  const auto& t = j.at("times");
  EXPECT_EQ(t.at("preprocess"), 0.5);
  EXPECT_EQ(t.at("vision"), 1.0);
  EXPECT_EQ(t.at("prefill"), 0.25);
  EXPECT_EQ(t.at("decode"), 2.0);
  EXPECT_EQ(t.at("decode_tokens"), 9);
  EXPECT_EQ(t.at("decode_tokens_per_s"), 4.5);
  EXPECT_EQ(t.at("sam_encode"), 0.75);
  EXPECT_EQ(t.at("sam_decode"), 0.125);
  EXPECT_EQ(t.at("postprocess"), 0.0625);
  EXPECT_EQ(t.at("total"), 5.0);
  EXPECT_EQ(j.at("warnings"), nlohmann::json({"a warning"}));
  EXPECT_EQ(j.dump().find("mask\""), std::string::npos);
}

TEST(Results, JsonWithoutFiles) {
  auto r = sample_interpretation();
  r.times = {};
  r.warnings.clear();
  unibiomed::ResultContext ctx;  // no files written
  const auto j = unibiomed::interpretation_to_json(r, ctx);
  for (const auto& f : j.at("findings")) EXPECT_TRUE(f.at("mask_file").is_null());
  EXPECT_TRUE(j.at("overlay_file").is_null());
  EXPECT_TRUE(j.at("times").at("decode_tokens_per_s").is_null());
  EXPECT_EQ(j.at("warnings"), nlohmann::json::array());
  EXPECT_EQ(j.at("model").at("demo"), false);
  EXPECT_EQ(j.at("input").at("direction"),
            nlohmann::json({1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0}));
}

TEST(Results, TextOfOneAnswer) {
  unibiomed::Interpretation r;
  unibiomed::Answer a;
  a.target = "lesion";  // one answer: no prefix
  a.text = "There is a lesion <p>lesion</p> [SEG] in the left frontal lobe.";
  a.stopped_by = "stop_word";
  a.findings = {0};
  r.answers = {a};
  unibiomed::Finding f;
  f.phrase = "lesion";
  f.area_px = 11523;
  f.box = std::array<int, 4>{0, 0, 180, 216};
  f.iou = 0.494f;
  r.findings = {f};
  EXPECT_EQ(unibiomed::interpretation_text(r),
            "There is a lesion lesion [mask 1] in the left frontal lobe.\n"
            "\n"
            "mask 1: lesion — 11523 px, box 0,0-180,216, IoU 0.49\n");
  r.findings[0].area_mm2 = 2880.75;
  EXPECT_EQ(unibiomed::interpretation_text(r),
            "There is a lesion lesion [mask 1] in the left frontal lobe.\n"
            "\n"
            "mask 1: lesion — 11523 px (2880.8 mm²), box 0,0-180,216, IoU 0.49\n");
}

TEST(Results, TextOfSeveralAnswers) {
  EXPECT_EQ(unibiomed::interpretation_text(sample_interpretation()),
            "liver: The liver [mask 1] and a cyst[mask 2].\n"
            "spleen: It is [mask 3] and\n"
            "note: the answer for spleen was cut at the max-new-tokens limit (5 tokens) and may "
            "be incomplete\n"
            "\n"
            "mask 1: liver — 120 px (30.0 mm²), box 2,3-14,17, IoU 0.87\n"
            "mask 2: cyst — empty (the model found nothing)\n"
            "mask 3: spleen — 5 px, box 0,0-4,0, IoU 0.50\n");
}

TEST(Results, TextWithoutFindings) {
  unibiomed::Interpretation r;
  unibiomed::Answer a;
  a.text = "No abnormality is seen.";
  a.stopped_by = "max_new_tokens";
  a.output_ids = {1, 2};
  r.answers = {a};
  EXPECT_EQ(unibiomed::interpretation_text(r),
            "No abnormality is seen.\n"
            "note: the answer was cut at the max-new-tokens limit (2 tokens) and may be "
            "incomplete\n");
  EXPECT_EQ(unibiomed::interpretation_text({}), "");
}

TEST(Results, SmallAreasKeepThreeDigits) {
  unibiomed::Interpretation r;
  unibiomed::Finding f;
  f.phrase = "cell";
  f.area_px = 4;
  f.area_mm2 = 4 * 0.00025 * 0.00025;
  f.box = std::array<int, 4>{1, 1, 2, 2};
  f.iou = 1.0f;
  r.findings = {f};
  EXPECT_EQ(unibiomed::interpretation_text(r),
            "mask 1: cell — 4 px (2.5e-07 mm²), box 1,1-2,2, IoU 1.00\n");
}

TEST(Results, FindingSlug) {
  EXPECT_EQ(unibiomed::finding_slug("liver"), "liver");
  EXPECT_EQ(unibiomed::finding_slug("Lateral Ventricles"), "lateral_ventricles");
  EXPECT_EQ(unibiomed::finding_slug("  --Left kidney (upper pole)!! "), "left_kidney_upper_pole");
  EXPECT_EQ(unibiomed::finding_slug("3.5 cm mass"), "3_5_cm_mass");
  EXPECT_EQ(unibiomed::finding_slug("café au lait"), "caf_au_lait");
  EXPECT_EQ(unibiomed::finding_slug("肝脏"), "finding");
  EXPECT_EQ(unibiomed::finding_slug(""), "finding");
  EXPECT_EQ(unibiomed::finding_slug("___"), "finding");
  EXPECT_EQ(unibiomed::finding_slug(std::string(50, 'a')), std::string(40, 'a'));
  // Cut at 40 characters, no '_' left at the end.
  EXPECT_EQ(unibiomed::finding_slug(std::string(39, 'b') + " c"), std::string(39, 'b'));
  EXPECT_EQ(unibiomed::finding_slug(std::string(38, 'b') + " cd"), std::string(38, 'b') + "_c");
}

TEST(Results, MaskFileName) {
  EXPECT_EQ(unibiomed::mask_file_name(1, "Lesion", true), "mask_01_lesion.png");
  EXPECT_EQ(unibiomed::mask_file_name(12, "left kidney", false), "mask_12_left_kidney.nii.gz");
  EXPECT_EQ(unibiomed::mask_file_name(123, "", true), "mask_123_finding.png");
}

}  // namespace
