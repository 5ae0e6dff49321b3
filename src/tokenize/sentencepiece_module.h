// libsentencepiece is loaded at run time, as a module of its own: Debian's libsentencepiece
// carries its own copy of protobuf 3.14 with exported symbols, and LibTorch needs the system's
// libprotobuf 3.21. Linked into one program they bind to each other's symbols and the program
// crashes before main. The module (libunibiomed_sentencepiece.so: the SentencePiece tokenizer
// linked with libsentencepiece) is opened with RTLD_LOCAL | RTLD_DEEPBIND, so that
// libsentencepiece binds to its own protobuf and stays out of the program's symbol scope.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "unibiomed/tokenizer.h"

// The module's one entry point: a new tokenizer, or nullptr with the error's kind (an
// ErrorKind value) and message.
extern "C" unibiomed::Tokenizer* unibiomed_load_sentencepiece(
    const std::filesystem::path* path, const std::vector<std::string>* added_tokens,
    int* error_kind, std::string* error_message);

namespace unibiomed::tokenize {

// Opens the module (once) and loads a tokenizer with it; throws Error naming the module when it
// cannot be found or opened (UNIBIOMED_SENTENCEPIECE_MODULE names it explicitly).
std::unique_ptr<const Tokenizer> load_sentencepiece(const std::filesystem::path& path,
                                                    const std::vector<std::string>& added_tokens);

}  // namespace unibiomed::tokenize
