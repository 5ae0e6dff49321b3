// The phrase of each [SEG]: a port of seg_phrases in tools/unibiomed_ref/prompt.py. The Python
// works on str; this works on the UTF-8 bytes, which gives the same results because every
// character it looks for is ASCII (and UTF-8 never holds an ASCII byte inside a multi-byte
// character) and whitespace is Python's (str.isspace), multi-byte spaces included.
#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "results/results.h"
#include "unibiomed/chat.h"

namespace unibiomed {
namespace {

// Byte length of the Python whitespace character starting at `pos`, or 0. Python's whitespace:
// U+0009..U+000D, U+001C..U+001F, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
// U+2029, U+202F, U+205F, U+3000. A space's first byte is never a UTF-8 continuation byte, so
// stepping through the text byte by byte never finds a space inside another character.
std::size_t space_at(const std::string& s, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const std::size_t left = s.size() - pos;
  const unsigned char b0 = byte(pos);
  if ((b0 >= 0x09 && b0 <= 0x0D) || (b0 >= 0x1C && b0 <= 0x20)) return 1;
  if (b0 == 0xC2 && left >= 2 && (byte(pos + 1) == 0x85 || byte(pos + 1) == 0xA0)) return 2;
  if (left < 3) return 0;
  const unsigned char b1 = byte(pos + 1);
  const unsigned char b2 = byte(pos + 2);
  if (b0 == 0xE1 && b1 == 0x9A && b2 == 0x80) return 3;  // U+1680
  if (b0 == 0xE2 && b1 == 0x80 &&
      ((b2 >= 0x80 && b2 <= 0x8A) || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF)) {
    return 3;  // U+2000..U+200A, U+2028, U+2029, U+202F
  }
  if (b0 == 0xE2 && b1 == 0x81 && b2 == 0x9F) return 3;  // U+205F
  if (b0 == 0xE3 && b1 == 0x80 && b2 == 0x80) return 3;  // U+3000
  return 0;
}

// Byte length of the Python whitespace character that ends just before `end`, or 0.
std::size_t space_before(const std::string& s, std::size_t end) {
  for (std::size_t n = 1; n <= 3 && n <= end; ++n) {
    if (space_at(s, end - n) == n) return n;
  }
  return 0;
}

// Python's str.strip() with no arguments.
std::string py_strip(const std::string& s) {
  std::size_t begin = 0;
  std::size_t end = s.size();
  while (begin < end) {
    const std::size_t n = space_at(s, begin);
    if (n == 0) break;
    begin += n;
  }
  while (end > begin) {
    const std::size_t n = space_before(s, end);
    if (n == 0) break;
    end -= n;
  }
  return s.substr(begin, end - begin);
}

// Python's str.strip(chars) for ASCII chars.
std::string strip_chars(const std::string& s, const std::string& chars) {
  const std::size_t begin = s.find_first_not_of(chars);
  if (begin == std::string::npos) return "";
  const std::size_t end = s.find_last_not_of(chars);
  return s.substr(begin, end - begin + 1);
}

// Python's str.split(sep) (sep not empty).
std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> pieces;
  std::size_t start = 0;
  for (std::size_t at = s.find(sep); at != std::string::npos; at = s.find(sep, start)) {
    pieces.push_back(s.substr(start, at - start));
    start = at + sep.size();
  }
  pieces.push_back(s.substr(start));
  return pieces;
}

// Python's str.replace(old, new): one pass, left to right, matches do not overlap.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  std::size_t start = 0;
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, start)) {
    out.append(s, start, at - start);
    out += to;
    start = at + from.size();
  }
  out.append(s, start, std::string::npos);
  return out;
}

// " ".join(s.split()): the words between whitespace runs, joined by single spaces.
std::string collapse_spaces(const std::string& s) {
  std::string out;
  std::size_t pos = 0;
  bool pending_space = false;
  while (pos < s.size()) {
    const std::size_t n = space_at(s, pos);
    if (n > 0) {
      pending_space = !out.empty();
      pos += n;
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += s[pos++];
  }
  return out;
}

// The last match of the regex <p>(.*?)</p> (re.S) in `text`, as re.findall(...)[-1] gives it.
std::optional<std::string> last_phrase(const std::string& text, const std::string& open,
                                       const std::string& close) {
  std::optional<std::string> last;
  std::size_t pos = 0;
  for (std::size_t a = text.find(open); a != std::string::npos; a = text.find(open, pos)) {
    const std::size_t b = text.find(close, a + open.size());
    if (b == std::string::npos) break;  // no later <p> has a </p> after it either
    last = text.substr(a + open.size(), b - a - open.size());
    pos = b + close.size();
  }
  return last;
}

// _clean: the added tokens removed (in their order), whitespace collapsed.
std::string clean(std::string text) {
  for (const std::string& token : added_tokens()) text = replace_all(text, token, "");
  return collapse_spaces(text);
}

}  // namespace

std::vector<std::string> seg_phrases(const std::string& answer,
                                     const std::vector<std::string>& targets) {
  static const std::string kSeg = "[SEG]";
  static const std::string kOpen = "<p>";
  static const std::string kClose = "</p>";
  std::vector<std::string> phrases;
  const std::vector<std::string> pieces = split(answer, kSeg);
  for (std::size_t i = 0; i + 1 < pieces.size(); ++i) {
    const std::string& before = pieces[i];
    const std::optional<std::string> found = last_phrase(before, kOpen, kClose);
    const std::string tail = found ? before.substr(before.rfind(kClose) + kClose.size()) : before;
    if (found && strip_chars(tail, " ,.;:").empty()) {
      phrases.push_back(py_strip(*found));
    } else if (!targets.empty()) {
      phrases.push_back(targets[std::min(i, targets.size() - 1)]);
    } else {
      // start = max(before.rfind("."), before.rfind("\n")) + 1, rfind giving -1 when absent.
      const std::size_t dot = before.rfind('.');
      const std::size_t newline = before.rfind('\n');
      std::size_t start = 0;
      if (dot != std::string::npos) start = dot + 1;
      if (newline != std::string::npos) start = std::max(start, newline + 1);
      const std::string& after = pieces[i + 1];
      std::size_t end = after.size();
      for (const char c : {'.', '\n'}) end = std::min(end, after.find(c));
      const std::string sentence =
          replace_all(before.substr(start) + kSeg + after.substr(0, end), kSeg, "");
      phrases.push_back(clean(py_strip(sentence)));
    }
  }
  return phrases;
}

}  // namespace unibiomed
