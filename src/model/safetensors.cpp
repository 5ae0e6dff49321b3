#include "unibiomed/safetensors.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "unibiomed/error.h"

namespace unibiomed {
namespace {

struct DtypeInfo {
  torch::ScalarType type;
  std::uint64_t size;
};

bool dtype_info(const std::string& name, DtypeInfo& info) {
  static const std::map<std::string, DtypeInfo> table = {
      {"F64", {torch::kFloat64, 8}},   {"F32", {torch::kFloat32, 4}}, {"F16", {torch::kFloat16, 2}},
      {"BF16", {torch::kBFloat16, 2}}, {"I64", {torch::kInt64, 8}},   {"I32", {torch::kInt32, 4}},
      {"I16", {torch::kInt16, 2}},     {"I8", {torch::kInt8, 1}},     {"U8", {torch::kUInt8, 1}},
      {"BOOL", {torch::kBool, 1}}};
  const auto it = table.find(name);
  if (it == table.end()) return false;
  info = it->second;
  return true;
}

std::uint64_t file_size_of(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw input_error(path.string() + ": cannot open (" + ec.message() + ")");
  return size;
}

}  // namespace

SafetensorsHeader read_safetensors_header(const std::filesystem::path& path) {
  const std::string where = path.string();
  const std::uint64_t file_size = file_size_of(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(where + ": cannot open");
  unsigned char raw[8] = {};
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(raw), 8)) {
    throw input_error(where + ": too short for a safetensors file");
  }
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | raw[i];
  if (length < 2 || length > file_size - 8 || length > (std::uint64_t{100} << 20)) {
    throw input_error(where + ": header length " + std::to_string(length) +
                      " does not fit a file of " + std::to_string(file_size) + " bytes");
  }
  std::string text(static_cast<std::size_t>(length), '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(length))) {
    throw input_error(where + ": cannot read the header");
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw input_error(where + ": header is not JSON (" + e.what() + ")");
  }
  if (!json.is_object()) throw input_error(where + ": header is not a JSON object");
  SafetensorsHeader header;
  header.data_offset = 8 + length;
  const std::uint64_t data_size = file_size - header.data_offset;
  for (const auto& [name, value] : json.items()) {
    if (name == "__metadata__") {
      for (const auto& [key, meta] : value.items()) {
        if (meta.is_string()) header.metadata[key] = meta.get<std::string>();
      }
      continue;
    }
    const std::string at = where + ": tensor '" + name + "'";
    SafetensorsEntry entry;
    try {
      entry.dtype = value.at("dtype").get<std::string>();
      entry.shape = value.at("shape").get<std::vector<std::int64_t>>();
      const auto offsets = value.at("data_offsets").get<std::vector<std::uint64_t>>();
      if (offsets.size() != 2) throw input_error(at + ": data_offsets must have 2 values");
      entry.begin = offsets[0];
      entry.end = offsets[1];
    } catch (const nlohmann::json::exception& e) {
      throw input_error(at + ": malformed entry (" + e.what() + ")");
    }
    DtypeInfo info{};
    if (!dtype_info(entry.dtype, info))
      throw input_error(at + ": unsupported dtype " + entry.dtype);
    std::uint64_t count = 1;
    for (const auto d : entry.shape) {
      if (d < 0) throw input_error(at + ": negative dimension");
      count *= static_cast<std::uint64_t>(d);
    }
    if (entry.end < entry.begin || entry.end > data_size) {
      throw input_error(at + ": bytes " + std::to_string(entry.begin) + ".." +
                        std::to_string(entry.end) + " lie outside the data section (" +
                        std::to_string(data_size) + " bytes)");
    }
    if (entry.end - entry.begin != count * info.size) {
      throw input_error(at + ": " + std::to_string(entry.end - entry.begin) + " bytes for " +
                        std::to_string(count) + " values of " + entry.dtype);
    }
    header.tensors[name] = entry;
  }
  return header;
}

std::map<std::string, torch::Tensor> read_safetensors(const std::filesystem::path& path,
                                                      const std::vector<std::string>& names) {
  const SafetensorsHeader header = read_safetensors_header(path);
  std::vector<std::string> wanted = names;
  if (wanted.empty()) {
    for (const auto& item : header.tensors) wanted.push_back(item.first);
  }
  std::ifstream in(path, std::ios::binary);
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : wanted) {
    const auto it = header.tensors.find(name);
    if (it == header.tensors.end()) {
      throw input_error(path.string() + ": no tensor named '" + name + "'");
    }
    const SafetensorsEntry& entry = it->second;
    DtypeInfo info{};
    dtype_info(entry.dtype, info);
    torch::Tensor tensor = torch::empty(entry.shape, torch::TensorOptions().dtype(info.type));
    in.seekg(static_cast<std::streamoff>(header.data_offset + entry.begin));
    if (!in.read(static_cast<char*>(tensor.data_ptr()),
                 static_cast<std::streamsize>(entry.end - entry.begin))) {
      throw input_error(path.string() + ": tensor '" + name + "' is truncated");
    }
    out.emplace(name, std::move(tensor));
  }
  return out;
}

}  // namespace unibiomed
