// Study records, the run manifest and the merge of shard manifests.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "batch/batch_internal.h"
#include "unibiomed/error.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::optional<nlohmann::json> read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::string text_field(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string partial_prefix() {
  return ".partial-";
}

void remove_partial_folders(const fs::path& out_dir) {
  // Partial study folders, and the temporaries of atomic writes (".name.tmp<pid>.ext") whose
  // writer is gone: a run killed while writing the manifest leaves one behind.
  static const std::regex temporary(R"(\..*\.tmp([0-9]{1,9})(\..*)?)");
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(out_dir, ec)) {
    const std::string name = e.path().filename().string();
    std::smatch m;
    if (name.rfind(partial_prefix(), 0) == 0) {
      stale.push_back(e.path());
    } else if (std::regex_match(name, m, temporary) && e.is_regular_file(ec)) {
      const long pid = std::stol(m[1].str());
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(e.path());
    }
  }
  for (const auto& p : stale) fs::remove_all(p, ec);
}

std::optional<nlohmann::json> complete_study(const fs::path& study_dir) {
  auto record = read_json(study_dir / kStudyFile);
  if (!record || !record->is_object() || text_field(*record, "status") != "ok" ||
      !record->contains("outputs") || !(*record)["outputs"].is_array()) {
    return std::nullopt;
  }
  bool has_result = false;
  for (const auto& name : (*record)["outputs"]) {
    if (!name.is_string() || !fs::is_regular_file(study_dir / name.get<std::string>())) {
      return std::nullopt;
    }
    has_result = has_result || name == "result.json";
  }
  if (!has_result || !read_json(study_dir / "result.json")) return std::nullopt;
  return record;
}

std::string manifest_file_name(std::size_t index, std::size_t count) {
  if (count <= 1) return "manifest.jsonl";
  return "manifest.shard-" + std::to_string(index) + "-of-" + std::to_string(count) + ".jsonl";
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  char text[64];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ld h %02ld min", s / 3600, (s % 3600) / 60);
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%ld min %02ld s", s / 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%ld s", s);
  }
  return text;
}

ManifestWriter::ManifestWriter(fs::path path, std::size_t studies)
    : path_(std::move(path)), lines_(studies) {}

void ManifestWriter::set(std::size_t index, const nlohmann::json& record) {
  lines_.at(index) = record.dump();
}

void ManifestWriter::flush(bool force) {
  const double now = now_seconds();
  if (!force && now - last_write_ < 1.0) return;
  std::string text;
  for (const auto& line : lines_) {
    if (!line.empty()) text += line + "\n";
  }
  write_text_atomically(path_, text);
  last_write_ = now;
}

BatchSummary merge_shard_manifests(const fs::path& out_dir, std::ostream& log) {
  const std::regex pattern(R"(manifest\.shard-(\d+)-of-(\d+)\.jsonl)");
  std::map<std::size_t, fs::path> shards;
  std::size_t count = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(out_dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, pattern)) continue;
    const std::size_t n = std::stoul(m[2].str());
    if (count != 0 && n != count) {
      throw input_error(out_dir.string() + ": shard manifests of " + std::to_string(count) +
                        " and of " + std::to_string(n) + " shards are mixed");
    }
    count = n;
    shards[std::stoul(m[1].str())] = e.path();
  }
  if (ec) throw input_error(out_dir.string() + ": cannot list the folder (" + ec.message() + ")");
  if (count == 0) {
    throw input_error(out_dir.string() + ": no manifest.shard-I-of-N.jsonl to merge");
  }
  std::string missing;
  for (std::size_t i = 0; i < count; ++i) {
    if (!shards.count(i)) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
  }
  if (!missing.empty()) {
    throw input_error(out_dir.string() + ": shard manifests missing for shards " + missing +
                      " of " + std::to_string(count));
  }
  std::vector<std::pair<std::string, std::string>> lines;  // (study, line)
  BatchSummary summary;
  for (const auto& [index, path] : shards) {
    std::ifstream in(path);
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty()) continue;
      nlohmann::json record;
      try {
        record = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        throw input_error(path.string() + ":" + std::to_string(number) + ": not JSON");
      }
      const std::string status = text_field(record, "status");
      summary.ok += status == "ok";
      summary.failed += status == "failed";
      summary.skipped += status == "skipped";
      lines.emplace_back(text_field(record, "study"), line);
    }
  }
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const auto& l : lines) text += l.second + "\n";
  write_text_atomically(out_dir / "manifest.jsonl", text);
  summary.total = lines.size();
  log << "batch: merged " << count << " shard manifests, " << lines.size() << " studies ("
      << summary.failed << " failed) into " << (out_dir / "manifest.jsonl").string() << "\n";
  return summary;
}

}  // namespace unibiomed
