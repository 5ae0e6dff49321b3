// Small string helpers shared inside the engine; not part of the public API.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>

namespace unibiomed::detail {

inline std::string to_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Without leading and trailing white space (and NULs, which pad DICOM values).
inline std::string trim(const std::string& text) {
  static const char kSpace[] = " \t\r\n\0";
  const std::string space(kSpace, sizeof kSpace - 1);
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace unibiomed::detail
