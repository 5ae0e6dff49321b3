// METEOR of Banerjee and Lavie (2005) with the exact-match module: unigram precision P and
// recall R, Fmean = 10PR / (R + 9P), fragmentation penalty 0.5 (chunks / matches)^3. The
// alignment has the most matches and, among those, the fewest crossings (pairs of matches whose
// order differs between candidate and reference), found by a beam search over the candidate's
// words. The COCO evaluation's METEOR 1.5 adds stem, synonym and paraphrase matches and other
// weights (docs/eval.md).
#include <algorithm>
#include <cmath>

#include "unibiomed/metrics.h"

namespace unibiomed::metrics {
namespace {

struct Alignment {
  std::vector<long> target;  // reference position of each candidate word, -1 when unmatched
  std::vector<bool> used;    // reference positions taken
  long crossings = 0;
};

// The alignment of `candidate` to `reference` with the most matches, then fewest crossings.
Alignment align(const std::vector<std::string>& candidate,
                const std::vector<std::string>& reference) {
  constexpr std::size_t kBeam = 64;
  std::vector<Alignment> beam(1);
  beam[0].used.assign(reference.size(), false);
  for (std::size_t i = 0; i < candidate.size(); ++i) {
    std::vector<Alignment> next;
    for (const Alignment& a : beam) {
      bool matched = false;
      for (std::size_t r = 0; r < reference.size(); ++r) {
        if (a.used[r] || reference[r] != candidate[i]) continue;
        matched = true;
        Alignment b = a;
        for (const long t : a.target) b.crossings += t > static_cast<long>(r) ? 1 : 0;
        b.target.push_back(static_cast<long>(r));
        b.used[r] = true;
        next.push_back(std::move(b));
      }
      // an exact match is always taken when one is free: the number of matches is then the
      // maximum (each word's matches are independent of the others')
      if (!matched) {
        Alignment b = a;
        b.target.push_back(-1);
        next.push_back(std::move(b));
      }
    }
    std::stable_sort(next.begin(), next.end(), [](const Alignment& x, const Alignment& y) {
      return x.crossings < y.crossings;
    });
    if (next.size() > kBeam) next.resize(kBeam);
    beam = std::move(next);
  }
  return beam.front();
}

double meteor_one(const std::vector<std::string>& candidate,
                  const std::vector<std::string>& reference) {
  if (candidate.empty() || reference.empty()) return 0.0;
  const Alignment a = align(candidate, reference);
  double matches = 0.0, chunks = 0.0;
  long previous = -2;
  for (const long t : a.target) {
    if (t < 0) {
      previous = -2;
      continue;
    }
    matches += 1.0;
    if (t != previous + 1) chunks += 1.0;
    previous = t;
  }
  if (matches == 0.0) return 0.0;
  const double p = matches / static_cast<double>(candidate.size());
  const double r = matches / static_cast<double>(reference.size());
  const double fmean = 10.0 * p * r / (r + 9.0 * p);
  const double penalty = 0.5 * std::pow(chunks / matches, 3.0);
  return fmean * (1.0 - penalty);
}

}  // namespace

double meteor(const std::vector<std::string>& candidate,
              const std::vector<std::vector<std::string>>& references) {
  double best = 0.0;
  for (const auto& ref : references) best = std::max(best, meteor_one(candidate, ref));
  return best;
}

}  // namespace unibiomed::metrics
