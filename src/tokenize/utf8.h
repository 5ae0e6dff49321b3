// UTF-8 helpers of the tokenizers: validation, decoding with U+FFFD replacement (as Python's
// decoder with errors="replace": one U+FFFD per maximal invalid subpart), and the character
// classes the added-token rules use (Python's str.isspace and str.isalnum).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace unibiomed::tokenize {

// Offset of the first byte that is not part of valid UTF-8 (no surrogates, no overlongs, at
// most U+10FFFF), or npos when all of `text` is valid.
std::size_t invalid_utf8_offset(std::string_view text);

// Throws Error(Input) naming `what` and the byte offset when `text` is not valid UTF-8.
void check_utf8(std::string_view text, const std::string& what);

// Appends the text of `bytes` to `out`, replacing each maximal invalid subpart by U+FFFD. With
// `final` false, an incomplete but so far valid sequence at the end is not decoded: the
// returned count of consumed bytes stops before it.
std::size_t decode_utf8_replace(std::string_view bytes, bool final, std::string& out);

// Whole-string form (final).
std::string utf8_replace_invalid(std::string_view bytes);

// The code point starting at `pos` of valid UTF-8 and its length in bytes.
char32_t code_point_at(std::string_view text, std::size_t pos, std::size_t* length);
// Start of the code point that ends just before `pos` (valid UTF-8, pos > 0).
std::size_t previous_code_point(std::string_view text, std::size_t pos);

// Appends the UTF-8 form of `c`.
void append_utf8(char32_t c, std::string& out);

// Number of code points of valid UTF-8.
std::size_t code_point_count(std::string_view text);

// Python's str.isspace: category Zs or bidirectional class WS, B or S.
bool is_space(char32_t c);
// Python's str.isalnum() or '_': a letter, a number or the underscore.
bool is_word_char(char32_t c);

}  // namespace unibiomed::tokenize
