// `unibiomed eval`: dataset manifests, the registry, reports, the baseline gate and JUnit, and
// a run with the tiny test bundle on a small dataset of sample images.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_support.h"
#include "unibiomed/error.h"
#include "unibiomed/eval.h"

namespace fs = std::filesystem;
using unibiomed::test::quoted;
using unibiomed::test::sample;
using unibiomed::test::scratch_dir;
using unibiomed::test::slurp;
using unibiomed::test::test_data;
using unibiomed::test::unibiomed_cli;

namespace {

fs::path write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path;
}

// A segmentation dataset of the ITK slices with the ventricle model, and a report dataset.
fs::path small_datasets(const std::string& name) {
  const fs::path root = scratch_dir("eval_" + name) / "data";
  fs::create_directories(root / "seg");
  fs::copy_file(sample("itk/BrainProtonDensitySlice.png"), root / "seg" / "pd.png");
  fs::copy_file(sample("itk/BrainT1Slice.png"), root / "seg" / "t1.png");
  fs::copy_file(sample("itk/VentricleModel.png"), root / "seg" / "ventricle.png");
  write_file(root / "seg" / "dataset.json", R"({
    "format": "unibiomed-dataset/1", "name": "itk-ventricle", "task": "segment",
    "items": [
      {"id": "pd", "image": "pd.png", "masks": {"right lateral ventricle": "ventricle.png"}},
      {"id": "t1", "image": "t1.png", "masks": {"right lateral ventricle": "ventricle.png"}}
    ]})");
  fs::create_directories(root / "report");
  fs::copy_file(sample("itk/BrainT1Slice.png"), root / "report" / "t1.png");
  write_file(root / "report" / "dataset.json", R"({
    "format": "unibiomed-dataset/1", "name": "itk-report", "task": "report",
    "items": [{"id": "t1", "image": "t1.png", "answer": "No focal lesion is seen."}]})");
  write_file(root / "registry.json", R"({
    "format": "unibiomed-registry/1",
    "datasets": [
      {"name": "itk-ventricle", "task": "segment", "metric": "dice", "split": "project",
       "layout": "seg/dataset.json"},
      {"name": "itk-report", "task": "report", "metric": "bleu4", "split": "project",
       "layout": "report/dataset.json"},
      {"name": "not-here", "task": "segment", "metric": "dice", "split": "internal",
       "layout": "not-here/dataset.json"}
    ]})");
  return root;
}

unibiomed::EvalReport one_dataset(double dice, double hd95, const std::string& status = "ok") {
  unibiomed::EvalReport r;
  r.model_name = "m";
  unibiomed::DatasetReport d;
  d.name = "set";
  d.task = "segment";
  d.status = status;
  d.items = 3;
  d.metrics = {{"dice", dice}, {"hd95_mm", hd95}};
  r.datasets.push_back(d);
  return r;
}

}  // namespace

TEST(Eval, DatasetManifestErrorsNameTheEntry) {
  const fs::path dir = scratch_dir("eval_manifest");
  write_file(dir / "a" / "dataset.json",
             R"({"format": "unibiomed-dataset/1", "name": "a", "task": "segment",
                 "items": [{"id": "x", "image": "x.png"}]})");
  try {
    unibiomed::read_dataset(dir / "a");
    FAIL() << "no error";
  } catch (const unibiomed::Error& e) {
    EXPECT_NE(std::string(e.what()).find("item 0: no 'masks'"), std::string::npos) << e.what();
  }
  write_file(dir / "b" / "dataset.json", R"({"format": "other", "name": "b"})");
  EXPECT_THROW(unibiomed::read_dataset(dir / "b"), unibiomed::Error);
  write_file(dir / "c" / "dataset.json",
             R"({"format": "unibiomed-dataset/1", "name": "c", "task": "vqa",
                 "items": [{"image": "x.png", "answer": "yes"}]})");
  EXPECT_THROW(unibiomed::read_dataset(dir / "c"), unibiomed::Error);  // no question
  write_file(dir / "d" / "dataset.json",
             R"({"format": "unibiomed-dataset/1", "name": "d", "task": "segment",
                 "items": [{"image": "x.png", "masks": {"liver": {"file": "l.nii.gz", "value": 6}}}]})");
  const auto d = unibiomed::read_dataset(dir / "d");
  ASSERT_EQ(d.items.size(), 1u);
  EXPECT_EQ(d.items[0].masks[0].label, "liver");
  EXPECT_EQ(*d.items[0].masks[0].value, 6);
  EXPECT_EQ(d.items[0].masks[0].file, dir / "d" / "l.nii.gz");
}

TEST(Eval, ProjectRegistryIsWellFormed) {
  const auto entries =
      unibiomed::read_registry(fs::path(UNIBIOMED_SOURCE_DIR) / "benchmarks" / "registry.json");
  EXPECT_GE(entries.size(), 50u);
  std::size_t project = 0;
  for (const auto& e : entries) {
    project += e.split == "project";
    EXPECT_FALSE(e.layout.empty()) << e.name;
    EXPECT_TRUE(e.task == "segment" || e.task == "diagnose" || e.task == "report" ||
                e.task == "vqa")
        << e.name;
  }
  EXPECT_EQ(project, 3u);
}

TEST(Eval, BaselineRegressionsNameDatasetAndMetric) {
  // within tolerance: nothing
  EXPECT_TRUE(unibiomed::regressions(one_dataset(0.80, 5.0), one_dataset(0.81, 4.0)).empty());
  // Dice down by 0.05, HD95 up by 3 mm: both named
  const auto r = unibiomed::regressions(one_dataset(0.76, 7.5), one_dataset(0.81, 4.0));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], "set: dice 0.7600 < baseline 0.8100 - 0.02");
  EXPECT_EQ(r[1], "set: hd95_mm 7.5000 > baseline 4.0000 + 2.00");
  // a dataset that failed now is a regression; one absent here is not
  EXPECT_EQ(unibiomed::regressions(one_dataset(0, 0, "failed"), one_dataset(0.8, 4)).size(), 1u);
  EXPECT_TRUE(unibiomed::regressions(one_dataset(0, 0, "absent"), one_dataset(0.8, 4)).empty());
  // the JSON form round-trips
  const auto back = unibiomed::report_from_json(unibiomed::report_to_json(one_dataset(0.5, 2)));
  EXPECT_EQ(back.datasets[0].metrics.at("dice"), 0.5);
  const std::string xml = unibiomed::report_junit(one_dataset(0.76, 7.5), r);
  EXPECT_NE(xml.find("failures=\"1\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("dice 0.7600 &lt; baseline"), std::string::npos) << xml;
}

TEST(Eval, RegistryRunReportsAndGates) {
  const fs::path root = small_datasets("registry");
  const fs::path out = root.parent_path() / "report";
  const fs::path junit = root.parent_path() / "junit.xml";
  const std::string base = "eval -q -m " + quoted(test_data("tiny-bundle")) + " --registry " +
                           quoted(root / "registry.json") + " --data-root " + quoted(root) +
                           " -o " + quoted(out) + " --junit " + quoted(junit);
  const auto run = unibiomed_cli(base);
  ASSERT_EQ(run.code, 0) << run.err;
  const auto report = nlohmann::json::parse(slurp(out / "report.json"));
  ASSERT_EQ(report["datasets"].size(), 3u);
  const auto& seg = report["datasets"][0];
  EXPECT_EQ(seg["status"], "ok");
  EXPECT_EQ(seg["items"], 2);
  for (const char* m : {"dice", "iou", "nsd", "empty_mask_rate"}) {
    ASSERT_TRUE(seg["metrics"].contains(m)) << m;
    const double v = seg["metrics"][m];
    EXPECT_GE(v, 0.0) << m;
    EXPECT_LE(v, 1.0) << m;
  }
  const auto& text = report["datasets"][1];
  EXPECT_EQ(text["status"], "ok");
  for (const char* m : {"bleu1", "bleu4", "rouge_l", "meteor", "cider"}) {
    EXPECT_TRUE(text["metrics"].contains(m)) << m;
  }
  EXPECT_EQ(report["datasets"][2]["status"], "absent");
  EXPECT_NE(slurp(out / "report.md").find("| itk-ventricle | segment |"), std::string::npos);
  EXPECT_NE(slurp(junit).find("skipped=\"1\""), std::string::npos);

  // the same run against its own report passes the gate; against a better baseline it fails,
  // naming the dataset and the metric
  EXPECT_EQ(unibiomed_cli(base + " --baseline " + quoted(out / "report.json")).code, 0);
  auto better = report;
  better["datasets"][0]["metrics"]["dice"] = seg["metrics"]["dice"].get<double>() + 0.1;
  write_file(root.parent_path() / "better.json", better.dump());
  const auto gated =
      unibiomed_cli(base + " --baseline " + quoted(root.parent_path() / "better.json"));
  EXPECT_EQ(gated.code, 6) << gated.err;
  EXPECT_NE(gated.out.find("REGRESSION itk-ventricle: dice"), std::string::npos) << gated.out;
  EXPECT_NE(slurp(junit).find("failures=\"1\""), std::string::npos);
}

TEST(Eval, UsageErrors) {
  EXPECT_EQ(unibiomed_cli("eval").code, 2);
  EXPECT_EQ(unibiomed_cli("eval --registry x.json").code, 2);  // no --data-root
  const fs::path root = small_datasets("usage");
  EXPECT_EQ(unibiomed_cli("eval -m " + quoted(test_data("tiny-bundle")) + " --registry " +
                          quoted(root / "registry.json") + " --data-root " + quoted(root) +
                          " --only nothing-such")
                .code,
            2);
  EXPECT_EQ(
      unibiomed_cli("eval -m " + quoted(test_data("tiny-bundle")) + " " + quoted(root / "missing"))
          .code,
      3);
}
