// Helpers shared by the tests: where the golden files and the fetched samples are, and a
// reader for the golden TSV tables.
#pragma once

#include <gtest/gtest.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace unibiomed::test {

// tests/data/<name>: the committed goldens, tiny bundle and its goldens.
inline std::filesystem::path test_data(const std::string& name) {
  return std::filesystem::path(UNIBIOMED_SOURCE_DIR) / "tests" / "data" / name;
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return nlohmann::json::parse(in);
}

// Largest absolute difference relative to the reference's largest magnitude (elementwise
// relative error means nothing for values that cross zero).
inline double relative_error(const torch::Tensor& got, const torch::Tensor& ref) {
  const double scale = ref.abs().max().item<double>();
  const double err = (got.to(torch::kFloat64) - ref.to(torch::kFloat64)).abs().max().item<double>();
  return err / std::max(scale, 1e-6);
}

inline std::filesystem::path golden_dir() {
  return std::filesystem::path(UNIBIOMED_SOURCE_DIR) / "tests" / "data" / "golden";
}

// The sample cache filled by tools/fetch_data.sh (UNIBIOMED_DATA overrides its place).
inline std::filesystem::path sample_dir() {
  if (const char* env = std::getenv("UNIBIOMED_DATA")) return env;
  return std::filesystem::path(UNIBIOMED_SOURCE_DIR) / ".cache" / "data";
}

// A fetched sample; the test fails (not skips) when it is missing: run tools/fetch_data.sh.
inline std::filesystem::path sample(const std::string& relative) {
  const auto path = sample_dir() / relative;
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << "sample " << path << " is missing: run tools/fetch_data.sh";
  }
  return path;
}

using Row = std::map<std::string, std::string>;

inline std::vector<Row> read_tsv(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::vector<Row> rows;
  std::string line;
  std::vector<std::string> header;
  const auto split = [](const std::string& text) {
    std::vector<std::string> fields;
    std::stringstream stream(text);
    std::string field;
    while (std::getline(stream, field, '\t')) fields.push_back(field);
    return fields;
  };
  if (std::getline(in, line)) header = split(line);
  while (std::getline(in, line)) {
    const auto fields = split(line);
    Row row;
    for (std::size_t i = 0; i < header.size() && i < fields.size(); ++i) row[header[i]] = fields[i];
    rows.push_back(row);
  }
  return rows;
}

inline double number(const Row& row, const std::string& key) {
  return std::strtod(row.at(key).c_str(), nullptr);
}

inline std::vector<unsigned char> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

// A fresh empty folder under the build tree for one test's outputs.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto dir = std::filesystem::path(UNIBIOMED_BINARY_DIR) / "scratch" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace unibiomed::test

// The datasets the parity tests run on: a goldens folder under tests/data whose cases.json
// names its bundle relative to itself. Type names (not an index) so that ctest's names say
// which model a test ran on: EngineParity.VisionTokensMatch<parity::demo>.
namespace parity {
struct tiny {
  static std::string golden() { return "tiny-golden"; }
  static constexpr bool optional = false;
};
// Comes with the shipped model (models/default); its tests skip while it is not committed.
struct demo {
  static std::string golden() { return "demo-golden"; }
  static constexpr bool optional = true;
};
}  // namespace parity
