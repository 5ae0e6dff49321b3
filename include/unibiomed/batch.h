// `unibiomed batch`: many studies through one loaded model. The input is a folder (each
// NIfTI/NRRD/MetaImage file, each DICOM series folder, each 2-D picture is a study), a list file
// (one path per line), or a CSV/JSONL table with a path and per-study task, target and question.
// Each study gets its own output folder (the `interpret` outputs plus study.json), named stably
// from its input path, and a line in manifest.jsonl. A bad study is recorded and the run goes
// on; --resume skips studies whose outputs are complete; --shard I/N takes a stable share.
#pragma once

#include <cstddef>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "unibiomed/interpret.h"

namespace unibiomed {

// One study: where it is read from and what is asked of it.
struct Study {
  std::string input;  // path as resolved (relative list entries against the list's folder)
  std::string key;    // what names it: its path relative to the input folder, or as listed
  std::string name;   // output folder name: key made file-name safe + 8 hex digits of its hash
  InterpretRequest request;
  bool has_request = false;  // the table gave a task, target or question for this study
};

// The studies of `input`: a folder (walked in sorted order), a .csv or .jsonl table, or a list
// file. `defaults` is the request of studies whose row gives none. Throws Error(Input) naming
// the file and line at fault.
std::vector<Study> discover_studies(const std::filesystem::path& input,
                                    const InterpretRequest& defaults);

// The output folder name of a study key: stable across runs and machines.
std::string study_name(const std::string& key);

// Whether a study belongs to shard `index` of `count` (0 <= index < count): a hash of its key.
bool in_shard(const Study& study, std::size_t index, std::size_t count);

// "I/N" -> (I, N); throws a usage error naming the value.
std::pair<std::size_t, std::size_t> parse_shard(const std::string& text);

struct BatchCommand {
  std::string input;
  std::string output_dir;
  InterpretCommand interpret;  // model, device, request defaults, read and display options
  int jobs = 1;                // studies run at once (one Session each)
  int prefetch = 2;            // studies read ahead of the model
  bool resume = false;
  std::size_t shard_index = 0;
  std::size_t shard_count = 1;
  bool merge = false;    // join the shard manifests in output_dir instead of running
  bool progress = true;  // a progress bar on a terminal, else progress lines
  bool terminal = false;
};

struct BatchSummary {
  std::size_t total = 0;  // studies of this shard
  std::size_t ok = 0;
  std::size_t failed = 0;
  std::size_t skipped = 0;  // complete from an earlier run (--resume)
  double seconds = 0.0;
};

// Runs (or merges) the batch. The manifest is output_dir/manifest.jsonl, or
// manifest.shard-I-of-N.jsonl for a shard. Throws Error for a bad command, input or model;
// a bad study is not an error of the run.
BatchSummary run_batch(const BatchCommand& command, std::ostream& log);

}  // namespace unibiomed
