// Model inputs: Pillow-exact bicubic resizing, InternVL tiling, normalisation, against the
// Python reference's golden files.
#include <gtest/gtest.h>

#include "test_support.h"
#include "unibiomed/model_input.h"
#include "unibiomed/preprocess.h"

namespace unibiomed {
namespace {

using test::number;

// Expands the golden's stored bytes (1 or 3 per pixel) to RGB.
Image8 golden_image(const std::vector<unsigned char>& bytes, std::size_t offset, int w, int h,
                    int channels) {
  Image8 image{w, h, std::vector<std::uint8_t>(static_cast<std::size_t>(w * h) * 3)};
  for (std::size_t p = 0; p < static_cast<std::size_t>(w * h); ++p) {
    for (std::size_t c = 0; c < 3; ++c) {
      image.rgb[p * 3 + c] =
          bytes[offset + p * static_cast<std::size_t>(channels) + (channels == 3 ? c : 0)];
    }
  }
  return image;
}

TEST(ResizeBicubic, EqualsPillowOnEveryGoldenCase) {
  const auto cases = test::read_tsv(test::golden_dir() / "resize_cases.tsv");
  ASSERT_GE(cases.size(), 10u);
  for (const auto& row : cases) {
    const int in_w = static_cast<int>(number(row, "inW"));
    const int in_h = static_cast<int>(number(row, "inH"));
    const int out_w = static_cast<int>(number(row, "outW"));
    const int out_h = static_cast<int>(number(row, "outH"));
    const int channels = static_cast<int>(number(row, "channels"));
    const auto bytes = test::read_bytes(test::golden_dir() / row.at("file"));
    const std::size_t in_bytes = static_cast<std::size_t>(in_w * in_h * channels);
    ASSERT_EQ(bytes.size(), in_bytes + static_cast<std::size_t>(out_w * out_h * channels))
        << row.at("file");
    const Image8 input = golden_image(bytes, 0, in_w, in_h, channels);
    const Image8 expected = golden_image(bytes, in_bytes, out_w, out_h, channels);
    const Image8 actual = resize_bicubic(input, out_w, out_h);
    ASSERT_EQ(actual.width, out_w);
    ASSERT_EQ(actual.height, out_h);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < expected.rgb.size(); ++i)
      differing += actual.rgb[i] != expected.rgb[i];
    EXPECT_EQ(differing, 0u) << row.at("file");
  }
}

TEST(Tiling, ChoosesTheReferenceGridForEveryGoldenSize) {
  const auto rows = test::read_tsv(test::golden_dir() / "tiling_table.tsv");
  ASSERT_GT(rows.size(), 1000u);
  for (const auto& row : rows) {
    TilingOptions options;
    options.max_tiles = static_cast<int>(number(row, "max_num"));
    const int w = static_cast<int>(number(row, "width"));
    const int h = static_cast<int>(number(row, "height"));
    const TileGrid grid = closest_tile_grid(w, h, options);
    EXPECT_EQ(grid.cols, static_cast<int>(number(row, "cols")))
        << w << "x" << h << " max " << options.max_tiles;
    EXPECT_EQ(grid.rows, static_cast<int>(number(row, "rows")))
        << w << "x" << h << " max " << options.max_tiles;
  }
}

TEST(Tiling, TileCountsOfTheModelCard) {
  const auto image = [](int w, int h) {
    return Image8{w, h, std::vector<std::uint8_t>(static_cast<std::size_t>(w * h) * 3, 100)};
  };
  // 1024x1024 -> 3x3 tiles + thumbnail = 10 tiles (2560 image tokens); 512x512 -> 1 tile.
  EXPECT_EQ(dynamic_tiles(image(1024, 1024)).size(), 10u);
  EXPECT_EQ(dynamic_tiles(image(512, 512)).size(), 1u);
  const auto tiles = dynamic_tiles(image(896, 448));
  ASSERT_EQ(tiles.size(), 3u);  // 2x1 + thumbnail
  for (const auto& tile : tiles) {
    EXPECT_EQ(tile.width, 448);
    EXPECT_EQ(tile.height, 448);
  }
}

TEST(Tiling, TilesAreCutRowByRowFromTheResizedImage) {
  // A 2x2-grid picture whose quadrants have distinct colours: each tile is one quadrant.
  const int w = 896, h = 896;
  Image8 image{w, h, std::vector<std::uint8_t>(static_cast<std::size_t>(w * h) * 3)};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const auto quadrant = static_cast<std::uint8_t>((y >= h / 2) * 2 + (x >= w / 2));
      image.rgb[(static_cast<std::size_t>(y) * w + static_cast<std::size_t>(x)) * 3] =
          static_cast<std::uint8_t>(quadrant * 60);
    }
  }
  const auto tiles = dynamic_tiles(image);
  ASSERT_EQ(tiles.size(), 5u);
  for (int q = 0; q < 4; ++q) EXPECT_EQ(tiles[static_cast<std::size_t>(q)].at(224, 224, 0), q * 60);
}

TEST(Normalize, EqualsTheReferenceForEveryByteAndChannel) {
  const auto rows = test::read_tsv(test::golden_dir() / "normalize_cases.tsv");
  ASSERT_EQ(rows.size(), 768u);
  Image8 image{256, 1, std::vector<std::uint8_t>(256 * 3)};
  for (int v = 0; v < 256; ++v) {
    for (int c = 0; c < 3; ++c)
      image.rgb[static_cast<std::size_t>(v * 3 + c)] = static_cast<std::uint8_t>(v);
  }
  const ModelImage normalized = normalize_imagenet(image);
  for (const auto& row : rows) {
    const auto c = static_cast<std::size_t>(number(row, "channel"));
    const auto v = static_cast<std::size_t>(number(row, "u8"));
    EXPECT_EQ(normalized.data[c * 256 + v], static_cast<float>(number(row, "normalized_f32")))
        << "channel " << c << " byte " << v;
  }
}

TEST(ModelInput, SamInputAndVisionBatchHaveTheModelShapes) {
  Image8 image{181, 217, std::vector<std::uint8_t>(181 * 217 * 3, 128)};
  const ModelImage sam = sam_input(image);
  EXPECT_EQ(sam.width, 1024);
  EXPECT_EQ(sam.height, 1024);
  const torch::Tensor tensor = to_tensor(sam);
  EXPECT_EQ(tensor.sizes(), (std::vector<int64_t>{3, 1024, 1024}));
  EXPECT_FLOAT_EQ(tensor[0][5][5].item<float>(), (128.0f / 255.0f - 0.485f) / 0.229f);

  const auto tiles = dynamic_tiles(image);  // 181x217 -> 3x4 grid + thumbnail
  EXPECT_EQ(tiles.size(), 13u);
  EXPECT_EQ(vision_batch(tiles).sizes(), (std::vector<int64_t>{13, 3, 448, 448}));
}

}  // namespace
}  // namespace unibiomed
