// Running the `unibiomed` executable from a test: exit code, stdout and stderr.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "test_support.h"

namespace unibiomed::test {

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs `unibiomed ARGUMENTS`, with `input` on its stdin.
inline CliRun unibiomed_cli(const std::string& arguments, const std::string& input = "") {
  const auto dir = std::filesystem::path(UNIBIOMED_BINARY_DIR) / "scratch";
  std::filesystem::create_directories(dir);
  // One set of files per test: CTest runs tests in parallel processes.
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const auto in = dir / (name + ".in");
  const auto out = dir / (name + ".out");
  const auto err = dir / (name + ".err");
  {
    std::ofstream stdin_file(in, std::ios::binary);
    stdin_file << input;
  }
  const std::string command = std::string("'") + UNIBIOMED_EXECUTABLE + "' " + arguments + " <'" +
                              in.string() + "' >'" + out.string() + "' 2>'" + err.string() + "'";
  const int status = std::system(command.c_str());
  CliRun run;
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.out = slurp(out);
  run.err = slurp(err);
  return run;
}

// A path as one single-quoted shell word (test paths hold no quote).
inline std::string quoted(const std::filesystem::path& path) {
  return "'" + path.string() + "'";
}

struct Interpreted {
  CliRun run;
  std::filesystem::path dir;
  nlohmann::json result;  // result.json; null when it was not written
};

// Runs `unibiomed interpret -q -m tiny-bundle -o <fresh scratch folder> INPUT ARGUMENTS`.
inline Interpreted interpret_tiny(const std::string& name, const std::filesystem::path& input,
                                  const std::string& arguments) {
  Interpreted r;
  r.dir = scratch_dir("interpret_" + name) / "out";
  r.run = unibiomed_cli("interpret -q -m " + quoted(test_data("tiny-bundle")) + " -o " +
                        quoted(r.dir) + " " + quoted(input) + " " + arguments);
  if (std::filesystem::exists(r.dir / "result.json")) r.result = read_json(r.dir / "result.json");
  return r;
}

}  // namespace unibiomed::test
