// Reading safetensors files: an 8-byte little-endian header length, a JSON table of tensor
// names, dtypes, shapes and byte offsets, then the raw little-endian data. Used for the
// reference pipeline's goldens and for checking checkpoints; every malformed file is refused
// with a message naming the file and the tensor.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace unibiomed {

struct SafetensorsEntry {
  std::string dtype;  // "F32", "F16", "BF16", "I64", "I32", "U8", "I8", "BOOL", ...
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets into the data section
  std::uint64_t end = 0;
};

struct SafetensorsHeader {
  std::map<std::string, SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
  std::uint64_t data_offset = 0;  // 8 + header length
};

// The validated header: offsets inside the file, sizes equal to shape x dtype size.
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path);

// Every tensor (or the named ones), as CPU tensors of the stored dtype.
std::map<std::string, torch::Tensor> read_safetensors(const std::filesystem::path& path,
                                                      const std::vector<std::string>& names = {});

}  // namespace unibiomed
