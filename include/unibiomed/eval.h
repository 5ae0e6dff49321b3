// `unibiomed eval`: a model scored on benchmark datasets. A dataset is a folder with a
// dataset.json (docs/eval.md): its modality, task, and items of image + ground truth (masks with
// label names, an answer text, or a class label). The registry (benchmarks/registry.json) lists
// the datasets of the UniBiomed evaluation and where each lies under --data-root; a dataset whose
// data is absent is reported as absent. Reports: markdown, JSON, CSV; a baseline report turns
// drops beyond tolerance into failures; JUnit XML for CI.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "unibiomed/engine.h"
#include "unibiomed/metrics.h"

namespace unibiomed {

struct EvalMask {
  std::string label;  // what is asked: "Please segment {label}."
  std::filesystem::path file;
  std::optional<int> value;  // a label map: voxels equal to value; else voxels > 0
};

struct EvalItem {
  std::string id;
  std::filesystem::path image;
  std::vector<EvalMask> masks;       // segment (and the grounded masks of other tasks)
  std::string label;                 // diagnose: the class
  std::string question;              // vqa
  std::vector<std::string> answers;  // report, vqa: reference texts
};

struct EvalDataset {
  std::string name;
  std::string modality;  // as --modality takes it; "" when the files say
  std::string task;      // segment | diagnose | report | vqa
  std::vector<std::string> classes;
  double nsd_tolerance_mm = 1.0;
  std::string axis;  // volumes: the slicing axis ("" : axial)
  std::vector<EvalItem> items;
  std::filesystem::path root;  // the folder paths are relative to
};

// Reads root/dataset.json (or the given .json file). Throws Error(Input) naming the file and
// the entry at fault.
EvalDataset read_dataset(const std::filesystem::path& path);

struct RegistryEntry {
  std::string name;
  std::string modality;
  std::string task;
  std::vector<std::string> targets;  // or classes
  std::string metric;                // the headline metric: dice, accuracy, bleu4, ...
  std::string split;                 // internal | external | project
  std::string layout;                // dataset.json path under --data-root
  std::string note;
};

std::vector<RegistryEntry> read_registry(const std::filesystem::path& path);

// Scores of one dataset: metric name -> value (means over items), plus per-label Dice.
struct DatasetReport {
  std::string name;
  std::string task;
  std::string modality;
  std::string split;
  std::string status;  // ok | absent | failed
  std::string error;   // failed: why; absent: what was looked for
  std::size_t items = 0;
  std::size_t items_failed = 0;
  std::map<std::string, double> metrics;
  std::map<std::string, double> per_label_dice;
  double seconds = 0.0;
};

struct EvalReport {
  std::string model_name;
  std::string model_dir;
  std::vector<DatasetReport> datasets;
};

struct EvalCommand {
  std::string dataset;   // a dataset folder or dataset.json
  std::string registry;  // or a registry file
  std::vector<std::string> only;
  std::string data_root;
  std::string model_dir;
  ModelOptions model;
  std::string baseline;    // a previous report.json
  std::string junit;       // JUnit XML output file
  std::string output_dir;  // report.md, report.json, report.csv, predictions/
  bool keep_predictions = false;
  bool progress = false;
};

// A baseline comparison: the metrics of `current` that fell below the baseline's by more than
// their tolerance (absolute; docs/eval.md), as "dataset: metric 0.812 < baseline 0.853 - 0.02".
std::vector<std::string> regressions(const EvalReport& current, const EvalReport& baseline);
// The tolerance of a metric in a baseline comparison.
double metric_tolerance(const std::string& metric);

nlohmann::json report_to_json(const EvalReport& report);
EvalReport report_from_json(const nlohmann::json& json);
std::string report_markdown(const EvalReport& report);
std::string report_csv(const EvalReport& report);
std::string report_junit(const EvalReport& report, const std::vector<std::string>& regressions);

struct EvalOutcome {
  EvalReport report;
  std::vector<std::string> regressions;
  std::size_t failed_datasets = 0;
};

// Runs the evaluation and writes the reports. Throws Error for a bad command, registry, dataset
// manifest or model; an item that cannot be read is counted as failed, not thrown.
EvalOutcome run_eval(const EvalCommand& command, std::ostream& out, std::ostream& log);

}  // namespace unibiomed
