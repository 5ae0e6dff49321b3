#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "unibiomed/error.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;

// The extension to keep on the temporary name, so that writers choosing a format by
// extension still do: ".nii.gz" counts as one.
std::string full_extension(const fs::path& path) {
  const std::string name = path.filename().string();
  for (const char* double_ext : {".nii.gz", ".tar.gz"}) {
    const std::string ext(double_ext);
    if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0)
      return ext;
  }
  return path.extension().string();
}

void sync_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_atomically(const fs::path& target, const std::function<void(const fs::path&)>& write) {
  const std::string ext = full_extension(target);
  const std::string name = target.filename().string();
  const std::string stem = name.substr(0, name.size() - ext.size());
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw output_error(folder.string() + ": cannot create the folder (" + ec.message() + ")");
  const fs::path temp = folder / ("." + stem + ".tmp" + std::to_string(::getpid()) + ext);
  try {
    write(temp);
    sync_file(temp);
    fs::rename(temp, target);
  } catch (const Error& e) {
    fs::remove(temp, ec);
    throw output_error(target.string() + ": " + e.what());
  } catch (const std::exception& e) {
    fs::remove(temp, ec);
    throw output_error(target.string() + ": cannot write (" + e.what() + ")");
  }
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  write_atomically(path, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary);
    out << text;
    out.close();
    if (!out) throw output_error("could not write the file");
  });
}

}  // namespace unibiomed
