// Dice, IoU, HD95 and normalised surface Dice on a grid with spacing. Surface distances use an
// exact Euclidean distance transform (Felzenszwalb and Huttenlocher's lower envelope of
// parabolas, one pass per axis, weighted by the squared spacing), so they are in millimetres
// for any anisotropic grid.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "unibiomed/error.h"
#include "unibiomed/metrics.h"

namespace unibiomed::metrics {
namespace {

constexpr double kFar = std::numeric_limits<double>::infinity();

std::size_t voxel_count(const std::array<std::size_t, 3>& size) {
  return size[0] * size[1] * size[2];
}

void check_mask(const BinaryMask& mask, const char* what) {
  if (mask.voxels.size() != voxel_count(mask.size)) {
    throw input_error(std::string(what) + " mask: " + std::to_string(mask.voxels.size()) +
                      " voxels for a grid of " + std::to_string(mask.size[0]) + "x" +
                      std::to_string(mask.size[1]) + "x" + std::to_string(mask.size[2]));
  }
}

// Foreground voxels with a background face neighbour or on the edge of the grid.
std::vector<std::uint8_t> surface_of(const BinaryMask& mask) {
  const auto& n = mask.size;
  std::vector<std::uint8_t> surface(mask.voxels.size(), 0);
  const std::array<std::size_t, 3> stride{1, n[0], n[0] * n[1]};
  for (std::size_t z = 0; z < n[2]; ++z) {
    for (std::size_t y = 0; y < n[1]; ++y) {
      for (std::size_t x = 0; x < n[0]; ++x) {
        const std::size_t i = x + stride[1] * y + stride[2] * z;
        if (!mask.voxels[i]) continue;
        const std::array<std::size_t, 3> at{x, y, z};
        bool edge = false;
        for (int a = 0; a < 3 && !edge; ++a) {
          if (n[a] == 1) continue;  // a 2-D mask has no neighbours along z
          edge = at[a] == 0 || at[a] + 1 == n[a] || !mask.voxels[i - stride[a]] ||
                 !mask.voxels[i + stride[a]];
        }
        surface[i] = edge ? 1 : 0;
      }
    }
  }
  return surface;
}

// One axis of the squared distance transform: d(p) = min_q w (p-q)^2 + f(q), in place over the
// line of `count` values starting at `first` with `stride`.
void transform_line(std::vector<double>& d, std::size_t first, std::size_t stride,
                    std::size_t count, double w, std::vector<double>& f,
                    std::vector<std::size_t>& v, std::vector<double>& z) {
  f.resize(count);
  for (std::size_t q = 0; q < count; ++q) f[q] = d[first + q * stride];
  v.resize(count);
  z.resize(count + 1);
  // lower envelope of the parabolas rooted at the finite sites; z[0] = -inf keeps k >= 0
  std::size_t k = 0;
  bool any = false;
  for (std::size_t q = 0; q < count; ++q) {
    if (f[q] == kFar) continue;
    const auto dq = static_cast<double>(q);
    if (!any) {
      v[0] = q;
      z[0] = -kFar;
      z[1] = kFar;
      any = true;
      continue;
    }
    const auto meet = [&](std::size_t r) {
      const auto dr = static_cast<double>(r);
      return ((f[q] + w * dq * dq) - (f[r] + w * dr * dr)) / (2.0 * w * (dq - dr));
    };
    double s = meet(v[k]);
    while (s <= z[k]) s = meet(v[--k]);
    ++k;
    v[k] = q;
    z[k] = s;
    z[k + 1] = kFar;
  }
  if (!any) return;  // no site on this line: all stay far
  k = 0;
  for (std::size_t p = 0; p < count; ++p) {
    const auto dp = static_cast<double>(p);
    while (z[k + 1] < dp) ++k;
    const auto dv = static_cast<double>(v[k]);
    d[first + p * stride] = w * (dp - dv) * (dp - dv) + f[v[k]];
  }
}

// Squared distance in mm^2 from every voxel to the nearest set voxel of `sites`.
std::vector<double> squared_distance_map(const std::vector<std::uint8_t>& sites,
                                         const std::array<std::size_t, 3>& n,
                                         const std::array<double, 3>& spacing) {
  std::vector<double> d(sites.size());
  for (std::size_t i = 0; i < sites.size(); ++i) d[i] = sites[i] ? 0.0 : kFar;
  const std::array<std::size_t, 3> stride{1, n[0], n[0] * n[1]};
  std::vector<double> f, z;
  std::vector<std::size_t> v;
  for (int axis = 0; axis < 3; ++axis) {
    if (n[axis] == 1) continue;
    const double w = spacing[axis] * spacing[axis];
    // every line along `axis`: iterate over the other two indices
    const int a = (axis + 1) % 3;
    const int b = (axis + 2) % 3;
    for (std::size_t ib = 0; ib < n[b]; ++ib) {
      for (std::size_t ia = 0; ia < n[a]; ++ia) {
        transform_line(d, ia * stride[a] + ib * stride[b], stride[axis], n[axis], w, f, v, z);
      }
    }
  }
  return d;
}

// The q-th percentile with linear interpolation between order statistics (numpy's default).
double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double at = q / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(at));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (at - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

void check_pair(const BinaryMask& truth, const BinaryMask& prediction) {
  check_mask(truth, "ground-truth");
  check_mask(prediction, "predicted");
  if (truth.size != prediction.size) {
    throw input_error("predicted mask grid " + std::to_string(prediction.size[0]) + "x" +
                      std::to_string(prediction.size[1]) + "x" +
                      std::to_string(prediction.size[2]) + " differs from the ground truth's " +
                      std::to_string(truth.size[0]) + "x" + std::to_string(truth.size[1]) + "x" +
                      std::to_string(truth.size[2]));
  }
  for (int a = 0; a < 3; ++a) {
    if (std::abs(truth.spacing[a] - prediction.spacing[a]) > 1e-6 * truth.spacing[a]) {
      throw input_error("predicted mask spacing differs from the ground truth's along axis " +
                        std::to_string(a));
    }
  }
}

}  // namespace

std::size_t BinaryMask::count() const {
  return static_cast<std::size_t>(
      std::count_if(voxels.begin(), voxels.end(), [](std::uint8_t v) { return v != 0; }));
}

std::vector<double> surface_distances(const BinaryMask& from, const BinaryMask& to) {
  check_pair(from, to);
  const auto from_surface = surface_of(from);
  const auto to_surface = surface_of(to);
  const bool from_any =
      std::any_of(from_surface.begin(), from_surface.end(), [](std::uint8_t s) { return s != 0; });
  const bool to_any =
      std::any_of(to_surface.begin(), to_surface.end(), [](std::uint8_t s) { return s != 0; });
  if (!from_any || !to_any) return {};
  const auto d2 = squared_distance_map(to_surface, to.size, to.spacing);
  std::vector<double> out;
  for (std::size_t i = 0; i < from_surface.size(); ++i) {
    if (from_surface[i]) out.push_back(std::sqrt(d2[i]));
  }
  return out;
}

SegmentationScores score_segmentation(const BinaryMask& truth, const BinaryMask& prediction,
                                      double nsd_tolerance_mm) {
  check_pair(truth, prediction);
  std::size_t a = 0, b = 0, both = 0;
  for (std::size_t i = 0; i < truth.voxels.size(); ++i) {
    const bool t = truth.voxels[i] != 0;
    const bool p = prediction.voxels[i] != 0;
    a += t;
    b += p;
    both += t && p;
  }
  SegmentationScores s;
  if (a == 0 && b == 0) {
    s.dice = s.iou = s.nsd = 1.0;
    s.hd95 = 0.0;
    return s;
  }
  s.dice = 2.0 * static_cast<double>(both) / static_cast<double>(a + b);
  s.iou = static_cast<double>(both) / static_cast<double>(a + b - both);
  if (a == 0 || b == 0) {
    s.hd95 = std::numeric_limits<double>::quiet_NaN();
    s.nsd = 0.0;
    return s;
  }
  const auto t_to_p = surface_distances(truth, prediction);
  const auto p_to_t = surface_distances(prediction, truth);
  s.hd95 = std::max(percentile(t_to_p, 95.0), percentile(p_to_t, 95.0));
  const auto within = [&](const std::vector<double>& d) {
    return static_cast<double>(
        std::count_if(d.begin(), d.end(), [&](double x) { return x <= nsd_tolerance_mm; }));
  };
  s.nsd = (within(t_to_p) + within(p_to_t)) / static_cast<double>(t_to_p.size() + p_to_t.size());
  return s;
}

}  // namespace unibiomed::metrics
