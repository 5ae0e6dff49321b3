// Recognition metrics: the release's accuracy rule (the ground-truth label appears in the
// answer) and per-class F1 with the class an answer names.
#include <algorithm>
#include <cctype>
#include <map>

#include "unibiomed/error.h"
#include "unibiomed/metrics.h"

namespace unibiomed::metrics {
namespace {

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

// Whether `needle` occurs in `text` with no letter or digit right before or after it.
bool contains_words(const std::string& text, const std::string& needle) {
  if (needle.empty()) return false;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    const bool left = at == 0 || !word_char(text[at - 1]);
    const std::size_t end = at + needle.size();
    const bool right = end == text.size() || !word_char(text[end]);
    if (left && right) return true;
  }
  return false;
}

}  // namespace

bool answer_names_label(const std::string& answer, const std::string& label) {
  return contains_words(lower(answer), lower(label));
}

std::string class_named(const std::string& answer, const std::vector<std::string>& classes) {
  const std::string text = lower(answer);
  std::string best;
  for (const auto& c : classes) {
    if (c.size() > best.size() && contains_words(text, lower(c))) best = c;
  }
  return best;
}

ClassificationScores score_classification(const std::vector<std::string>& answers,
                                          const std::vector<std::string>& labels,
                                          const std::vector<std::string>& classes) {
  if (answers.size() != labels.size()) {
    throw input_error("classification metrics: " + std::to_string(answers.size()) +
                      " answers for " + std::to_string(labels.size()) + " labels");
  }
  ClassificationScores s;
  s.count = answers.size();
  if (answers.empty()) return s;
  std::map<std::string, std::size_t> tp, fp, fn;
  std::size_t right = 0;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    right += answer_names_label(answers[i], labels[i]) ? 1 : 0;
    const std::string predicted = class_named(answers[i], classes);
    if (predicted == labels[i]) {
      ++tp[labels[i]];
    } else {
      ++fn[labels[i]];
      if (!predicted.empty()) ++fp[predicted];
    }
  }
  s.accuracy = static_cast<double>(right) / static_cast<double>(answers.size());
  // classes that are neither a label nor named by an answer have no F1 and do not count
  double sum = 0.0;
  for (const auto& c : classes) {
    const auto t = static_cast<double>(tp[c]);
    const double denominator = 2.0 * t + static_cast<double>(fp[c] + fn[c]);
    if (denominator == 0.0) continue;
    s.per_class_f1[c] = 2.0 * t / denominator;
    sum += s.per_class_f1[c];
  }
  s.macro_f1 = s.per_class_f1.empty() ? 0.0 : sum / static_cast<double>(s.per_class_f1.size());
  return s;
}

}  // namespace unibiomed::metrics
