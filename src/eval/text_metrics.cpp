// The COCO caption metrics (pycocoevalcap's definitions) for reports and VQA answers: corpus
// BLEU-1..4 with the "closest" reference length, sentence ROUGE-L averaged, corpus CIDEr-D, and
// METEOR (meteor.cpp).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "unibiomed/error.h"
#include "unibiomed/metrics.h"

namespace unibiomed::metrics {
namespace {

using Tokens = std::vector<std::string>;
using Ngram = std::vector<std::string>;
using Counts = std::map<Ngram, int>;

bool is_punctuation(unsigned char c) {
  return std::ispunct(c) != 0;
}

Counts ngram_counts(const Tokens& words, int max_n) {
  Counts counts;
  for (int n = 1; n <= max_n; ++n) {
    for (std::size_t i = 0; i + static_cast<std::size_t>(n) <= words.size(); ++i) {
      ++counts[Ngram(words.begin() + static_cast<long>(i),
                     words.begin() + static_cast<long>(i) + n)];
    }
  }
  return counts;
}

// pycocoevalcap's BLEU over a corpus of tokenised candidates.
std::array<double, 4> corpus_bleu(const std::vector<Tokens>& candidates,
                                  const std::vector<std::vector<Tokens>>& references) {
  constexpr double kTiny = 1e-15;
  constexpr double kSmall = 1e-9;
  std::array<double, 4> guess{}, correct{};
  double test_len = 0.0, ref_len = 0.0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Tokens& test = candidates[i];
    Counts max_ref;
    std::size_t closest = 0;
    bool first = true;
    for (const Tokens& ref : references[i]) {
      for (const auto& [gram, c] : ngram_counts(ref, 4)) max_ref[gram] = std::max(max_ref[gram], c);
      const auto distance = [&](std::size_t len) {
        return len > test.size() ? len - test.size() : test.size() - len;
      };
      if (first || distance(ref.size()) < distance(closest) ||
          (distance(ref.size()) == distance(closest) && ref.size() < closest)) {
        closest = ref.size();
        first = false;
      }
    }
    test_len += static_cast<double>(test.size());
    ref_len += static_cast<double>(closest);
    for (int k = 0; k < 4; ++k) {
      guess[k] += static_cast<double>(std::max<long>(static_cast<long>(test.size()) - k, 0));
    }
    for (const auto& [gram, c] : ngram_counts(test, 4)) {
      const auto found = max_ref.find(gram);
      if (found != max_ref.end()) correct[gram.size() - 1] += std::min(c, found->second);
    }
  }
  std::array<double, 4> bleu{};
  double product = 1.0;
  const double ratio = (test_len + kTiny) / (ref_len + kSmall);
  for (int k = 0; k < 4; ++k) {
    product *= (correct[k] + kTiny) / (guess[k] + kSmall);
    bleu[k] = std::pow(product, 1.0 / (k + 1));
    if (ratio < 1.0) bleu[k] *= std::exp(1.0 - 1.0 / ratio);
  }
  return bleu;
}

std::size_t lcs_length(const Tokens& a, const Tokens& b) {
  std::vector<std::size_t> row(b.size() + 1, 0), prev(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      row[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], row[j - 1]);
    }
    std::swap(row, prev);
  }
  return prev[b.size()];
}

// pycocoevalcap's CIDEr-D: tf-idf n-gram vectors (document frequencies over the references),
// clipped cosine similarity, Gaussian length penalty (sigma 6), x10.
std::vector<double> cider_d(const std::vector<Tokens>& candidates,
                            const std::vector<std::vector<Tokens>>& references) {
  constexpr int kN = 4;
  constexpr double kSigma = 6.0;
  std::map<Ngram, double> document_frequency;
  std::vector<std::vector<Counts>> ref_counts(references.size());
  for (std::size_t i = 0; i < references.size(); ++i) {
    std::set<Ngram> seen;
    for (const Tokens& ref : references[i]) {
      ref_counts[i].push_back(ngram_counts(ref, kN));
      for (const auto& entry : ref_counts[i].back()) seen.insert(entry.first);
    }
    for (const Ngram& gram : seen) document_frequency[gram] += 1.0;
  }
  const double log_docs = std::log(static_cast<double>(references.size()));
  struct Vec {
    std::array<std::map<Ngram, double>, kN> weights;
    std::array<double, kN> norm{};
    double length = 0.0;
  };
  const auto to_vec = [&](const Counts& counts) {
    Vec v;
    for (const auto& [gram, tf] : counts) {
      const auto df = document_frequency.find(gram);
      const double idf =
          log_docs - std::log(std::max(1.0, df == document_frequency.end() ? 0.0 : df->second));
      const std::size_t n = gram.size() - 1;
      const double w = tf * idf;
      v.weights[n][gram] = w;
      v.norm[n] += w * w;
      // pycocoevalcap counts the length in bigrams (its `n == 1` is the 0-based order)
      if (n == 1) v.length += tf;
    }
    for (double& x : v.norm) x = std::sqrt(x);
    return v;
  };
  std::vector<double> scores;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Vec hyp = to_vec(ngram_counts(candidates[i], kN));
    double total = 0.0;
    for (const Counts& rc : ref_counts[i]) {
      const Vec ref = to_vec(rc);
      const double delta = hyp.length - ref.length;
      for (int n = 0; n < kN; ++n) {
        double val = 0.0;
        for (const auto& [gram, w] : hyp.weights[n]) {
          const auto r = ref.weights[n].find(gram);
          if (r != ref.weights[n].end()) val += std::min(w, r->second) * r->second;
        }
        if (hyp.norm[n] != 0.0 && ref.norm[n] != 0.0) val /= hyp.norm[n] * ref.norm[n];
        total += val * std::exp(-(delta * delta) / (2.0 * kSigma * kSigma));
      }
    }
    const double refs = static_cast<double>(std::max<std::size_t>(1, ref_counts[i].size()));
    scores.push_back(total / kN / refs * 10.0);
  }
  return scores;
}

}  // namespace

std::vector<std::string> caption_tokens(const std::string& text) {
  static const char* const kClitics[] = {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"};
  Tokens out;
  std::string word;
  const auto flush = [&]() {
    if (word.empty()) return;
    // peel punctuation off both ends, then split a clitic off the end
    std::size_t a = 0, b = word.size();
    while (a < b && is_punctuation(static_cast<unsigned char>(word[a]))) ++a;
    while (b > a && is_punctuation(static_cast<unsigned char>(word[b - 1]))) --b;
    std::string core = word.substr(a, b - a);
    word.clear();
    if (core.empty()) return;
    for (const char* clitic : kClitics) {
      const std::string c(clitic);
      if (core.size() > c.size() && core.compare(core.size() - c.size(), c.size(), c) == 0) {
        out.push_back(core.substr(0, core.size() - c.size()));
        out.push_back(c);
        return;
      }
    }
    out.push_back(core);
  };
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isspace(c)) {
      flush();
    } else {
      word.push_back(static_cast<char>(std::tolower(c)));
    }
  }
  flush();
  return out;
}

double rouge_l(const std::vector<std::string>& candidate,
               const std::vector<std::vector<std::string>>& references) {
  constexpr double kBeta = 1.2;
  double prec_max = 0.0, rec_max = 0.0;
  for (const Tokens& ref : references) {
    const auto lcs = static_cast<double>(lcs_length(candidate, ref));
    if (!candidate.empty()) prec_max = std::max(prec_max, lcs / candidate.size());
    if (!ref.empty()) rec_max = std::max(rec_max, lcs / ref.size());
  }
  if (prec_max == 0.0 || rec_max == 0.0) return 0.0;
  return (1 + kBeta * kBeta) * prec_max * rec_max / (rec_max + kBeta * kBeta * prec_max);
}

TextScores score_text(const std::vector<std::string>& candidates,
                      const std::vector<std::vector<std::string>>& references) {
  if (candidates.size() != references.size()) {
    throw input_error("text metrics: " + std::to_string(candidates.size()) + " answers for " +
                      std::to_string(references.size()) + " reference sets");
  }
  TextScores s;
  s.count = candidates.size();
  if (candidates.empty()) return s;
  std::vector<Tokens> cand;
  std::vector<std::vector<Tokens>> refs(references.size());
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (references[i].empty()) {
      throw input_error("text metrics: answer " + std::to_string(i) + " has no reference");
    }
    cand.push_back(caption_tokens(candidates[i]));
    for (const auto& r : references[i]) refs[i].push_back(caption_tokens(r));
  }
  s.bleu = corpus_bleu(cand, refs);
  double rouge = 0.0, met = 0.0;
  for (std::size_t i = 0; i < cand.size(); ++i) {
    rouge += rouge_l(cand[i], refs[i]);
    met += meteor(cand[i], refs[i]);
  }
  const auto n = static_cast<double>(cand.size());
  s.rouge_l = rouge / n;
  s.meteor = met / n;
  const auto cider = cider_d(cand, refs);
  double sum = 0.0;
  for (const double c : cider) sum += c;
  s.cider = sum / n;
  return s;
}

std::array<double, 4> bleu(const std::vector<std::vector<std::string>>& candidates,
                           const std::vector<std::vector<std::vector<std::string>>>& references) {
  return corpus_bleu(candidates, references);
}

std::vector<double> cider(const std::vector<std::vector<std::string>>& candidates,
                          const std::vector<std::vector<std::vector<std::string>>>& references) {
  return cider_d(candidates, references);
}

}  // namespace unibiomed::metrics
