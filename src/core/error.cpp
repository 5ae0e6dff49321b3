#include "unibiomed/error.h"

namespace unibiomed {

int exit_code_for(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::Usage:
      return kExitUsage;
    case ErrorKind::Input:
      return kExitInput;
    case ErrorKind::Output:
      return kExitOutput;
    case ErrorKind::Internal:
      return kExitInternal;
  }
  return kExitInternal;
}

}  // namespace unibiomed
