// Evaluation reports (JSON, markdown, CSV, JUnit XML) and the comparison with a baseline.
#include <cmath>
#include <iomanip>
#include <set>
#include <sstream>

#include "unibiomed/error.h"
#include "unibiomed/eval.h"

namespace unibiomed {
namespace {

using nlohmann::json;

// Metrics where lower is better.
bool lower_is_better(const std::string& metric) {
  return metric == "hd95_mm" || metric == "empty_mask_rate";
}

std::string fixed(double v, int digits = 4) {
  if (!std::isfinite(v)) return "nan";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (const char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Every metric name of the report, in a stable order.
std::vector<std::string> metric_columns(const EvalReport& report) {
  std::set<std::string> names;
  for (const auto& d : report.datasets) {
    for (const auto& m : d.metrics) names.insert(m.first);
  }
  return {names.begin(), names.end()};
}

}  // namespace

double metric_tolerance(const std::string& metric) {
  if (metric == "hd95_mm") return 2.0;
  if (metric == "cider") return 0.1;
  if (metric == "empty_mask_rate") return 0.05;
  return 0.02;  // Dice, IoU, NSD, accuracy, F1, BLEU, ROUGE-L, METEOR: absolute
}

std::vector<std::string> regressions(const EvalReport& current, const EvalReport& baseline) {
  std::vector<std::string> out;
  for (const auto& base : baseline.datasets) {
    if (base.status != "ok") continue;
    const DatasetReport* now = nullptr;
    for (const auto& d : current.datasets) {
      if (d.name == base.name) now = &d;
    }
    if (!now || now->status == "absent") continue;  // not evaluated here: nothing to compare
    if (now->status != "ok") {
      out.push_back(base.name + ": " + now->status + " (" + now->error + ")");
      continue;
    }
    for (const auto& [metric, was] : base.metrics) {
      const auto found = now->metrics.find(metric);
      if (found == now->metrics.end() || !std::isfinite(was)) continue;
      const double is = found->second;
      const double tol = metric_tolerance(metric);
      const bool worse = lower_is_better(metric) ? !(is <= was + tol) : !(is >= was - tol);
      if (worse) {
        out.push_back(base.name + ": " + metric + " " + fixed(is) +
                      (lower_is_better(metric) ? " > " : " < ") + "baseline " + fixed(was) +
                      (lower_is_better(metric) ? " + " : " - ") + fixed(tol, 2));
      }
    }
  }
  return out;
}

json report_to_json(const EvalReport& report) {
  json j;
  j["format"] = "unibiomed-eval-report/1";
  j["model"] = {{"name", report.model_name}, {"dir", report.model_dir}};
  j["datasets"] = json::array();
  for (const auto& d : report.datasets) {
    json e;
    e["name"] = d.name;
    e["task"] = d.task;
    e["modality"] = d.modality;
    e["split"] = d.split;
    e["status"] = d.status;
    if (!d.error.empty()) e["error"] = d.error;
    e["items"] = d.items;
    e["items_failed"] = d.items_failed;
    e["metrics"] = json::object();
    for (const auto& [k, v] : d.metrics) {
      e["metrics"][k] = std::isfinite(v) ? json(v) : json(nullptr);
    }
    e["per_label_dice"] = d.per_label_dice;
    e["seconds"] = d.seconds;
    j["datasets"].push_back(e);
  }
  return j;
}

EvalReport report_from_json(const json& j) {
  const auto text = [](const json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (!j.is_object() || text(j, "format") != "unibiomed-eval-report/1") {
    throw input_error("baseline: not a unibiomed-eval-report/1 document");
  }
  EvalReport r;
  const auto count = [](const json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_number_unsigned() ? it->get<std::size_t>() : std::size_t{0};
  };
  const auto model = j.find("model");
  if (model != j.end() && model->is_object()) {
    r.model_name = text(*model, "name");
    r.model_dir = text(*model, "dir");
  }
  const auto datasets = j.find("datasets");
  if (datasets == j.end() || !datasets->is_array()) {
    throw input_error("baseline: no 'datasets' list");
  }
  for (const auto& e : *datasets) {
    if (!e.is_object()) throw input_error("baseline: a dataset entry is not an object");
    DatasetReport d;
    d.name = text(e, "name");
    d.task = text(e, "task");
    d.modality = text(e, "modality");
    d.split = text(e, "split");
    d.status = text(e, "status");
    d.error = text(e, "error");
    d.items = count(e, "items");
    d.items_failed = count(e, "items_failed");
    const auto metrics = e.find("metrics");
    if (metrics != e.end() && metrics->is_object()) {
      for (const auto& [k, v] : metrics->items()) {
        d.metrics[k] = v.is_number() ? v.get<double>() : std::nan("");
      }
    }
    const auto labels = e.find("per_label_dice");
    if (labels != e.end() && labels->is_object()) {
      for (const auto& [k, v] : labels->items()) {
        if (v.is_number()) d.per_label_dice[k] = v.get<double>();
      }
    }
    r.datasets.push_back(d);
  }
  return r;
}

std::string report_markdown(const EvalReport& report) {
  std::ostringstream s;
  s << "# unibiomed eval: " << report.model_name << "\n\n";
  const auto columns = metric_columns(report);
  s << "| dataset | task | split | status | items |";
  for (const auto& c : columns) s << " " << c << " |";
  s << "\n|---|---|---|---|---|";
  for (std::size_t i = 0; i < columns.size(); ++i) s << "---|";
  s << "\n";
  for (const auto& d : report.datasets) {
    s << "| " << d.name << " | " << d.task << " | " << d.split << " | " << d.status << " | "
      << d.items;
    if (d.items_failed) s << " (" << d.items_failed << " failed)";
    s << " |";
    for (const auto& c : columns) {
      const auto found = d.metrics.find(c);
      s << " " << (found == d.metrics.end() ? "" : fixed(found->second)) << " |";
    }
    s << "\n";
  }
  for (const auto& d : report.datasets) {
    if (d.per_label_dice.empty()) continue;
    s << "\n## " << d.name << ": Dice per label\n\n| label | Dice |\n|---|---|\n";
    for (const auto& [label, dice] : d.per_label_dice)
      s << "| " << label << " | " << fixed(dice) << " |\n";
  }
  return s.str();
}

std::string report_csv(const EvalReport& report) {
  std::ostringstream s;
  const auto columns = metric_columns(report);
  s << "dataset,task,modality,split,status,items,items_failed";
  for (const auto& c : columns) s << "," << c;
  s << "\n";
  for (const auto& d : report.datasets) {
    s << csv_cell(d.name) << "," << d.task << "," << d.modality << "," << d.split << "," << d.status
      << "," << d.items << "," << d.items_failed;
    for (const auto& c : columns) {
      const auto found = d.metrics.find(c);
      s << ","
        << (found == d.metrics.end() || !std::isfinite(found->second) ? ""
                                                                      : fixed(found->second, 6));
    }
    s << "\n";
  }
  return s.str();
}

std::string report_junit(const EvalReport& report, const std::vector<std::string>& regressed) {
  std::size_t failures = 0, errors = 0, skipped = 0;
  std::ostringstream cases;
  for (const auto& d : report.datasets) {
    cases << "  <testcase classname=\"unibiomed.eval\" name=\"" << xml_escape(d.name)
          << "\" time=\"" << fixed(d.seconds, 3) << "\">\n";
    std::string mine;
    for (const auto& r : regressed) {
      if (r.rfind(d.name + ": ", 0) == 0) mine += r + "\n";
    }
    if (d.status == "absent") {
      ++skipped;
      cases << "    <skipped message=\"" << xml_escape(d.error) << "\"/>\n";
    } else if (d.status != "ok") {
      ++errors;
      cases << "    <error message=\"" << xml_escape(d.error) << "\"/>\n";
    } else if (!mine.empty()) {
      ++failures;
      cases << "    <failure message=\"below baseline\">" << xml_escape(mine) << "</failure>\n";
    }
    cases << "  </testcase>\n";
  }
  std::ostringstream s;
  s << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"unibiomed-eval\" tests=\""
    << report.datasets.size() << "\" failures=\"" << failures << "\" errors=\"" << errors
    << "\" skipped=\"" << skipped << "\">\n"
    << cases.str() << "</testsuite>\n";
  return s.str();
}

}  // namespace unibiomed
