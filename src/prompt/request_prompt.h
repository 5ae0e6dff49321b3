// From a request to the user texts the model is asked (one per segment target), checked; and the
// region box drawn on the image as the release does. Internal.
#pragma once

#include <string>
#include <vector>

#include "unibiomed/chat.h"
#include "unibiomed/engine.h"

namespace unibiomed {

struct PromptText {
  std::string target;     // the segment target, else ""
  std::string user_text;  // before image expansion, e.g. "<image>Please segment liver."
};

// The question of the region task when none is given.
inline constexpr const char* kDefaultRegionQuestion = "Could you describe the <region>?";

// Throws Error(Usage) naming the option: unknown task, a segment without target, a target or
// question that is empty, longer than kMaxTargetBytes, or holds one of the model's control tokens
// (<image>, [SEG], <p>, ...), a region task without a box.
std::vector<PromptText> request_prompts(const ChatSettings& chat, const InterpretRequest& request);

// Checks the box against a width x height image; throws Error(Usage) naming it.
void check_box(const PixelBox& box, int width, int height);

// A copy of the image with the box drawn as the release draws regions: green (0, 255, 0),
// thickness 2 (OpenCV's rectangle).
Image8 draw_region_box(const Image8& image, const PixelBox& box);

}  // namespace unibiomed
