// Evaluation metrics against hand-computed values and published examples.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "unibiomed/error.h"
#include "unibiomed/metrics.h"

namespace um = unibiomed::metrics;

namespace {

// A 2-D mask of `rows` strings, '#' foreground, with the given pixel spacing.
um::BinaryMask picture(const std::vector<std::string>& rows, double sx = 1.0, double sy = 1.0) {
  um::BinaryMask m;
  m.size = {rows[0].size(), rows.size(), 1};
  m.spacing = {sx, sy, 1.0};
  for (const auto& row : rows) {
    for (const char c : row) m.voxels.push_back(c == '#' ? 1 : 0);
  }
  return m;
}

// A box [x0,x1) x [y0,y1) x [z0,z1) in a grid of n^3 voxels with the given spacing.
um::BinaryMask box(std::size_t n, std::array<std::size_t, 6> b, std::array<double, 3> spacing) {
  um::BinaryMask m;
  m.size = {n, n, n};
  m.spacing = spacing;
  m.voxels.assign(n * n * n, 0);
  for (std::size_t z = b[4]; z < b[5]; ++z)
    for (std::size_t y = b[2]; y < b[3]; ++y)
      for (std::size_t x = b[0]; x < b[1]; ++x) m.voxels[(z * n + y) * n + x] = 1;
  return m;
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::string w;
  for (const char c : text + " ") {
    if (c == ' ') {
      if (!w.empty()) out.push_back(w);
      w.clear();
    } else {
      w.push_back(c);
    }
  }
  return out;
}

}  // namespace

TEST(SegmentationMetrics, DiceAndIouByHand) {
  // truth 4 pixels, prediction 6 pixels, 2 shared: Dice 4/10, IoU 2/8
  const auto truth = picture({"##..", "##..", "....", "...."});
  const auto pred = picture({".###", ".#..", ".##.", "...."});
  const auto s = um::score_segmentation(truth, pred);
  EXPECT_DOUBLE_EQ(s.dice, 0.4);
  EXPECT_DOUBLE_EQ(s.iou, 0.25);
}

TEST(SegmentationMetrics, EmptyMasks) {
  const auto empty = picture({"...", "..."});
  const auto one = picture({"#..", "..."});
  auto s = um::score_segmentation(empty, empty);
  EXPECT_EQ(s.dice, 1.0);
  EXPECT_EQ(s.hd95, 0.0);
  EXPECT_EQ(s.nsd, 1.0);
  s = um::score_segmentation(empty, one);
  EXPECT_EQ(s.dice, 0.0);
  EXPECT_TRUE(std::isnan(s.hd95));
  EXPECT_EQ(s.nsd, 0.0);
}

TEST(SegmentationMetrics, SurfaceDistancesUseSpacing) {
  // two single pixels 3 columns and 4 rows apart, spacing 2 mm (x) and 0.5 mm (y):
  // sqrt(6^2 + 2^2) mm
  const auto a = picture({"#...", "....", "....", "....", "...."}, 2.0, 0.5);
  const auto b = picture({"....", "....", "....", "....", "...#"}, 2.0, 0.5);
  const auto d = um::surface_distances(a, b);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NEAR(d[0], std::sqrt(40.0), 1e-12);
  const auto s = um::score_segmentation(a, b);
  EXPECT_NEAR(s.hd95, std::sqrt(40.0), 1e-12);
}

TEST(SegmentationMetrics, ShiftedCubeHd95AndNsd3d) {
  // a 4x4x4 cube and the same cube shifted by 2 voxels along z, 1.5 mm slices: every surface
  // voxel of a face away from the other cube is 3 mm away.
  const auto a = box(10, {2, 6, 2, 6, 2, 6}, {1.0, 1.0, 1.5});
  const auto b = box(10, {2, 6, 2, 6, 4, 8}, {1.0, 1.0, 1.5});
  const auto s = um::score_segmentation(a, b, 1.0);
  EXPECT_DOUBLE_EQ(s.dice, 0.5);
  EXPECT_DOUBLE_EQ(s.iou, 1.0 / 3.0);
  // Directed distances from a's 56 surface voxels (checked by brute force over all pairs):
  // 24 on b's surface (0 mm), 4 at 1 mm (a's top face inside b, one voxel from b's wall),
  // 12 at 1.5 mm (a's z=3 ring, one slice below b), 16 at 3 mm (a's bottom face).
  auto d = um::surface_distances(a, b);
  ASSERT_EQ(d.size(), 56u);
  std::sort(d.begin(), d.end());
  EXPECT_EQ(std::count(d.begin(), d.end(), 0.0), 24);
  EXPECT_EQ(std::count(d.begin(), d.end(), 1.0), 4);
  EXPECT_EQ(std::count(d.begin(), d.end(), 1.5), 12);
  EXPECT_EQ(std::count(d.begin(), d.end(), 3.0), 16);
  EXPECT_DOUBLE_EQ(s.hd95, 3.0);
  EXPECT_DOUBLE_EQ(s.nsd, 0.5);  // 28 of 56 on each side within 1 mm
  EXPECT_DOUBLE_EQ(um::score_segmentation(a, b, 1.5).nsd, 40.0 / 56.0);
}

TEST(SegmentationMetrics, MismatchedGridsAreErrors) {
  const auto a = picture({"#.", ".."});
  const auto b = picture({"#..", "..."});
  EXPECT_THROW(um::score_segmentation(a, b), unibiomed::Error);
  auto c = picture({"#.", ".."}, 2.0);
  EXPECT_THROW(um::score_segmentation(a, c), unibiomed::Error);
}

TEST(ClassificationMetrics, ReleaseRuleAndF1) {
  const std::vector<std::string> classes{"tumor", "no tumor", "glioma"};
  EXPECT_TRUE(um::answer_names_label("The image shows a Glioma.", "glioma"));
  EXPECT_FALSE(um::answer_names_label("gliomas are", "glioma"));
  EXPECT_EQ(um::class_named("There is no tumor.", classes), "no tumor");
  const std::vector<std::string> answers{"It is a tumor.", "No tumor is seen.", "A glioma.",
                                         "It is a tumor.", "Nothing to say."};
  const std::vector<std::string> labels{"tumor", "no tumor", "tumor", "glioma", "glioma"};
  const auto s = um::score_classification(answers, labels, classes);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.4);
  // tumor: tp 1, fp 1 (answer 4), fn 1 (answer 3) -> F1 0.5; no tumor: tp 1 -> 1;
  // glioma: tp 0, fp 1 (answer 3), fn 2 -> 0
  EXPECT_DOUBLE_EQ(s.per_class_f1.at("tumor"), 0.5);
  EXPECT_DOUBLE_EQ(s.per_class_f1.at("no tumor"), 1.0);
  EXPECT_DOUBLE_EQ(s.per_class_f1.at("glioma"), 0.0);
  EXPECT_DOUBLE_EQ(s.macro_f1, 0.5);
}

TEST(TextMetrics, CaptionTokens) {
  EXPECT_EQ(
      um::caption_tokens("The lesion's rim, isn't it?  Left-sided."),
      (std::vector<std::string>{"the", "lesion", "'s", "rim", "is", "n't", "it", "left-sided"}));
}

TEST(TextMetrics, BleuPublishedExample) {
  // Papineni et al. (2002), candidate 1 and the three references, as in NLTK's documentation of
  // sentence_bleu (cased tokens): BLEU-4 = 0.5045666840058485.
  const auto hyp = words(
      "It is a guide to action which ensures that the military always obeys the commands of the "
      "party");
  const std::vector<std::vector<std::string>> refs{
      words("It is a guide to action that ensures that the military will forever heed Party "
            "commands"),
      words("It is the guiding principle which guarantees the military forces always being under "
            "the command of the Party"),
      words("It is the practical guide for the army always to heed the directions of the party")};
  const auto b = um::bleu({hyp}, {refs});
  EXPECT_NEAR(b[3], 0.5045666840058485, 1e-8);
}

TEST(TextMetrics, BleuBrevityPenaltyByHand) {
  // "the cat" against "the cat is on the mat": all n-grams match, BP = exp(1 - 6/2)
  const auto b = um::bleu({words("the cat")}, {{words("the cat is on the mat")}});
  EXPECT_NEAR(b[0], std::exp(-2.0), 1e-9);
  EXPECT_NEAR(b[1], std::exp(-2.0), 1e-9);
  // no trigram in the candidate: precision (0 + 1e-15) / (0 + 1e-9), as pycocoevalcap
  EXPECT_NEAR(b[2], std::cbrt(1e-6) * std::exp(-2.0), 1e-11);
}

TEST(TextMetrics, MeteorPublishedExamples) {
  // Banerjee and Lavie (2005) scoring, the examples of Wikipedia's METEOR article
  const std::vector<std::vector<std::string>> ref{words("the cat sat on the mat")};
  EXPECT_NEAR(um::meteor(words("the cat sat on the mat"), ref), 0.9977, 5e-5);
  EXPECT_NEAR(um::meteor(words("on the mat sat the cat"), ref), 0.5000, 5e-5);
  EXPECT_NEAR(um::meteor(words("the cat was sat on the mat"), ref), 0.9654, 5e-5);
}

TEST(TextMetrics, RougeLByHand) {
  // LCS of "the lesion is in the left lobe" (7) and "a lesion in the left frontal lobe" (7) is
  // "lesion in the left lobe" (5): P = R = 5/7, F(beta 1.2) = 5/7
  const double r = um::rouge_l(words("the lesion is in the left lobe"),
                               {words("a lesion in the left frontal lobe")});
  EXPECT_NEAR(r, 5.0 / 7.0, 1e-12);
}

TEST(TextMetrics, CiderByHand) {
  // Two images; the candidate of image 0 equals its only reference. Its unigram vector:
  // "a" appears in both images' references (idf log(2) - log(2) = 0), "cat" only in image 0
  // (idf log 2). The cosine of identical vectors is 1 for n = 1..3 and 0 for n = 4 (no 4-gram),
  // the length penalty is 1: CIDEr-D = 10 x 3/4.
  const std::vector<std::vector<std::string>> hyps{words("a cat sits"), words("a dog")};
  const std::vector<std::vector<std::vector<std::string>>> refs{{words("a cat sits")},
                                                                {words("a dog runs")}};
  const auto c = um::cider(hyps, refs);
  EXPECT_NEAR(c[0], 7.5, 1e-9);
  // image 1: unigrams {a: 0, dog: log2} vs {a: 0, dog: log2, runs: log2}: cosine 1/sqrt 2;
  // bigrams {a dog} vs {a dog, dog runs}: 1/sqrt 2; no trigram in the candidate: 0, 0;
  // lengths in bigrams 1 vs 2: penalty exp(-1/72). (1/sqrt2 + 1/sqrt2) / 4 * 10 * penalty
  EXPECT_NEAR(c[1], 2.0 / std::sqrt(2.0) / 4.0 * 10.0 * std::exp(-1.0 / 72.0), 1e-9);
}

TEST(TextMetrics, ScoreTextIdenticalIsPerfect) {
  const auto s = um::score_text({"There is a lesion in the left frontal lobe."},
                                {{"there is a lesion in the left frontal lobe"}});
  EXPECT_NEAR(s.bleu[3], 1.0, 1e-6);
  EXPECT_NEAR(s.rouge_l, 1.0, 1e-12);
  EXPECT_GT(s.meteor, 0.99);
  EXPECT_THROW(um::score_text({"a"}, {}), unibiomed::Error);
}
