// Internal to `unibiomed batch`: the study record files, the manifest, shard merging.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "unibiomed/batch.h"

namespace unibiomed {

// The record of a study in its output folder, written last: its manifest line.
inline constexpr const char* kStudyFile = "study.json";

// A string member of a JSON object, "" when it is missing or not a string.
std::string text_field(const nlohmann::json& object, const char* key);

// Name prefix of the temporary folders a study is written into before it is moved in place.
std::string partial_prefix();

// Removes temporary study folders left in `out_dir` by a killed run.
void remove_partial_folders(const std::filesystem::path& out_dir);

// The record of a study folder whose outputs are complete and valid (study.json says ok, every
// output it lists exists, result.json parses); none otherwise.
std::optional<nlohmann::json> complete_study(const std::filesystem::path& study_dir);

// "manifest.jsonl", or "manifest.shard-I-of-N.jsonl" for shard I of N > 1.
std::string manifest_file_name(std::size_t index, std::size_t count);

// "1 h 02 min", "3 min 05 s", "42 s".
std::string format_duration(double seconds);

// The manifest of a run: one line per study in study order (studies not yet done have none),
// rewritten atomically on flush (at most once a second unless forced).
class ManifestWriter {
 public:
  ManifestWriter(std::filesystem::path path, std::size_t studies);
  void set(std::size_t index, const nlohmann::json& record);
  void flush(bool force);

 private:
  std::filesystem::path path_;
  std::vector<std::string> lines_;
  double last_write_ = -1e9;
};

// `batch --merge -o OUTDIR`: joins OUTDIR's manifest.shard-I-of-N.jsonl (all N of them, else an
// error naming the missing ones) into OUTDIR/manifest.jsonl.
BatchSummary merge_shard_manifests(const std::filesystem::path& out_dir, std::ostream& log);

}  // namespace unibiomed
