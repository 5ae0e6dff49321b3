// The studies of a batch input: a folder walked in sorted order, a list file, or a CSV/JSONL
// table with per-study requests; stable output names and shards from a hash of the study key.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "unibiomed/batch.h"
#include "unibiomed/error.h"
#include "unibiomed/read.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A file that is a study by its name (a DICOM file counts through its folder).
bool is_study_file(const fs::path& path) {
  const std::string name = lower(path.filename().string());
  for (const char* ext : {".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".jpg",
                          ".jpeg", ".tif", ".tiff", ".bmp"}) {
    if (ends_with(name, ext)) return true;
  }
  return false;
}

bool is_dicom_file(const fs::path& path) {
  const std::string name = lower(path.filename().string());
  if (ends_with(name, ".dcm")) return true;
  if (path.has_extension()) return false;
  return format_from_content(path) == FileFormat::DICOM;
}

bool hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

// Files of `dir` that are studies, and its subfolders holding DICOM files (one study each).
void walk(const fs::path& root, const fs::path& dir, std::vector<std::string>& keys) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  if (ec) throw input_error(dir.string() + ": cannot list the folder (" + ec.message() + ")");
  std::sort(entries.begin(), entries.end());
  bool dicom = false;
  for (const auto& p : entries) {
    if (hidden(p)) continue;
    if (fs::is_directory(p)) {
      walk(root, p, keys);
    } else if (is_study_file(p)) {
      keys.push_back(fs::relative(p, root).generic_string());
    } else if (!dicom && fs::is_regular_file(p) && is_dicom_file(p)) {
      dicom = true;
    }
  }
  if (dicom) {
    const std::string key = dir == root ? "." : fs::relative(dir, root).generic_string();
    keys.push_back(key);
  }
}

std::string trim(const std::string& s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// One CSV line into fields (RFC 4180 quoting; a quoted field cannot span lines here).
std::vector<std::string> csv_fields(const std::string& line, const std::string& where) {
  std::vector<std::string> out;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(field);
      field.clear();
    } else if (c != '\r') {
      field.push_back(c);
    }
  }
  if (quoted) throw input_error(where + ": unterminated quoted field");
  out.push_back(field);
  return out;
}

// Targets of a table cell: several separated by ';' or '|'.
std::vector<std::string> split_targets(const std::string& cell) {
  std::vector<std::string> out;
  std::string t;
  for (const char c : cell + ";") {
    if (c == ';' || c == '|') {
      if (!trim(t).empty()) out.push_back(trim(t));
      t.clear();
    } else {
      t.push_back(c);
    }
  }
  return out;
}

Study make_study(const fs::path& base, const std::string& key, const InterpretRequest& defaults) {
  Study s;
  s.key = key;
  const fs::path p(key);
  s.input = (p.is_absolute() ? p : base / p).lexically_normal().string();
  s.name = study_name(key);
  s.request = defaults;
  return s;
}

void apply_row(Study& s, const std::string& task, const std::vector<std::string>& targets,
               const std::string& question) {
  if (task.empty() && targets.empty() && question.empty()) return;
  s.has_request = true;
  if (!task.empty()) s.request.task = task;
  if (!targets.empty()) s.request.targets = targets;
  if (!question.empty()) s.request.question = question;
  // a per-study request names its own study: the same image asked two things is two studies
  std::string what = s.request.task;
  for (const auto& t : s.request.targets) what += "|" + t;
  if (!s.request.question.empty()) what += "|" + s.request.question;
  s.key += "#" + what;
  s.name = study_name(s.key);
}

std::vector<Study> from_csv(const fs::path& file, const InterpretRequest& defaults) {
  std::ifstream in(file);
  if (!in) throw input_error(file.string() + ": cannot read the table");
  std::string line;
  std::size_t number = 0;
  std::vector<std::string> header;
  std::vector<Study> out;
  int path_col = -1, task_col = -1, target_col = -1, question_col = -1;
  while (std::getline(in, line)) {
    ++number;
    if (trim(line).empty()) continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    const auto fields = csv_fields(line, where);
    if (header.empty()) {
      header = fields;
      for (std::size_t i = 0; i < header.size(); ++i) {
        const std::string h = lower(trim(header[i]));
        const int col = static_cast<int>(i);
        if (h == "path" || h == "image" || h == "input") path_col = col;
        if (h == "task") task_col = col;
        if (h == "target" || h == "targets") target_col = col;
        if (h == "question") question_col = col;
      }
      if (path_col < 0) {
        throw input_error(where + ": the header names no path column (path, image or input)");
      }
      continue;
    }
    const auto cell = [&](int col) {
      return col >= 0 && static_cast<std::size_t>(col) < fields.size() ? trim(fields[col]) : "";
    };
    if (cell(path_col).empty()) throw input_error(where + ": empty path");
    Study s = make_study(file.parent_path(), cell(path_col), defaults);
    apply_row(s, cell(task_col), split_targets(cell(target_col)), cell(question_col));
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Study> from_jsonl(const fs::path& file, const InterpretRequest& defaults) {
  std::ifstream in(file);
  if (!in) throw input_error(file.string() + ": cannot read the table");
  std::string line;
  std::size_t number = 0;
  std::vector<Study> out;
  while (std::getline(in, line)) {
    ++number;
    if (trim(line).empty()) continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw input_error(where + ": not JSON (" + e.what() + ")");
    }
    const auto text = [&](const char* key) -> std::string {
      if (!row.contains(key)) return "";
      if (!row[key].is_string()) throw input_error(where + ": '" + key + "' is not a string");
      return row[key].get<std::string>();
    };
    std::string path = text("path");
    if (path.empty()) path = text("image");
    if (path.empty()) throw input_error(where + ": no 'path'");
    std::vector<std::string> targets;
    if (row.contains("targets") && row["targets"].is_array()) {
      for (const auto& t : row["targets"]) {
        if (!t.is_string()) throw input_error(where + ": 'targets' holds a non-string");
        targets.push_back(t.get<std::string>());
      }
    } else {
      targets = split_targets(text("target"));
    }
    Study s = make_study(file.parent_path(), path, defaults);
    apply_row(s, text("task"), targets, text("question"));
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Study> from_list(const fs::path& file, const InterpretRequest& defaults) {
  std::ifstream in(file);
  if (!in) throw input_error(file.string() + ": cannot read the list");
  std::string line;
  std::vector<Study> out;
  while (std::getline(in, line)) {
    const std::string entry = trim(line);
    if (entry.empty() || entry[0] == '#') continue;
    out.push_back(make_study(file.parent_path(), entry, defaults));
  }
  return out;
}

}  // namespace

std::string study_name(const std::string& key) {
  std::string slug;
  for (const char c : key) {
    const auto u = static_cast<unsigned char>(c);
    const bool keep = std::isalnum(u) || c == '.' || c == '-' || c == '_';
    if (keep) {
      slug.push_back(c);
    } else if (slug.empty() || slug.back() != '_') {
      slug.push_back('_');
    }
  }
  while (!slug.empty() && (slug.front() == '_' || slug.front() == '.')) slug.erase(0, 1);
  if (slug.size() > 80) slug = slug.substr(slug.size() - 80);
  if (slug.empty()) slug = "study";
  std::ostringstream hex;
  hex << std::hex << (fnv1a(key) & 0xffffffffULL);
  std::string h = hex.str();
  h.insert(0, 8 - h.size(), '0');
  return slug + "-" + h;
}

bool in_shard(const Study& study, std::size_t index, std::size_t count) {
  return count <= 1 || (fnv1a(study.key) >> 16) % count == index;
}

std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  const auto bad = [&]() {
    return usage_error("--shard " + text + ": expected I/N with 0 <= I < N (e.g. 0/4)");
  };
  if (slash == std::string::npos) throw bad();
  try {
    std::size_t used = 0;
    const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
    const unsigned long i = std::stoul(a, &used);
    if (used != a.size()) throw bad();
    const unsigned long n = std::stoul(b, &used);
    if (used != b.size() || n == 0 || i >= n) throw bad();
    return {i, n};
  } catch (const std::logic_error&) {
    throw bad();
  }
}

std::vector<Study> discover_studies(const fs::path& input, const InterpretRequest& defaults) {
  std::error_code ec;
  if (!fs::exists(input, ec)) throw input_error(input.string() + ": no such file or folder");
  std::vector<Study> studies;
  if (fs::is_directory(input)) {
    std::vector<std::string> keys;
    walk(input, input, keys);
    for (const auto& k : keys) studies.push_back(make_study(input, k, defaults));
  } else {
    const std::string name = lower(input.filename().string());
    if (ends_with(name, ".csv")) {
      studies = from_csv(input, defaults);
    } else if (ends_with(name, ".jsonl")) {
      studies = from_jsonl(input, defaults);
    } else if (is_study_file(input)) {
      throw usage_error(input.string() +
                        ": batch takes a folder, a list file or a CSV/JSONL table; use "
                        "`unibiomed interpret` for one image");
    } else {
      studies = from_list(input, defaults);
    }
  }
  std::set<std::string> names;
  for (const auto& s : studies) {
    if (!names.insert(s.name).second) {
      throw input_error(input.string() + ": study " + s.key + " is listed twice");
    }
  }
  return studies;
}

}  // namespace unibiomed
