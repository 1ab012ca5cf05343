// Tests of datasets/image.{h,cpp}: stb decoding vs PIL's Image.open().convert("RGB"), the
// Pillow-exact bicubic resize vs Image.resize(..., Image.BICUBIC), normalisation vs torchvision's
// ToTensor + Normalize, and write_png. References come from tests/io/py/pil_reference.py run
// with Debian's python3-pil on real Fashion-MNIST pictures (plain, tiled, colourised, odd sizes).
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "datasets/image.h"
#include "tests/ci_skip.h"

namespace fs = std::filesystem;
using petl::data::Image8;

namespace {

constexpr const char* kFashionMnist = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
// JPEGs are decoded with libjpeg-turbo's defaults, as Pillow does: bit-identical to PIL (4:2:0,
// 4:4:4, grey, progressive). (Debian's stb decoder, used before, differed by up to 3/255.)
constexpr int kJpegMaxAbsDiff = 0;
constexpr double kJpegMeanAbsDiff = 0.0;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

Image8 raw_image(const std::string& path, int w, int h, int c) {
  Image8 img;
  img.width = w;
  img.height = h;
  img.channels = c;
  img.pixels = read_bytes(path);
  if (img.pixels.size() != size_t(w) * h * c) throw std::runtime_error("bad raw size: " + path);
  return img;
}

// Max |a - b| over two images of equal shape (256 when the shapes differ).
int max_abs_diff(const Image8& a, const Image8& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels || a.pixels.size() != b.pixels.size())
    return 256;
  int m = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return m;
}

double mean_abs_diff(const Image8& a, const Image8& b) {
  double s = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return a.pixels.empty() ? 0.0 : s / double(a.pixels.size());
}

// First n pictures of the Fashion-MNIST idx3 file (28x28 grey each).
std::vector<Image8> read_fashion_mnist(const char* path, int n) {
  gzFile f = gzopen(path, "rb");
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  unsigned char header[16];
  std::vector<Image8> out;
  if (gzread(f, header, 16) == 16) {
    for (int i = 0; i < n; ++i) {
      Image8 img;
      img.width = img.height = 28;
      img.channels = 1;
      img.pixels.resize(28 * 28);
      if (gzread(f, img.pixels.data(), 28 * 28) != 28 * 28) break;
      out.push_back(std::move(img));
    }
  }
  gzclose(f);
  if (int(out.size()) != n) throw std::runtime_error(std::string("short read from ") + path);
  return out;
}

class PilReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kFashionMnist)) {
      skip_reason_ = std::string("Fashion-MNIST not found at ") + kFashionMnist;
      return;
    }
    char tmpl[] = "/tmp/petl_test_image_XXXXXX";
    if (!mkdtemp(tmpl)) {
      setup_error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    try {
      // Files written by write_png; the script decodes them with PIL like every other file.
      fm_ = read_fashion_mnist(kFashionMnist, 8);
      petl::data::write_png(dir_ + "/cpp_fm_L.png", fm_[5]);
      petl::data::write_png(dir_ + "/cpp_fm_rgb_45x31.png", cpp_colour_image());
    } catch (const std::exception& e) {
      setup_error_ = e.what();
      return;
    }
    const std::string cmd = std::string(PETL_PYTHON) + " " + PETL_TEST_DIR + "/io/py/pil_reference.py --fmnist " +
                            kFashionMnist + " --out " + dir_;
    if (std::system(cmd.c_str()) != 0) {
      setup_error_ = "reference script failed: " + cmd;
      return;
    }
    std::ifstream mf(dir_ + "/manifest.json");
    manifest_ = nlohmann::json::parse(mf);
  }

  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void SetUp() override {
    if (!skip_reason_.empty()) PETL_SKIP_UNLESS_CI(skip_reason_);
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  // A 45x31 RGB image built from three Fashion-MNIST pictures (one per channel, shifted).
  static Image8 cpp_colour_image() {
    Image8 img;
    img.width = 45;
    img.height = 31;
    img.channels = 3;
    img.pixels.resize(45 * 31 * 3);
    for (int y = 0; y < 31; ++y)
      for (int x = 0; x < 45; ++x)
        for (int c = 0; c < 3; ++c)
          img.pixels[(y * 45 + x) * 3 + c] = fm_[c + 1].pixels[(y % 28) * 28 + (x + 7 * c) % 28];
    return img;
  }

  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static Image8 pil_decoded(const nlohmann::json& e) {
    return raw_image(path(e["decoded"]), e["width"], e["height"], 3);
  }

  static std::string dir_, skip_reason_, setup_error_;
  static nlohmann::json manifest_;
  static std::vector<Image8> fm_;
};
std::string PilReference::dir_, PilReference::skip_reason_, PilReference::setup_error_;
nlohmann::json PilReference::manifest_;
std::vector<Image8> PilReference::fm_;

TEST_F(PilReference, PngDecodeEqualsPilConvertRgb) {
  int files = 0, worst = 0;
  for (const auto& e : manifest_["images"]) {
    if (e["format"] != "PNG") continue;
    const Image8 ours = petl::data::decode_image_file(path(e["file"]));
    const int d = max_abs_diff(ours, pil_decoded(e));
    EXPECT_EQ(d, 0) << e["file"] << " (PIL mode " << e["mode"] << ")";
    worst = std::max(worst, d);
    ++files;
  }
  EXPECT_GE(files, 15);
  std::printf(
      "[ PIL ] PNG decode: %d files (L, LA, RGB, RGBA, P, P+tRNS, 4-bit P, 1-bit, 16-bit grey),"
      " max abs diff %d\n",
      files, worst);
}

TEST_F(PilReference, JpegDecodeEqualsPil) {
  int files = 0, worst = 0;
  double worst_mean = 0;
  int worst_resized = 0;
  for (const auto& e : manifest_["images"]) {
    if (e["format"] != "JPEG") continue;
    const Image8 ours = petl::data::decode_image_file(path(e["file"]));
    const Image8 ref = pil_decoded(e);
    const int d = max_abs_diff(ours, ref);
    const double m = mean_abs_diff(ours, ref);
    std::printf("[ PIL ] JPEG decode %-22s max abs diff %d, mean %.4f\n", e["file"].get<std::string>().c_str(), d, m);
    EXPECT_LE(d, kJpegMaxAbsDiff) << e["file"];
    EXPECT_LE(m, kJpegMeanAbsDiff) << e["file"];
    worst = std::max(worst, d);
    worst_mean = std::max(worst_mean, m);
    ++files;
    for (const auto& r : e["resizes"]) {  // the difference left after decode + resize
      if (r["channels"] != 3) continue;
      const int dr = max_abs_diff(petl::data::resize_bicubic_pil(ours, r["w"], r["h"]),
                                  raw_image(path(r["file"]), r["w"], r["h"], 3));
      EXPECT_LE(dr, kJpegMaxAbsDiff) << r["file"];
      worst_resized = std::max(worst_resized, dr);
    }
  }
  EXPECT_GE(files, 5);
  std::printf(
      "[ PIL ] JPEG decode: %d files, max abs diff %d, worst mean %.4f; after resize "
      "max abs diff %d\n",
      files, worst, worst_mean, worst_resized);
}

// The resize of the same decoded input (PIL's own decode) must equal PIL's resize bit for bit.
TEST_F(PilReference, ResizeBicubicBitExact) {
  int cases = 0, worst = 0;
  for (const auto& e : manifest_["images"]) {
    const Image8 rgb = pil_decoded(e);
    Image8 grey;  // PIL's L→RGB replicates, so channel 0 is the L image
    grey.width = rgb.width;
    grey.height = rgb.height;
    grey.channels = 1;
    for (size_t i = 0; i < rgb.pixels.size(); i += 3) grey.pixels.push_back(rgb.pixels[i]);
    for (const auto& r : e["resizes"]) {
      const int w = r["w"], h = r["h"], c = r["channels"];
      const Image8 ours = petl::data::resize_bicubic_pil(c == 3 ? rgb : grey, w, h);
      const int d = max_abs_diff(ours, raw_image(path(r["file"]), w, h, c));
      EXPECT_EQ(d, 0) << e["file"] << " " << rgb.width << "x" << rgb.height << " -> " << w << "x" << h << " (" << c
                      << " channel(s))";
      worst = std::max(worst, d);
      ++cases;
    }
  }
  EXPECT_GE(cases, 40);
  std::printf(
      "[ PIL ] bicubic resize: %d cases (up, down, mixed, one axis, same size), "
      "max abs diff %d\n",
      cases, worst);
}

// decode + resize end to end on PNGs (where decoding is exact) gives PIL's pixels.
TEST_F(PilReference, PngDecodeThenResizeEqualsPil) {
  int worst = 0;
  for (const auto& e : manifest_["images"]) {
    if (e["format"] != "PNG") continue;
    const Image8 ours = petl::data::decode_image_file(path(e["file"]));
    for (const auto& r : e["resizes"]) {
      if (r["channels"] != 3) continue;
      const int d = max_abs_diff(petl::data::resize_bicubic_pil(ours, r["w"], r["h"]),
                                 raw_image(path(r["file"]), r["w"], r["h"], 3));
      EXPECT_EQ(d, 0) << r["file"];
      worst = std::max(worst, d);
    }
  }
  std::printf("[ PIL ] PNG decode + resize end to end: max abs diff %d\n", worst);
}

TEST_F(PilReference, NormalisationMatchesTorchvision) {
  int cases = 0;
  for (const auto& e : manifest_["images"]) {
    for (const auto& n : e["norms"]) {
      const int s = n["size"];
      const Image8 img = petl::data::resize_bicubic_pil(pil_decoded(e), s, s);
      std::vector<float> ours(size_t(3) * s * s);
      petl::data::to_normalised_chw(img, petl::data::parse_normalisation(n["norm"]), ours.data());
      const std::vector<uint8_t> bytes = read_bytes(path(n["file"]));
      ASSERT_EQ(bytes.size(), ours.size() * sizeof(float));
      std::vector<float> ref(ours.size());
      std::memcpy(ref.data(), bytes.data(), bytes.size());
      float worst = 0;
      for (size_t i = 0; i < ours.size(); ++i) worst = std::max(worst, std::fabs(ours[i] - ref[i]));
      EXPECT_EQ(worst, 0.0f) << e["file"] << " " << n["norm"] << " (reference by " << n["by"] << ")";
      ++cases;
    }
  }
  EXPECT_EQ(cases, 6);
}

// write_png output read back by PIL equals what was written.
TEST_F(PilReference, WritePngReadByPil) {
  for (const auto& e : manifest_["images"]) {
    const std::string file = e["file"];
    if (file.rfind("cpp_", 0) != 0) continue;
    const Image8 pil = pil_decoded(e);
    if (file == "cpp_fm_L.png") {
      EXPECT_EQ(e["mode"], "L");
      Image8 expected = fm_[5];
      expected.channels = 3;
      expected.pixels.clear();
      for (uint8_t v : fm_[5].pixels) expected.pixels.insert(expected.pixels.end(), 3, v);
      EXPECT_EQ(max_abs_diff(pil, expected), 0);
    } else {
      EXPECT_EQ(e["mode"], "RGB");
      EXPECT_EQ(max_abs_diff(pil, cpp_colour_image()), 0);
    }
  }
}

// ------------------------------------------------------------------ without PIL

Image8 constant_image(int w, int h, int c, uint8_t v) {
  Image8 img;
  img.width = w;
  img.height = h;
  img.channels = c;
  img.pixels.assign(size_t(w) * h * c, v);
  return img;
}

TEST(ImageResize, ConstantStaysConstant) {
  for (auto [w, h] : {std::pair{28, 28}, {37, 53}, {300, 200}, {1, 1}})
    for (auto [ow, oh] : {std::pair{224, 224}, {5, 3}, {1, 1}, {w, 7}}) {
      const Image8 out = petl::data::resize_bicubic_pil(constant_image(w, h, 3, 173), ow, oh);
      ASSERT_EQ(out.width, ow);
      ASSERT_EQ(out.height, oh);
      EXPECT_TRUE(std::all_of(out.pixels.begin(), out.pixels.end(), [](uint8_t v) { return v == 173; }))
          << w << "x" << h << " -> " << ow << "x" << oh;
    }
}

TEST(ImageResize, SameSizeIsACopyAndBadSizesThrow) {
  Image8 img = constant_image(4, 3, 3, 0);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 7);
  EXPECT_EQ(petl::data::resize_bicubic_pil(img, 4, 3).pixels, img.pixels);
  EXPECT_THROW(petl::data::resize_bicubic_pil(img, 0, 3), petl::Error);
  EXPECT_THROW(petl::data::resize_bicubic_pil(Image8{}, 4, 4), petl::Error);
}

TEST(ImageDecode, ErrorsNameThePathAndTheReason) {
  try {
    petl::data::decode_image_file("/nonexistent/dir/img_000123.png");
    FAIL() << "expected petl::Error";
  } catch (const petl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/img_000123.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  const std::string junk = "this is not an image at all";
  try {
    petl::data::decode_image_memory(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "junk.jpg");
    FAIL() << "expected petl::Error";
  } catch (const petl::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("junk.jpg"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot decode"), std::string::npos) << msg;
  }
  EXPECT_THROW(petl::data::decode_image_memory(nullptr, 0, "empty.png"), petl::Error);
}

TEST(ImageDecode, TruncatedPngThrows) {
  char tmpl[] = "/tmp/petl_test_trunc_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, file = dir + "/ok.png";
  Image8 img = constant_image(40, 30, 3, 0);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t((i * 2654435761u) >> 13);
  petl::data::write_png(file, img);
  const std::vector<uint8_t> bytes = read_bytes(file);
  EXPECT_EQ(petl::data::decode_image_memory(bytes.data(), bytes.size(), file).pixels, img.pixels);
  EXPECT_THROW(petl::data::decode_image_memory(bytes.data(), bytes.size() / 2, "half.png"), petl::Error);
  EXPECT_THROW(petl::data::write_png(dir + "/no/such/dir/x.png", img), petl::Error);
  fs::remove_all(dir);
}

TEST(ImageNormalise, ProfilesAndNames) {
  for (auto n :
       {petl::data::Normalisation::imagenet, petl::data::Normalisation::inception, petl::data::Normalisation::none})
    EXPECT_EQ(petl::data::parse_normalisation(petl::data::to_string(n)), n);
  EXPECT_THROW(petl::data::parse_normalisation("imagenet21k"), petl::Error);

  Image8 img = constant_image(2, 1, 3, 0);
  img.pixels = {0, 128, 255, 255, 0, 51};
  std::vector<float> out(6);
  petl::data::to_normalised_chw(img, petl::data::Normalisation::none, out.data());
  EXPECT_EQ(out[0], 0.0f);          // R of pixel 0
  EXPECT_EQ(out[1], 1.0f);          // R of pixel 1
  EXPECT_EQ(out[2], 128 / 255.0f);  // G plane
  EXPECT_EQ(out[5], 51 / 255.0f);   // B plane
  petl::data::to_normalised_chw(img, petl::data::Normalisation::inception, out.data());
  EXPECT_EQ(out[0], -1.0f);
  EXPECT_EQ(out[1], 1.0f);
  petl::data::to_normalised_chw(img, petl::data::Normalisation::imagenet, out.data());
  EXPECT_EQ(out[0], (0.0f - 0.485f) / 0.229f);
  EXPECT_EQ(out[4], (255 / 255.0f - 0.406f) / 0.225f);
  EXPECT_THROW(petl::data::to_normalised_chw(constant_image(2, 2, 1, 0), petl::data::Normalisation::none, out.data()),
               petl::Error);
}

}  // namespace

// Broken JPEGs (a stream cut after its header start, garbage after the SOI marker) are errors
// that name the file; libjpeg's own message is kept.
TEST(ImageDecode, BrokenJpegIsAnErrorNamingTheFile) {
  const uint8_t soi_only[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00};
  try {
    petl::data::decode_image_memory(soi_only, sizeof soi_only, "broken.jpg");
    FAIL() << "expected petl::Error";
  } catch (const petl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.jpg"), std::string::npos) << e.what();
  }
  std::vector<uint8_t> garbage = {0xFF, 0xD8, 0xFF};
  for (int i = 0; i < 200; ++i) garbage.push_back(uint8_t(i * 37));
  EXPECT_THROW(petl::data::decode_image_memory(garbage.data(), garbage.size(), "garbage.jpg"), petl::Error);
}
