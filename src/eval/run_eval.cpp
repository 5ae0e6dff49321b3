// `unibiomed eval`: each item of each dataset through the one loaded model (the same stages as
// `interpret`: its masks are written on the image's own grid and read back, so they are scored
// as a user gets them), then the metrics of the task, the reports and the baseline comparison.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <set>

#include "prompt/request_prompt.h"
#include "tools/prepared_input.h"
#include "unibiomed/error.h"
#include "unibiomed/eval.h"
#include "unibiomed/read.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A mask file as a binary mask on its grid (any channel > 0, or == value for a label map).
metrics::BinaryMask read_mask(const fs::path& file, std::optional<int> value) {
  const Volume v = read_image(file);
  metrics::BinaryMask m;
  m.size = v.geometry.size;
  m.spacing = v.geometry.spacing;
  m.voxels.assign(v.geometry.voxel_count(), 0);
  const auto channels = static_cast<std::size_t>(v.channels);
  for (std::size_t i = 0; i < m.voxels.size(); ++i) {
    bool on = false;
    for (std::size_t c = 0; c < channels; ++c) {
      const float x = v.voxels[i * channels + c];
      on = on || (value ? std::lround(x) == *value : x > 0.0f);
    }
    m.voxels[i] = on ? 1 : 0;
  }
  return m;
}

struct Scores {  // sums over items, then means
  std::map<std::string, std::vector<double>> values;
  std::map<std::string, std::vector<double>> label_dice;
  void add(const std::string& metric, double v) { values[metric].push_back(v); }
};

double mean_finite(const std::vector<double>& v) {
  double sum = 0.0;
  std::size_t n = 0;
  for (const double x : v) {
    if (std::isfinite(x)) {
      sum += x;
      ++n;
    }
  }
  return n ? sum / static_cast<double>(n) : std::nan("");
}

// An answer without the grounding markup ("<p>", "</p>", "[SEG]"), as references are written.
std::string plain_text(std::string text) {
  for (const std::string mark : {" [SEG]", "[SEG]", "<p>", "</p>"}) {
    for (auto at = text.find(mark); at != std::string::npos; at = text.find(mark)) {
      text.erase(at, mark.size());
    }
  }
  return text;
}

InterpretRequest request_for(const EvalDataset& d, const EvalItem& item) {
  InterpretRequest r;
  r.task = d.task;
  if (d.task == "segment") {
    for (const auto& m : item.masks) r.targets.push_back(m.label);
  }
  if (d.task == "vqa") r.question = item.question;
  return r;
}

// Runs one item and adds its scores. Texts of report/vqa and labels of diagnose are gathered
// for the corpus metrics.
void score_item(Session& session, const Model& model, const fs::path& model_dir,
                const EvalDataset& d, const EvalItem& item, const fs::path& pred_dir,
                Scores& scores, std::vector<std::string>& answers) {
  InterpretCommand command;
  command.input = item.image.string();
  command.request = request_for(d, item);
  command.axis = d.axis;
  if (!d.modality.empty()) command.read.modality = parse_modality(d.modality);
  const PreparedInput input = prepare_input(command);
  const Interpretation result = interpret_prepared(session, input, command.request);
  const nlohmann::json doc = write_outputs(input, result, model, model_dir, pred_dir);

  std::string text;
  for (const auto& a : result.answers) text += (text.empty() ? "" : " ") + plain_text(a.text);
  answers.push_back(text);

  // Masks: segment asks one prompt per label (answer i, its first finding); the other tasks
  // compare the union of all their findings with the union of the ground-truth masks.
  const auto finding_file = [&](std::size_t f) -> std::optional<fs::path> {
    const auto& j = doc["findings"][f]["mask_file"];
    if (j.is_null()) return std::nullopt;
    return pred_dir / j.get<std::string>();
  };
  std::vector<std::pair<std::string, std::vector<std::size_t>>> pairs;  // label -> findings
  if (d.task == "segment") {
    for (std::size_t i = 0; i < item.masks.size(); ++i) {
      pairs.push_back({item.masks[i].label, i < result.answers.size()
                                                ? result.answers[i].findings
                                                : std::vector<std::size_t>{}});
    }
  } else if (!item.masks.empty()) {
    std::vector<std::size_t> all(result.findings.size());
    for (std::size_t f = 0; f < all.size(); ++f) all[f] = f;
    pairs.push_back({"grounding", all});
  }
  for (const auto& [label, findings] : pairs) {
    metrics::BinaryMask truth;
    for (const auto& m : item.masks) {
      if (d.task == "segment" && m.label != label) continue;
      const auto one = read_mask(m.file, m.value);
      if (truth.voxels.empty()) {
        truth = one;
      } else if (one.size == truth.size) {
        for (std::size_t i = 0; i < one.voxels.size(); ++i) truth.voxels[i] |= one.voxels[i];
      }
    }
    metrics::BinaryMask pred = truth;
    std::fill(pred.voxels.begin(), pred.voxels.end(), 0);
    bool empty = true;
    for (const std::size_t f : findings) {
      const auto file = finding_file(f);
      if (!file) continue;
      const auto m = read_mask(*file, std::nullopt);
      if (m.voxels.size() != pred.voxels.size()) {
        throw input_error(item.image.string() + ": the ground truth of '" + label + "' has " +
                          std::to_string(pred.voxels.size()) + " voxels, the image " +
                          std::to_string(m.voxels.size()));
      }
      for (std::size_t i = 0; i < m.voxels.size(); ++i) {
        pred.voxels[i] |= m.voxels[i];
        empty = empty && !m.voxels[i];
      }
    }
    if (!findings.empty()) scores.add("empty_mask_rate", empty ? 1.0 : 0.0);
    const auto s = metrics::score_segmentation(truth, pred, d.nsd_tolerance_mm);
    scores.add("dice", s.dice);
    scores.add("iou", s.iou);
    scores.add("hd95_mm", s.hd95);
    scores.add("nsd", s.nsd);
    scores.label_dice[label].push_back(s.dice);
  }
}

DatasetReport evaluate_dataset(const EvalDataset& d, Session& session, const Model& model,
                               const fs::path& model_dir, const fs::path& pred_root, bool keep,
                               std::ostream& log, bool progress) {
  DatasetReport r;
  r.name = d.name;
  r.task = d.task;
  r.modality = d.modality;
  r.items = d.items.size();
  r.status = "ok";
  const auto start = Clock::now();
  Scores scores;
  std::vector<std::string> answers, labels;
  std::vector<std::vector<std::string>> references;
  for (std::size_t i = 0; i < d.items.size(); ++i) {
    const EvalItem& item = d.items[i];
    const fs::path pred_dir = pred_root / d.name / item.id;
    try {
      score_item(session, model, model_dir, d, item, pred_dir, scores, answers);
      labels.push_back(item.label);
      references.push_back(item.answers);
    } catch (const std::exception& e) {
      ++r.items_failed;
      log << "eval: " << d.name << " " << item.id << ": " << e.what() << "\n";
    }
    if (!keep) {
      std::error_code ec;
      fs::remove_all(pred_dir, ec);
    }
    if (progress) {
      log << "\reval: " << d.name << " " << (i + 1) << "/" << d.items.size() << std::flush;
    }
  }
  if (progress) log << "\n";
  for (const auto& [metric, values] : scores.values) r.metrics[metric] = mean_finite(values);
  for (const auto& [label, values] : scores.label_dice)
    r.per_label_dice[label] = mean_finite(values);
  if (d.task == "diagnose" && !answers.empty()) {
    std::vector<std::string> classes = d.classes;
    if (classes.empty()) {
      std::set<std::string> seen(labels.begin(), labels.end());
      classes.assign(seen.begin(), seen.end());
    }
    const auto c = metrics::score_classification(answers, labels, classes);
    r.metrics["accuracy"] = c.accuracy;
    r.metrics["macro_f1"] = c.macro_f1;
  }
  if ((d.task == "report" || d.task == "vqa") && !answers.empty()) {
    const auto t = metrics::score_text(answers, references);
    for (int n = 0; n < 4; ++n) r.metrics["bleu" + std::to_string(n + 1)] = t.bleu[n];
    r.metrics["rouge_l"] = t.rouge_l;
    r.metrics["meteor"] = t.meteor;
    r.metrics["cider"] = t.cider;
  }
  if (r.items_failed == r.items) {
    r.status = "failed";
    r.error = "every item failed (see the log)";
  }
  r.seconds = since(start);
  return r;
}

}  // namespace

EvalOutcome run_eval(const EvalCommand& command, std::ostream& out, std::ostream& log) {
  if (command.dataset.empty() == command.registry.empty()) {
    throw usage_error("eval takes a dataset folder or --registry FILE (one of them)");
  }
  // The datasets to run: (registry entry or a bare one, where its manifest is).
  std::vector<std::pair<RegistryEntry, fs::path>> todo;
  if (!command.registry.empty()) {
    if (command.data_root.empty()) throw usage_error("--registry needs --data-root DIR");
    const auto entries = read_registry(command.registry);
    for (const auto& name : command.only) {
      bool known = false;
      for (const auto& e : entries) known = known || e.name == name;
      if (!known) throw usage_error("--only " + name + ": not in " + command.registry);
    }
    for (const auto& e : entries) {
      if (!command.only.empty() &&
          std::find(command.only.begin(), command.only.end(), e.name) == command.only.end()) {
        continue;
      }
      todo.push_back({e, fs::path(command.data_root) / e.layout});
    }
  } else {
    RegistryEntry e;
    e.split = "given";
    todo.push_back({e, fs::path(command.dataset)});
  }

  const fs::path model_dir =
      command.model_dir.empty() ? default_model_dir() : fs::path(command.model_dir);
  std::shared_ptr<const Model> model;
  std::optional<Session> session;
  const fs::path out_dir = command.output_dir.empty() ? fs::path() : fs::path(command.output_dir);
  const fs::path pred_root =
      out_dir.empty() ? fs::temp_directory_path() / ("unibiomed-eval-" + std::to_string(::getpid()))
                      : out_dir / "predictions";
  EvalOutcome outcome;
  outcome.report.model_dir = model_dir.string();
  for (const auto& [entry, where] : todo) {
    DatasetReport r;
    r.name = entry.name;
    r.task = entry.task;
    r.modality = entry.modality;
    r.split = entry.split;
    const fs::path manifest = fs::is_directory(where) ? where / "dataset.json" : where;
    if (!fs::exists(manifest)) {
      if (command.registry.empty()) throw input_error(manifest.string() + ": no such dataset");
      r.status = "absent";
      r.error = "no " + manifest.string();
      outcome.report.datasets.push_back(r);
      continue;
    }
    try {
      const EvalDataset d = read_dataset(manifest);
      if (!model) {
        model = Model::load(model_dir, command.model);
        session.emplace(model);
        outcome.report.model_name = model->manifest().name;
      }
      request_prompts(model->manifest().chat, request_for(d, d.items.front()));
      const std::string split = r.split;
      r = evaluate_dataset(d, *session, *model, model_dir, pred_root, command.keep_predictions, log,
                           command.progress);
      if (!entry.name.empty()) r.name = entry.name;
      r.split = split;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Usage && command.registry.empty()) throw;
      r.status = "failed";
      r.error = e.what();
    }
    if (r.status == "failed") ++outcome.failed_datasets;
    outcome.report.datasets.push_back(r);
  }
  if (out_dir.empty()) {
    std::error_code ec;
    fs::remove_all(pred_root, ec);
  }
  if (!command.baseline.empty()) {
    std::ifstream in(command.baseline);
    if (!in) throw input_error(command.baseline + ": cannot read the baseline report");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw input_error(command.baseline + ": not JSON (" + e.what() + ")");
    }
    outcome.regressions = regressions(outcome.report, report_from_json(j));
  }
  const std::string markdown = report_markdown(outcome.report);
  if (!out_dir.empty()) {
    fs::create_directories(out_dir);
    write_text_atomically(out_dir / "report.json", report_to_json(outcome.report).dump(2) + "\n");
    write_text_atomically(out_dir / "report.md", markdown);
    write_text_atomically(out_dir / "report.csv", report_csv(outcome.report));
  }
  if (!command.junit.empty())
    write_text_atomically(command.junit, report_junit(outcome.report, outcome.regressions));
  out << markdown;
  for (const auto& r : outcome.regressions) out << "REGRESSION " << r << "\n";
  return outcome;
}

}  // namespace unibiomed
