// Evaluation metrics of `unibiomed eval`: segmentation overlap and surface distances on a grid
// with its spacing, recognition accuracy and per-class F1, and the COCO caption metrics for
// reports and answers (BLEU-1..4, ROUGE-L, METEOR, CIDEr-D). Definitions: docs/eval.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace unibiomed::metrics {

// A binary mask on a grid of `size` voxels (x fastest) with `spacing` in millimetres; a 2-D
// mask has size[2] == 1.
struct BinaryMask {
  std::array<std::size_t, 3> size{1, 1, 1};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  std::vector<std::uint8_t> voxels;  // 0 or not 0

  std::size_t count() const;
};

struct SegmentationScores {
  double dice = 0.0;  // 2|A∩B| / (|A|+|B|); 1 when both are empty
  double iou = 0.0;   // |A∩B| / |A∪B|; 1 when both are empty
  // 95th percentile Hausdorff distance in mm: the larger of the two directed 95th percentiles
  // of surface-to-surface distances. 0 when both are empty; NaN when exactly one is.
  double hd95 = 0.0;
  // Normalised surface Dice at `tolerance_mm`: the share of both surfaces' voxels lying within
  // the tolerance of the other surface. 1 when both are empty, 0 when exactly one is.
  double nsd = 0.0;
};

// All four scores of `prediction` against `truth` (same size and spacing, else an Error).
SegmentationScores score_segmentation(const BinaryMask& truth, const BinaryMask& prediction,
                                      double nsd_tolerance_mm = 1.0);

// Distances in mm from each surface voxel of `from` to the nearest surface voxel of `to`
// (a surface voxel is a foreground voxel with a background 6-neighbour, or 4-neighbour in 2-D,
// or on the grid's edge). Empty when either has no foreground.
std::vector<double> surface_distances(const BinaryMask& from, const BinaryMask& to);

// The release's recognition rule: the answer is right when it contains the ground-truth label
// (case-insensitive, on word boundaries).
bool answer_names_label(const std::string& answer, const std::string& label);

// The class an answer names: the longest of `classes` found in it (on word boundaries,
// case-insensitive), or "" when none is.
std::string class_named(const std::string& answer, const std::vector<std::string>& classes);

struct ClassificationScores {
  double accuracy = 0.0;                       // share of answers naming their label
  double macro_f1 = 0.0;                       // mean of per_class_f1
  std::map<std::string, double> per_class_f1;  // predicted class = class_named(answer)
  std::size_t count = 0;
};

ClassificationScores score_classification(const std::vector<std::string>& answers,
                                          const std::vector<std::string>& labels,
                                          const std::vector<std::string>& classes);

// COCO caption evaluation's tokenisation: lower case, punctuation split off and dropped,
// clitics ("'s", "n't") split as the PTB tokenizer does.
std::vector<std::string> caption_tokens(const std::string& text);

struct TextScores {
  std::array<double, 4> bleu{};  // corpus BLEU-1..4 ("closest" reference length, as COCO)
  double rouge_l = 0.0;          // mean sentence ROUGE-L (LCS F-measure, beta 1.2)
  double meteor = 0.0;           // mean sentence METEOR (exact matches; docs/eval.md)
  double cider = 0.0;            // corpus CIDEr-D (n 4, sigma 6, x10)
  std::size_t count = 0;
};

// Scores candidates[i] against references[i] (one or more each) over the whole corpus.
TextScores score_text(const std::vector<std::string>& candidates,
                      const std::vector<std::vector<std::string>>& references);

// Corpus BLEU-1..4 and per-candidate CIDEr-D of already tokenised text (score_text tokenises
// with caption_tokens first).
std::array<double, 4> bleu(const std::vector<std::vector<std::string>>& candidates,
                           const std::vector<std::vector<std::vector<std::string>>>& references);
std::vector<double> cider(const std::vector<std::vector<std::string>>& candidates,
                          const std::vector<std::vector<std::vector<std::string>>>& references);

// Sentence METEOR of Banerjee and Lavie (2005) with exact unigram matches: Fmean = 10PR/(R+9P),
// penalty 0.5 (chunks/matches)^3, over the alignment with the most matches and, among those, the
// fewest crossings; the best over the references.
double meteor(const std::vector<std::string>& candidate,
              const std::vector<std::vector<std::string>>& references);

// Sentence ROUGE-L as COCO computes it (beta 1.2, best precision and recall over references).
double rouge_l(const std::vector<std::string>& candidate,
               const std::vector<std::vector<std::string>>& references);

}  // namespace unibiomed::metrics
