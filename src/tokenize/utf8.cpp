#include "utf8.h"

#include <utf8proc.h>

#include "unibiomed/error.h"

namespace unibiomed::tokenize {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the sequence a lead byte starts (0: not a lead byte) and the range its second
// byte must lie in (Unicode's table of well-formed UTF-8 byte sequences).
struct Lead {
  int length;
  unsigned char low;
  unsigned char high;
};

Lead lead_of(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from `pos` form a valid prefix of the sequence its lead byte starts (at least
// 1); `complete` tells whether that prefix is the whole sequence.
std::size_t valid_prefix(std::string_view s, std::size_t pos, bool* complete) {
  const auto lead = lead_of(static_cast<unsigned char>(s[pos]));
  if (lead.length <= 1) {
    *complete = lead.length == 1;
    return 1;
  }
  std::size_t n = 1;
  for (int k = 1; k < lead.length; ++k) {
    if (pos + n >= s.size()) {
      *complete = false;
      return n;
    }
    const auto b = static_cast<unsigned char>(s[pos + n]);
    const unsigned char low = k == 1 ? lead.low : 0x80;
    const unsigned char high = k == 1 ? lead.high : 0xBF;
    if (b < low || b > high) {
      *complete = false;
      return n;
    }
    ++n;
  }
  *complete = true;
  return n;
}

}  // namespace

std::size_t invalid_utf8_offset(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    bool complete = false;
    const std::size_t n = valid_prefix(text, pos, &complete);
    if (!complete) return pos;
    pos += n;
  }
  return std::string_view::npos;
}

void check_utf8(std::string_view text, const std::string& what) {
  const std::size_t at = invalid_utf8_offset(text);
  if (at != std::string_view::npos) {
    throw input_error(what + ": invalid UTF-8 at byte offset " + std::to_string(at));
  }
}

std::size_t decode_utf8_replace(std::string_view bytes, bool final, std::string& out) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    const std::size_t n = valid_prefix(bytes, pos, &complete);
    if (complete) {
      out.append(bytes.substr(pos, n));
    } else if (!final && pos + n == bytes.size() &&
               lead_of(static_cast<unsigned char>(bytes[pos])).length > 1) {
      return pos;  // an incomplete character whose remaining bytes may still come
    } else {
      out.append(kReplacement);
    }
    pos += n;
  }
  return pos;
}

std::string utf8_replace_invalid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  decode_utf8_replace(bytes, true, out);
  return out;
}

char32_t code_point_at(std::string_view text, std::size_t pos, std::size_t* length) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  const int n = lead_of(b0).length;
  if (n <= 1) {
    *length = 1;
    return b0;
  }
  char32_t c = b0 & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    c = (c << 6) | (static_cast<unsigned char>(text[pos + static_cast<std::size_t>(k)]) & 0x3F);
  }
  *length = static_cast<std::size_t>(n);
  return c;
}

std::size_t previous_code_point(std::string_view text, std::size_t pos) {
  --pos;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::size_t code_point_count(std::string_view text) {
  std::size_t n = 0;
  for (const char ch : text) {
    if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool is_space(char32_t c) {
  const auto* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
  return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
         p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

bool is_word_char(char32_t c) {
  if (c == U'_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

}  // namespace unibiomed::tokenize
