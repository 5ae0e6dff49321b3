// `unibiomed batch` with the tiny test bundle on a folder of sample studies: outputs, manifest,
// a bad study, kill -9 at any moment and resume, shards and their merge, tables and lists.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "cli_support.h"
#include "unibiomed/batch.h"
#include "unibiomed/error.h"

namespace fs = std::filesystem;
using unibiomed::test::quoted;
using unibiomed::test::sample;
using unibiomed::test::scratch_dir;
using unibiomed::test::slurp;
using unibiomed::test::test_data;
using unibiomed::test::unibiomed_cli;

namespace {

// A folder of studies: two MR slices, a DICOM series folder, a fundus picture and a file that
// claims to be NIfTI and is not.
fs::path study_folder(const std::string& name) {
  const fs::path dir = scratch_dir("batch_" + name) / "studies";
  fs::create_directories(dir / "subject 2" / "series");
  fs::copy_file(sample("itk/BrainT1Slice.png"), dir / "t1.png");
  fs::copy_file(sample("itk/BrainProtonDensitySlice.png"), dir / "subject 2" / "pd.png");
  fs::copy_file(sample("ami/adi_slice.dcm"), dir / "subject 2" / "series" / "IM0001");
  fs::copy_file(sample("skimage/retina.jpg"), dir / "retina.jpg");
  std::ofstream(dir / "broken.nii.gz") << "not a NIfTI file";
  std::ofstream(dir / "notes.txt") << "not a study";
  return dir;
}

std::string batch_args(const fs::path& input, const fs::path& out, const std::string& more = "") {
  return "batch -q -m " + quoted(test_data("tiny-bundle")) + " --target brain -o " + quoted(out) +
         " " + quoted(input) + " " + more;
}

std::vector<nlohmann::json> manifest(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));  // throws if torn
  return lines;
}

// Every file of a batch output folder, with the run-dependent timings taken out of the JSON.
std::map<std::string, std::string> outputs_of(const fs::path& out) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), out).generic_string();
    if (rel.rfind("manifest", 0) == 0) continue;
    std::string text = slurp(e.path());
    const std::string name = e.path().filename().string();
    if (name == "result.json" || name == "study.json") {
      auto j = nlohmann::json::parse(text);
      j.erase("times");
      j.erase("timings");
      text = j.dump();
    }
    files[rel] = text;
  }
  return files;
}

}  // namespace

TEST(Batch, StudyNamesAreStableAndSafe) {
  EXPECT_EQ(unibiomed::study_name("subject 2/pd.png"), unibiomed::study_name("subject 2/pd.png"));
  const std::string n = unibiomed::study_name("subject 2/pd.png");
  EXPECT_EQ(n.rfind("subject_2_pd.png-", 0), 0u) << n;
  EXPECT_EQ(n.size(), std::string("subject_2_pd.png-").size() + 8);
  EXPECT_NE(unibiomed::study_name("a/b.png"), unibiomed::study_name("a_b.png"));
  EXPECT_EQ(unibiomed::study_name("../..").rfind("study-", 0), 0u);
}

TEST(Batch, ShardSpecs) {
  EXPECT_EQ(unibiomed::parse_shard("3/8"), (std::pair<std::size_t, std::size_t>{3, 8}));
  for (const char* bad : {"8/8", "1", "a/2", "1/0", "-1/2", "1/2x"}) {
    EXPECT_THROW(unibiomed::parse_shard(bad), unibiomed::Error) << bad;
  }
  // every study in exactly one shard
  const auto studies = unibiomed::discover_studies(study_folder("shards_unit"), {});
  std::size_t total = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    for (const auto& s : studies) total += unibiomed::in_shard(s, i, 3) ? 1 : 0;
  }
  EXPECT_EQ(total, studies.size());
}

TEST(Batch, DiscoversFilesAndDicomSeriesFolders) {
  const fs::path dir = study_folder("discover");
  const auto studies = unibiomed::discover_studies(dir, {});
  std::vector<std::string> keys;
  for (const auto& s : studies) keys.push_back(s.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"broken.nii.gz", "retina.jpg", "subject 2/pd.png",
                                            "subject 2/series", "t1.png"}));
}

TEST(Batch, RunsAFolderAndRecordsTheBadStudy) {
  const fs::path dir = study_folder("folder");
  const fs::path out = dir.parent_path() / "out";
  const auto run = unibiomed_cli(batch_args(dir, out));
  EXPECT_EQ(run.code, 5) << run.err;  // some studies failed
  const auto lines = manifest(out / "manifest.jsonl");
  ASSERT_EQ(lines.size(), 5u);
  std::map<std::string, nlohmann::json> by_key;
  for (const auto& l : lines) by_key[l["key"]] = l;
  EXPECT_EQ(by_key["broken.nii.gz"]["status"], "failed");
  EXPECT_NE(by_key["broken.nii.gz"]["error"].get<std::string>().find("broken.nii.gz"),
            std::string::npos);
  for (const char* key : {"t1.png", "subject 2/pd.png", "subject 2/series", "retina.jpg"}) {
    const auto& l = by_key[key];
    EXPECT_EQ(l["status"], "ok") << key << ": " << l.dump();
    const fs::path study = out / l["study"].get<std::string>();
    EXPECT_TRUE(fs::exists(study / "result.json")) << key;
    EXPECT_TRUE(fs::exists(study / "overlay.png")) << key;
    EXPECT_EQ(nlohmann::json::parse(slurp(study / "study.json"))["outputs"], l["outputs"]);
  }
  EXPECT_NE(run.err.find("4 ok, 1 failed, 0 skipped of 5"), std::string::npos) << run.err;
  // resumed: nothing left to do, the bad study is tried again and fails again
  const auto again = unibiomed_cli(batch_args(dir, out, "--resume"));
  EXPECT_EQ(again.code, 5);
  EXPECT_NE(again.err.find("0 ok, 1 failed, 4 skipped of 5"), std::string::npos) << again.err;
}

TEST(Batch, KilledAtAnyMomentAndResumedGivesTheSameOutputs) {
  const fs::path dir = study_folder("kill");
  fs::remove(dir / "broken.nii.gz");
  const fs::path whole = dir.parent_path() / "whole";
  ASSERT_EQ(unibiomed_cli(batch_args(dir, whole)).code, 0);
  const auto expected = outputs_of(whole);

  const fs::path out = dir.parent_path() / "killed";
  int kills = 0;
  for (int delay_ms = 150; kills < 40; delay_ms += 150) {
    // kill -9 after delay_ms, from loading the model to writing the last study
    const std::string command = "timeout -s KILL " + std::to_string(delay_ms / 1000.0) + " '" +
                                UNIBIOMED_EXECUTABLE + "' " + batch_args(dir, out, "--resume") +
                                " >/dev/null 2>&1";
    const int status = std::system(command.c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break;
    ++kills;
    // after every kill: each study folder is complete, the manifest holds whole lines only
    if (!fs::exists(out)) continue;  // killed before it made the output folder
    if (fs::exists(out / "manifest.jsonl")) {
      EXPECT_NO_THROW(manifest(out / "manifest.jsonl"));
    }
    for (const auto& e : fs::directory_iterator(out)) {
      const std::string name = e.path().filename().string();
      if (!e.is_directory() || name.rfind(".partial-", 0) == 0) continue;
      const auto record = nlohmann::json::parse(slurp(e.path() / "study.json"));
      for (const auto& f : record["outputs"])
        EXPECT_TRUE(fs::exists(e.path() / f.get<std::string>()));
    }
  }
  EXPECT_GE(kills, 2) << "the run was never killed midway";
  EXPECT_EQ(unibiomed_cli(batch_args(dir, out, "--resume")).code, 0);
  EXPECT_EQ(outputs_of(out), expected);
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_NE(e.path().filename().string().rfind(".partial-", 0), 0u) << e.path();
  }
}

TEST(Batch, ShardsSplitTheStudiesAndMergeJoinsThem) {
  const fs::path dir = study_folder("shards");
  const fs::path out = dir.parent_path() / "out";
  std::set<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    const auto run = unibiomed_cli(batch_args(dir, out, "--shard " + std::to_string(i) + "/3"));
    EXPECT_TRUE(run.code == 0 || run.code == 5) << run.err;
    for (const auto& l : manifest(out / ("manifest.shard-" + std::to_string(i) + "-of-3.jsonl"))) {
      EXPECT_TRUE(seen.insert(l["key"]).second) << "in two shards: " << l["key"];
    }
    if (i == 1) {  // merging before every shard is done names the missing one
      const auto early = unibiomed_cli("batch --merge -o " + quoted(out));
      EXPECT_EQ(early.code, 3);
      EXPECT_NE(early.err.find("missing for shards 2 of 3"), std::string::npos) << early.err;
    }
  }
  EXPECT_EQ(seen.size(), 5u);
  const auto merged = unibiomed_cli("batch --merge -o " + quoted(out));
  EXPECT_EQ(merged.code, 5) << merged.err;  // the broken study failed in its shard
  EXPECT_EQ(manifest(out / "manifest.jsonl").size(), 5u);
}

TEST(Batch, TableGivesPerStudyRequests) {
  const fs::path dir = study_folder("table");
  const fs::path table = dir / "studies.csv";
  std::ofstream(table) << "path,task,target,question\n"
                          "t1.png,segment,brain;lateral ventricles,\n"
                          "\"subject 2/pd.png\",vqa,,\"Where is the lesion?\"\n"
                          "missing.png,,,\n";
  const fs::path out = dir.parent_path() / "out";
  const auto run = unibiomed_cli(batch_args(table, out));
  EXPECT_EQ(run.code, 5) << run.err;
  const auto lines = manifest(out / "manifest.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["request"]["targets"],
            (std::vector<std::string>{"brain", "lateral ventricles"}));
  EXPECT_EQ(lines[0]["answers"].size(), 2u);
  EXPECT_EQ(lines[1]["request"]["task"], "vqa");
  EXPECT_EQ(lines[1]["status"], "ok");
  EXPECT_EQ(lines[2]["status"], "failed");
  EXPECT_NE(lines[2]["error"].get<std::string>().find("missing.png"), std::string::npos);

  // a list file: one path per line, relative to the list
  const fs::path list = dir / "list.txt";
  std::ofstream(list) << "# two studies\nt1.png\n\nretina.jpg\n";
  const auto listed = unibiomed_cli(batch_args(list, dir.parent_path() / "listed"));
  EXPECT_EQ(listed.code, 0) << listed.err;
  EXPECT_EQ(manifest(dir.parent_path() / "listed" / "manifest.jsonl").size(), 2u);
}

TEST(Batch, UsageErrors) {
  EXPECT_EQ(unibiomed_cli("batch -o x --shard 2/2 " + quoted(sample("itk"))).code, 2);
  EXPECT_EQ(unibiomed_cli("batch -o x").code, 2);
  EXPECT_EQ(unibiomed_cli("batch --merge -o x " + quoted(sample("itk"))).code, 2);
  const auto one = unibiomed_cli("batch -o x " + quoted(sample("itk/BrainT1Slice.png")));
  EXPECT_EQ(one.code, 2);
  EXPECT_NE(one.err.find("unibiomed interpret"), std::string::npos) << one.err;
}
