#include "added_tokens.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "utf8.h"

namespace unibiomed::tokenize {

AddedTokenSplitter::AddedTokenSplitter(const std::vector<const AddedToken*>& tokens) {
  // One token per text (the last one wins, as a dict keyed by text does).
  std::map<std::string, const AddedToken*> by_text;
  for (const AddedToken* token : tokens) {
    if (!token->content.empty()) by_text[token->content] = token;
  }
  for (const auto& entry : by_text) order_.push_back(entry.second);
  // A regex alternation of the texts, longest first, is leftmost-first: the same order here.
  std::stable_sort(order_.begin(), order_.end(), [](const AddedToken* a, const AddedToken* b) {
    const std::size_t la = code_point_count(a->content);
    const std::size_t lb = code_point_count(b->content);
    if (la != lb) return la > lb;
    return a->content < b->content;
  });
  for (std::size_t i = 0; i < order_.size(); ++i) {
    by_first_byte_[static_cast<unsigned char>(order_[i]->content[0])].push_back(i);
  }
}

const AddedToken* AddedTokenSplitter::find(std::string_view text, std::size_t from,
                                           std::size_t* start) const {
  for (std::size_t pos = from; pos < text.size(); ++pos) {
    for (const std::size_t i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const std::string& content = order_[i]->content;
      if (text.compare(pos, content.size(), content) == 0) {
        *start = pos;
        return order_[i];
      }
    }
  }
  return nullptr;
}

std::vector<TextPiece> AddedTokenSplitter::split(std::string_view text) const {
  std::vector<TextPiece> out;
  if (text.empty()) return out;
  if (order_.empty()) {
    out.push_back({text, nullptr});
    return out;
  }
  struct Span {
    std::size_t start;
    std::size_t stop;
    const AddedToken* token;
  };
  std::vector<Span> spans;
  std::size_t prev_stop = 0;
  std::size_t search = 0;
  std::size_t start = 0;
  while (const AddedToken* token = find(text, search, &start)) {
    std::size_t stop = start + token->content.size();
    search = stop;  // the next match starts after this one, even when this one is rejected
    if (token->single_word) {
      std::size_t length = 0;
      if (start > 0 &&
          is_word_char(code_point_at(text, previous_code_point(text, start), &length))) {
        continue;
      }
      if (stop < text.size() && is_word_char(code_point_at(text, stop, &length))) continue;
    }
    if (token->lstrip) {
      while (start > prev_stop) {
        std::size_t length = 0;
        const std::size_t before = previous_code_point(text, start);
        if (!is_space(code_point_at(text, before, &length))) break;
        start = before;
      }
    }
    if (token->rstrip) {
      while (stop < text.size()) {
        std::size_t length = 0;
        if (!is_space(code_point_at(text, stop, &length))) break;
        stop += length;
      }
    }
    if (!spans.empty() && start < spans.back().stop) start = spans.back().stop;
    spans.push_back({start, stop, token});
    prev_stop = stop;
  }
  std::size_t pos = 0;
  for (const Span& span : spans) {
    if (span.start > pos) out.push_back({text.substr(pos, span.start - pos), nullptr});
    out.push_back({span.token->content, span.token});
    pos = std::max(pos, span.stop);
  }
  if (pos < text.size()) out.push_back({text.substr(pos), nullptr});
  return out;
}

}  // namespace unibiomed::tokenize
