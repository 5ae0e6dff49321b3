// `unibiomed batch`: a reader thread prepares the next studies (a small bounded queue) while
// workers, one Session each over the one loaded Model, interpret them. Each study is written
// into a hidden temporary folder that is renamed into place once study.json is in it, so an
// output folder is complete or absent, whatever moment the run is killed at; the manifest is
// rewritten atomically as studies finish.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "batch/batch_internal.h"
#include "prompt/request_prompt.h"
#include "tools/prepared_input.h"
#include "unibiomed/batch.h"
#include "unibiomed/error.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Item {  // a study read ahead, or the error that reading it gave
  std::size_t index = 0;
  std::optional<PreparedInput> input;
  std::string error;
  double read_seconds = 0.0;
};

// A bounded queue between the reader and the workers.
class ItemQueue {
 public:
  explicit ItemQueue(std::size_t capacity) : capacity_(capacity) {}
  void push(Item item) {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(std::move(item));
    ready_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    ready_.notify_all();
  }
  std::optional<Item> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    Item item = std::move(items_.front());
    items_.erase(items_.begin());
    space_.notify_one();
    return item;
  }

 private:
  std::size_t capacity_;
  std::vector<Item> items_;
  bool closed_ = false;
  std::mutex mutex_;
  std::condition_variable ready_, space_;
};

nlohmann::json request_json(const InterpretRequest& r) {
  nlohmann::json j;
  j["task"] = r.task;
  j["targets"] = r.targets;
  if (!r.question.empty()) j["question"] = r.question;
  if (!r.raw_prompt.empty()) j["prompt"] = r.raw_prompt;
  return j;
}

// Writes a study's folder: `fill` writes its outputs into a temporary folder, study.json goes
// in last, and the folder is renamed into place (replacing an older one).
void publish_study(const fs::path& out_dir, const std::string& name, nlohmann::json& record,
                   const std::function<void(const fs::path&)>& fill) {
  const fs::path temp = out_dir / (partial_prefix() + name + "-" + std::to_string(getpid()));
  std::error_code ec;
  fs::remove_all(temp, ec);
  fs::create_directories(temp, ec);
  if (ec) throw output_error(temp.string() + ": cannot create (" + ec.message() + ")");
  fill(temp);
  std::vector<std::string> outputs;
  for (const auto& e : fs::directory_iterator(temp))
    outputs.push_back(e.path().filename().string());
  std::sort(outputs.begin(), outputs.end());
  record["outputs"] = outputs;
  write_text_atomically(temp / kStudyFile, record.dump() + "\n");
  const fs::path target = out_dir / name;
  fs::remove_all(target, ec);
  fs::rename(temp, target, ec);
  if (ec)
    throw output_error(target.string() + ": cannot move the study's outputs in place (" +
                       ec.message() + ")");
}

class Progress {
 public:
  Progress(std::ostream& log, bool terminal, bool enabled, std::size_t total)
      : log_(log), terminal_(terminal), enabled_(enabled), total_(total), start_(Clock::now()) {}

  void done(const nlohmann::json& record, std::size_t finished, std::size_t failed) {
    if (!enabled_) return;
    const double elapsed = since(start_);
    const double rate = elapsed > 0 ? static_cast<double>(finished - resumed_) / elapsed : 0.0;
    const double left = rate > 0 ? static_cast<double>(total_ - finished) / rate : 0.0;
    std::ostringstream line;
    line << std::fixed << std::setprecision(2);
    if (terminal_) {
      constexpr int kWidth = 28;
      const int filled = total_ ? static_cast<int>(kWidth * finished / total_) : kWidth;
      line << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
           << std::string(static_cast<std::size_t>(kWidth - filled), '.') << "] " << finished << "/"
           << total_ << "  " << rate * 60.0 << " studies/min  " << format_duration(left) << " left";
      if (failed) line << "  " << failed << " failed";
      line << "   ";
      if (finished == total_) line << "\n";
    } else {
      line << "batch: [" << finished << "/" << total_ << "] " << text_field(record, "status") << " "
           << text_field(record, "study");
      const auto timings = record.find("timings");
      if (timings != record.end() && timings->contains("total")) {
        line << " (" << (*timings)["total"].get<double>() << " s)";
      }
      if (record.contains("error")) line << ": " << record["error"].get<std::string>();
      line << "\n";
    }
    log_ << line.str() << std::flush;
  }
  void resumed(std::size_t n) { resumed_ = n; }

 private:
  std::ostream& log_;
  bool terminal_;
  bool enabled_;
  std::size_t total_;
  std::size_t resumed_ = 0;
  Clock::time_point start_;
};

}  // namespace

BatchSummary run_batch(const BatchCommand& command, std::ostream& log) {
  const auto start = Clock::now();
  if (command.output_dir.empty()) throw usage_error("batch needs -o OUTDIR");
  const fs::path out_dir(command.output_dir);
  if (command.merge) return merge_shard_manifests(out_dir, log);
  if (command.jobs < 1) throw usage_error("--jobs must be >= 1");

  const InterpretCommand& base = command.interpret;
  std::vector<Study> studies = discover_studies(command.input, base.request);
  std::vector<Study> mine;
  for (auto& s : studies) {
    if (in_shard(s, command.shard_index, command.shard_count)) mine.push_back(std::move(s));
  }
  const fs::path model_dir =
      base.model_dir.empty() ? default_model_dir() : fs::path(base.model_dir);
  const BundleManifest manifest = read_manifest(model_dir);
  request_prompts(manifest.chat, base.request);  // the defaults must fit the model

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir)) {
    throw output_error(out_dir.string() + ": cannot create the output folder");
  }
  remove_partial_folders(out_dir);

  BatchSummary summary;
  summary.total = mine.size();
  ManifestWriter manifest_out(
      out_dir / manifest_file_name(command.shard_index, command.shard_count), mine.size());
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < mine.size(); ++i) {
    std::optional<nlohmann::json> done;
    if (command.resume) done = complete_study(out_dir / mine[i].name);
    if (done) {
      (*done)["status"] = "skipped";
      manifest_out.set(i, *done);
      ++summary.skipped;
    } else {
      pending.push_back(i);
    }
  }
  manifest_out.flush(true);
  Progress progress(log, command.terminal, command.progress, mine.size());
  progress.resumed(summary.skipped);
  if (!pending.empty() && command.progress) {
    log << "batch: " << pending.size() << " of " << mine.size() << " studies to run";
    if (summary.skipped) log << " (" << summary.skipped << " complete from an earlier run)";
    log << "; loading " << model_dir.string() << "\n" << std::flush;
  }
  if (pending.empty()) {
    summary.seconds = since(start);
    return summary;
  }
  const auto model = Model::load(model_dir, base.model);

  ItemQueue queue(static_cast<std::size_t>(std::max(1, command.prefetch)));
  std::thread reader([&] {
    for (const std::size_t i : pending) {
      Item item;
      item.index = i;
      const auto t0 = Clock::now();
      try {
        InterpretCommand one = base;
        one.input = mine[i].input;
        one.request = mine[i].request;
        item.input = prepare_input(one);
      } catch (const std::exception& e) {
        item.error = e.what();
      }
      item.read_seconds = since(t0);
      queue.push(std::move(item));
    }
    queue.close();
  });

  std::mutex done_mutex;
  std::size_t finished = summary.skipped;
  const auto worker = [&] {
    Session session(model);
    while (auto item = queue.pop()) {
      const Study& study = mine[item->index];
      nlohmann::json record;
      record["study"] = study.name;
      record["key"] = study.key;
      record["input"] = study.input;
      record["request"] = request_json(study.request);
      nlohmann::json timings;
      timings["read"] = item->read_seconds;
      std::string error = item->error;
      if (error.empty()) {
        try {
          request_prompts(model->manifest().chat, study.request);
          const auto t0 = Clock::now();
          const Interpretation result = interpret_prepared(session, *item->input, study.request);
          timings["model"] = since(t0);
          const auto t1 = Clock::now();
          record["status"] = "ok";
          record["answers"] = nlohmann::json::array();
          for (const auto& a : result.answers) record["answers"].push_back(a.text);
          record["findings"] = result.findings.size();
          timings["total"] = item->read_seconds + since(t0);
          record["timings"] = timings;  // study.json: read and model; the manifest adds write
          publish_study(out_dir, study.name, record, [&](const fs::path& dir) {
            write_outputs(*item->input, result, *model, model_dir, dir);
          });
          record["timings"]["write"] = since(t1);
          record["timings"]["total"] = item->read_seconds + since(t0);
        } catch (const std::exception& e) {
          error = e.what();
        }
      }
      if (!error.empty()) {
        for (char& c : error) c = c == '\n' ? ' ' : c;
        record.erase("answers");
        record.erase("findings");
        record["status"] = "failed";
        record["error"] = error;
        record["timings"] = timings;
        try {
          publish_study(out_dir, study.name, record, [](const fs::path&) {});
        } catch (const std::exception& e) {
          record["error"] = error + "; and its record could not be written: " + e.what();
        }
      }
      std::lock_guard<std::mutex> lock(done_mutex);
      manifest_out.set(item->index, record);
      manifest_out.flush(false);
      ++finished;
      (record["status"] == "ok" ? summary.ok : summary.failed) += 1;
      progress.done(record, finished, summary.failed);
    }
  };
  std::vector<std::thread> workers;
  for (int j = 0; j < command.jobs; ++j) workers.emplace_back(worker);
  for (auto& w : workers) w.join();
  reader.join();
  manifest_out.flush(true);
  summary.seconds = since(start);
  return summary;
}

}  // namespace unibiomed
