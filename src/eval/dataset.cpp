// Dataset manifests (dataset.json) and the benchmark registry (docs/eval.md).
#include <fstream>

#include "unibiomed/error.h"
#include "unibiomed/eval.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const fs::path& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw input_error(path.string() + ": cannot read the " + what);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw input_error(path.string() + ": the " + what + " is not JSON (" + e.what() + ")");
  }
}

std::string text_of(const json& j, const char* key, const std::string& where,
                    bool required = false) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) throw input_error(where + ": '" + key + "' is missing");
    return "";
  }
  if (!j[key].is_string()) throw input_error(where + ": '" + key + "' is not a string");
  return j[key].get<std::string>();
}

std::vector<std::string> texts_of(const json& j, const char* key, const std::string& where) {
  std::vector<std::string> out;
  if (!j.contains(key)) return out;
  if (!j[key].is_array()) throw input_error(where + ": '" + key + "' is not a list");
  for (const auto& v : j[key]) {
    if (!v.is_string()) throw input_error(where + ": '" + key + "' holds a non-string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

EvalDataset read_dataset(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / "dataset.json" : path;
  const json j = read_json_file(file, "dataset manifest");
  const std::string where = file.string();
  if (!j.is_object()) throw input_error(where + ": not a JSON object");
  const std::string format = text_of(j, "format", where, true);
  if (format != "unibiomed-dataset/1") {
    throw input_error(where + ": format '" + format + "' (expected unibiomed-dataset/1)");
  }
  EvalDataset d;
  d.root = file.parent_path();
  d.name = text_of(j, "name", where, true);
  d.task = text_of(j, "task", where, true);
  if (d.task != "segment" && d.task != "diagnose" && d.task != "report" && d.task != "vqa") {
    throw input_error(where + ": task '" + d.task + "' (expected segment, diagnose, report, vqa)");
  }
  d.modality = text_of(j, "modality", where);
  d.axis = text_of(j, "axis", where);
  d.classes = texts_of(j, "classes", where);
  if (j.contains("nsd_tolerance_mm")) {
    if (!j["nsd_tolerance_mm"].is_number() || j["nsd_tolerance_mm"].get<double>() <= 0) {
      throw input_error(where + ": 'nsd_tolerance_mm' must be a positive number");
    }
    d.nsd_tolerance_mm = j["nsd_tolerance_mm"].get<double>();
  }
  if (!j.contains("items") || !j["items"].is_array() || j["items"].empty()) {
    throw input_error(where + ": 'items' must be a non-empty list");
  }
  std::size_t n = 0;
  for (const auto& it : j["items"]) {
    const std::string at = where + ": item " + std::to_string(n++);
    if (!it.is_object()) throw input_error(at + " is not an object");
    EvalItem item;
    item.id = text_of(it, "id", at);
    if (item.id.empty()) item.id = "item" + std::to_string(n - 1);
    item.image = d.root / text_of(it, "image", at, true);
    if (it.contains("masks")) {
      if (!it["masks"].is_object()) throw input_error(at + ": 'masks' is not an object");
      for (const auto& [label, m] : it["masks"].items()) {
        EvalMask mask;
        mask.label = label;
        if (m.is_string()) {
          mask.file = d.root / m.get<std::string>();
        } else if (m.is_object()) {
          mask.file = d.root / text_of(m, "file", at + ": mask " + label, true);
          if (m.contains("value")) {
            if (!m["value"].is_number_integer()) {
              throw input_error(at + ": mask " + label + ": 'value' is not an integer");
            }
            mask.value = m["value"].get<int>();
          }
        } else {
          throw input_error(at + ": mask " + label + " is neither a file nor {file, value}");
        }
        item.masks.push_back(mask);
      }
    }
    item.label = text_of(it, "label", at);
    item.question = text_of(it, "question", at);
    item.answers = texts_of(it, "answers", at);
    const std::string answer = text_of(it, "answer", at);
    if (!answer.empty()) item.answers.insert(item.answers.begin(), answer);
    if (d.task == "segment" && item.masks.empty()) throw input_error(at + ": no 'masks'");
    if (d.task == "diagnose" && item.label.empty()) throw input_error(at + ": no 'label'");
    if ((d.task == "report" || d.task == "vqa") && item.answers.empty()) {
      throw input_error(at + ": no 'answer'");
    }
    if (d.task == "vqa" && item.question.empty()) throw input_error(at + ": no 'question'");
    d.items.push_back(std::move(item));
  }
  return d;
}

std::vector<RegistryEntry> read_registry(const fs::path& path) {
  const json j = read_json_file(path, "registry");
  const std::string where = path.string();
  if (text_of(j, "format", where, true) != "unibiomed-registry/1") {
    throw input_error(where + ": format is not unibiomed-registry/1");
  }
  if (!j.contains("datasets") || !j["datasets"].is_array()) {
    throw input_error(where + ": 'datasets' must be a list");
  }
  std::vector<RegistryEntry> out;
  std::size_t n = 0;
  for (const auto& d : j["datasets"]) {
    const std::string at = where + ": dataset " + std::to_string(n++);
    RegistryEntry e;
    e.name = text_of(d, "name", at, true);
    e.modality = text_of(d, "modality", at);
    e.task = text_of(d, "task", at, true);
    e.targets = texts_of(d, "targets", at);
    e.metric = text_of(d, "metric", at, true);
    e.split = text_of(d, "split", at, true);
    e.layout = text_of(d, "layout", at, true);
    e.note = text_of(d, "note", at);
    for (const auto& other : out) {
      if (other.name == e.name) throw input_error(at + ": '" + e.name + "' is listed twice");
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace unibiomed
