// Some decoders (libjpeg, OpenJPEG, libtiff) print warnings straight to the process's stderr,
// which would break the one-line error contract of the command line. While a QuietStderr is
// alive, file descriptor 2 points at /dev/null; the reader reports what matters itself.
// Note: this is process-wide; other threads' stderr output in that window is dropped too.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace unibiomed::detail {

class QuietStderr {
 public:
  QuietStderr() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int null = ::open("/dev/null", O_WRONLY);
    if (saved_ >= 0 && null >= 0) ::dup2(null, 2);
    if (null >= 0) ::close(null);
  }
  ~QuietStderr() {
    std::fflush(stderr);
    if (saved_ >= 0) {
      ::dup2(saved_, 2);
      ::close(saved_);
    }
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  int saved_ = -1;
};

}  // namespace unibiomed::detail
