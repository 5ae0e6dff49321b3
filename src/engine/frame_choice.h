// Which frames of a sequence the language model sees (docs/volumes.md). Internal.
#pragma once

#include <vector>

#include "unibiomed/preprocess.h"

namespace unibiomed {

// The release's rule: the first min(n, count) frames.
std::vector<int> release_llm_frames(int count, int n);

// The fraction of a frame's pixels brighter than the background (grey level > 12 of 255 in any
// channel): a cheap measure of how much body a slice holds.
double foreground_fraction(const Image8& frame);

// The default rule: the frames whose foreground is at least a quarter of the largest one span
// the body; n frames are taken at the centres of n equal parts of that span (all frames when
// there are at most n). foreground: one value per frame.
std::vector<int> spread_llm_frames(const std::vector<double>& foreground, int n);

}  // namespace unibiomed
