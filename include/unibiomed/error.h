// Errors raised by the engine. Each carries a kind, which the command line turns into a
// documented exit code, and a message that names the file or value at fault.
#pragma once

#include <stdexcept>
#include <string>

namespace unibiomed {

enum class ErrorKind {
  Usage,     // the request itself is wrong: bad option value, contradictory options
  Input,     // an input file or folder is missing, unreadable, corrupt or unsupported
  Output,    // an output could not be written
  Internal,  // a bug or an unexpected library failure
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

inline Error usage_error(const std::string& message) {
  return Error(ErrorKind::Usage, message);
}
inline Error input_error(const std::string& message) {
  return Error(ErrorKind::Input, message);
}
inline Error output_error(const std::string& message) {
  return Error(ErrorKind::Output, message);
}
inline Error internal_error(const std::string& message) {
  return Error(ErrorKind::Internal, message);
}

// Exit codes of the `unibiomed` executable (documented in README.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,
  kExitUsage = 2,
  kExitInput = 3,
  kExitOutput = 4,
  kExitStudiesFailed = 5,  // batch: the run finished, and some studies failed (manifest.jsonl)
  kExitRegression = 6,     // eval: a metric fell below its baseline, or a dataset failed
};

int exit_code_for(ErrorKind kind) noexcept;

}  // namespace unibiomed
