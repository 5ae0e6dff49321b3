// The result document (docs/result-format.md), the text printed on stdout, and file names.
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "results/results.h"

namespace unibiomed {
namespace {

const std::string kSeg = "[SEG]";

// The float as the double with the fewest digits that reads back as the same float, so that
// 0.87f is written 0.87 and not 0.8700000047683716. Not finite: null.
nlohmann::json float_json(float value) {
  if (!std::isfinite(value)) return nullptr;
  char buffer[64];
  const auto written = std::to_chars(buffer, buffer + sizeof(buffer), value);
  double shortest = static_cast<double>(value);
  if (written.ec == std::errc()) std::from_chars(buffer, written.ptr, shortest);
  return shortest;
}

nlohmann::json double_json(double value) {
  if (!std::isfinite(value)) return nullptr;
  return value;
}

template <std::size_t N>
nlohmann::json array_json(const std::array<double, N>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (const double v : values) out.push_back(double_json(v));
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  std::size_t start = 0;
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, start)) {
    out.append(s, start, at - start);
    out += to;
    start = at + from.size();
  }
  out.append(s, start, std::string::npos);
  return out;
}

// The answer's text with its k-th [SEG] replaced by "[mask N]" (N: the number of its k-th
// finding; a [SEG] without a finding stays as it is) and the phrase markers removed.
std::string answer_text(const Answer& a) {
  std::string out;
  std::size_t start = 0;
  std::size_t k = 0;
  for (std::size_t at = a.text.find(kSeg); at != std::string::npos;
       at = a.text.find(kSeg, start), ++k) {
    out.append(a.text, start, at - start);
    out += k < a.findings.size() ? "[mask " + std::to_string(a.findings[k] + 1) + "]" : kSeg;
    start = at + kSeg.size();
  }
  out.append(a.text, start, std::string::npos);
  return replace_all(replace_all(out, "<p>", ""), "</p>", "");
}

// An area in mm² for people: one decimal from 10 up, three significant digits below.
std::string format_area(double mm2) {
  char buffer[64];
  if (mm2 >= 10.0) {
    std::snprintf(buffer, sizeof(buffer), "%.1f", mm2);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.3g", mm2);
  }
  return buffer;
}

std::string finding_line(const Finding& f, std::size_t number, bool sequence) {
  std::ostringstream out;
  out << "mask " << number;
  if (!f.phrase.empty()) out << ": " << f.phrase;
  out << " \u2014 ";
  if (f.area_px == 0 || !f.box) {
    out << "empty (the model found nothing)";
    return out.str();
  }
  if (sequence) {
    out << f.area_px << " voxels";
    if (f.volume_ml) out << " (" << format_area(*f.volume_ml) << " mL)";
    if (f.frame_range) {
      out << ", slices " << (*f.frame_range)[0] << '-' << (*f.frame_range)[1] << " ("
          << f.frames_with_mask << " with mask)";
    }
  } else {
    out << f.area_px << " px";
    if (f.area_mm2) out << " (" << format_area(*f.area_mm2) << " mm\u00b2)";
  }
  const auto& b = *f.box;
  out << ", box " << b[0] << ',' << b[1] << '-' << b[2] << ',' << b[3];
  out << ", IoU " << std::fixed << std::setprecision(2) << static_cast<double>(f.iou);
  return out.str();
}

nlohmann::json answer_json(const Answer& a) {
  nlohmann::json j;
  j["target"] = a.target;
  j["user_text"] = a.user_text;
  j["prompt_ids"] = a.prompt_ids;
  j["output_ids"] = a.output_ids;
  j["text"] = a.text;
  j["stopped_by"] = a.stopped_by;
  j["truncated"] = a.stopped_by == "max_new_tokens";
  j["findings"] = a.findings;
  return j;
}

nlohmann::json finding_json(const Finding& f, std::size_t index, const ResultContext& ctx,
                            bool sequence) {
  nlohmann::json j;
  j["number"] = index + 1;
  j["answer"] = f.answer;
  j["phrase"] = f.phrase;
  j["area_px"] = f.area_px;
  j["area_mm2"] = f.area_mm2 ? double_json(*f.area_mm2) : nlohmann::json(nullptr);
  j["box"] = f.box ? nlohmann::json(*f.box) : nlohmann::json(nullptr);
  j["empty"] = f.area_px == 0;
  if (sequence) {
    j["voxels"] = f.area_px;
    j["volume_ml"] = f.volume_ml ? double_json(*f.volume_ml) : nlohmann::json(nullptr);
    nlohmann::json range = nullptr;
    if (f.frame_range) {
      range = nlohmann::json::array();
      for (const int z : *f.frame_range) range.push_back(static_cast<std::int64_t>(z));
    }
    j["frame_range"] = range;
    j["frames_with_mask"] = f.frames_with_mask;
  }
  j["iou"] = float_json(f.iou);
  j["candidate"] = f.candidate;
  nlohmann::json candidates = nlohmann::json::array();
  for (const float v : f.candidate_iou) candidates.push_back(float_json(v));
  j["candidate_iou"] = candidates;
  j["object_score"] = float_json(f.object_score);
  j["object_present"] = f.object_score > 0.0f;
  const bool has_file = index < ctx.mask_files.size() && !ctx.mask_files[index].empty();
  j["mask_file"] = has_file ? nlohmann::json(ctx.mask_files[index]) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json times_json(const StageTimes& t) {
  nlohmann::json j;
  j["preprocess"] = double_json(t.preprocess);
  j["vision"] = double_json(t.vision);
  j["prefill"] = double_json(t.prefill);
  j["decode"] = double_json(t.decode);
  j["decode_tokens"] = t.decode_tokens;
  j["decode_tokens_per_s"] = t.decode > 0.0
                                 ? double_json(static_cast<double>(t.decode_tokens) / t.decode)
                                 : nlohmann::json(nullptr);
  j["sam_encode"] = double_json(t.sam_encode);
  j["sam_decode"] = double_json(t.sam_decode);
  j["postprocess"] = double_json(t.postprocess);
  j["total"] = double_json(t.total);
  return j;
}

}  // namespace

nlohmann::json interpretation_to_json(const Interpretation& r, const ResultContext& ctx) {
  nlohmann::json j;
  j["format"] = "unibiomed-result";
  j["format_version"] = 1;
  const Geometry& g = ctx.input_geometry;
  j["input"] = {{"path", ctx.input_path},
                {"format", ctx.input_format},
                {"size", g.size},
                {"spacing", array_json(g.spacing)},
                {"origin", array_json(g.origin)},
                {"direction", array_json(g.direction)}};
  j["image"] = {{"width", r.width}, {"height", r.height}, {"frames", r.frames}};
  const bool sequence = r.frames > 1 || !r.llm_frames.empty();
  if (sequence) {
    j["sequence"] = {{"frames", r.frames},
                     {"slicing", ctx.slicing},
                     {"llm_frames", r.llm_frames},
                     {"frame_rule", r.frame_rule},
                     {"prompt_frames", to_string(r.prompt_frames)}};
  }
  if (!ctx.display.empty()) j["display"] = ctx.display;
  j["model"] = {{"name", ctx.model_name},
                {"dir", ctx.model_dir},
                {"demo", ctx.demo},
                {"device", ctx.device},
                {"dtype", ctx.dtype}};
  nlohmann::json answers = nlohmann::json::array();
  for (const Answer& a : r.answers) answers.push_back(answer_json(a));
  j["answers"] = answers;
  nlohmann::json findings = nlohmann::json::array();
  for (std::size_t i = 0; i < r.findings.size(); ++i) {
    findings.push_back(finding_json(r.findings[i], i, ctx, sequence));
  }
  j["findings"] = findings;
  j["overlay_file"] =
      ctx.overlay_file.empty() ? nlohmann::json(nullptr) : nlohmann::json(ctx.overlay_file);
  j["times"] = times_json(r.times);
  j["warnings"] = r.warnings;
  return j;
}

std::string interpretation_text(const Interpretation& r) {
  std::ostringstream out;
  const bool several = r.answers.size() > 1;
  for (const Answer& a : r.answers) {
    if (several && !a.target.empty()) out << a.target << ": ";
    out << answer_text(a) << '\n';
    if (a.stopped_by == "max_new_tokens") {
      out << "note: the answer" << (several && !a.target.empty() ? " for " + a.target : "")
          << " was cut at the max-new-tokens limit (" << a.output_ids.size()
          << " tokens) and may be incomplete\n";
    }
  }
  if (!r.findings.empty()) {
    if (!r.answers.empty()) out << '\n';
    for (std::size_t i = 0; i < r.findings.size(); ++i) {
      out << finding_line(r.findings[i], i + 1, r.frames > 1 || !r.llm_frames.empty()) << '\n';
    }
  }
  return out.str();
}

std::string finding_slug(const std::string& phrase) {
  constexpr std::size_t kMaxLength = 40;
  std::string slug;
  bool gap = false;
  for (const char c : phrase) {
    const bool digit = c >= '0' && c <= '9';
    const bool lower = c >= 'a' && c <= 'z';
    const bool upper = c >= 'A' && c <= 'Z';
    if (!digit && !lower && !upper) {
      gap = true;
      continue;
    }
    if (gap && !slug.empty()) slug += '_';
    gap = false;
    slug += upper ? static_cast<char>(c - 'A' + 'a') : c;
    if (slug.size() >= kMaxLength) break;
  }
  if (slug.size() > kMaxLength) slug.resize(kMaxLength);
  while (!slug.empty() && slug.back() == '_') slug.pop_back();
  return slug.empty() ? "finding" : slug;
}

std::string mask_file_name(std::size_t number, const std::string& phrase, bool picture_input) {
  char digits[32];
  std::snprintf(digits, sizeof(digits), "%02zu", number);
  return std::string("mask_") + digits + "_" + finding_slug(phrase) +
         (picture_input ? ".png" : ".nii.gz");
}

}  // namespace unibiomed
