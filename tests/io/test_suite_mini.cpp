// Tests for the embedded suite "mini" (datasets/suite_mini.h): two builds are byte-identical, the
// VTAB-1k txt layout (line counts, train800val200 = train800 + val200, label ranges, every class
// present, balance), petl_task.json, the image formats, a visible label signal in the rendered
// tasks, and the disjointness of the upstream (pretraining) data from every downstream split.
// The suite is built once per test binary (about ten seconds); tests skip when Debian's
// dataset-fashion-mnist is not installed.
#include <stb_image.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "datasets/suite_mini.h"

namespace fs = std::filesystem;
using namespace petl::data;

namespace {

const std::vector<std::string> kSplits = {"train800", "val200", "train800val200", "test"};
constexpr int kTestSize = 1000;

bool fashion_available() {
  const std::string dir = SuiteOptions{}.fashion_mnist_dir;
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    if (!fs::exists(dir + "/" + f)) return false;
  return true;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct Entry {
  std::string rel_path;
  int label = -1;
};
std::vector<Entry> read_list(const fs::path& path) {
  std::vector<Entry> out;
  for (const auto& line : read_lines(path)) {
    const auto space = line.find(' ');
    out.push_back({line.substr(0, space), std::stoi(line.substr(space + 1))});
  }
  return out;
}

// Decoded pixels (forced to `channels`), empty when the file does not decode.
std::string decode_pixels(const fs::path& path, int channels, int* w = nullptr, int* h = nullptr) {
  int width = 0, height = 0, comp = 0;
  unsigned char* data = stbi_load(path.string().c_str(), &width, &height, &comp, channels);
  if (!data) return {};
  std::string pixels(reinterpret_cast<const char*>(data), size_t(width) * height * channels);
  stbi_image_free(data);
  if (w) *w = width;
  if (h) *h = height;
  return pixels;
}

std::string pixels_of(const Image8& img) {
  return {reinterpret_cast<const char*>(img.pixels.data()), img.pixels.size()};
}

// Every regular file under root, as sorted relative paths.
std::vector<std::string> tree(const fs::path& root) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), root).generic_string());
  std::sort(files.begin(), files.end());
  return files;
}

// The gzip idx file, decompressed (the test's own reader, independent of the suite's).
std::string gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  std::string out;
  if (!f) return out;
  char buf[1 << 16];
  for (int n; (n = gzread(f, buf, sizeof(buf))) > 0;) out.append(buf, size_t(n));
  gzclose(f);
  return out;
}

class SuiteMiniTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fashion_available()) return;
    root_ = fs::temp_directory_path() / ("petl_test_suite_mini_" + std::to_string(getpid()));
    fs::remove_all(root_);
    SuiteOptions opts;
    opts.test_size = kTestSize;
    opts.progress = false;
    const auto t0 = std::chrono::steady_clock::now();
    build_mini_suite((root_ / "a").string(), opts);
    build_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[   suite  ] mini suite (5 tasks, test_size %d) built in %.2f s\n", kTestSize, build_seconds_);
  }
  static void TearDownTestSuite() {
    if (!root_.empty()) fs::remove_all(root_);
  }
  void SetUp() override {
    if (!fashion_available())
      GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed under " << SuiteOptions{}.fashion_mnist_dir;
  }
  static fs::path suite() { return root_ / "a"; }

  static fs::path root_;
  static double build_seconds_;
};
fs::path SuiteMiniTest::root_;
double SuiteMiniTest::build_seconds_ = 0;

TEST_F(SuiteMiniTest, TwoBuildsAreByteIdentical) {
  SuiteOptions opts;
  opts.test_size = kTestSize;
  opts.progress = false;
  build_mini_suite((root_ / "b").string(), opts);
  const auto files_a = tree(root_ / "a"), files_b = tree(root_ / "b");
  ASSERT_EQ(files_a, files_b);
  // 5 tasks × (4 lists + petl_task.json + 2000 images) + SUITE.md
  EXPECT_EQ(files_a.size(), 5u * (4 + 1 + 800 + 200 + kTestSize) + 1);
  int lists = 0, images = 0;
  for (const auto& f : files_a) {
    const std::string a = read_file(root_ / "a" / f), b = read_file(root_ / "b" / f);
    ASSERT_EQ(a.size(), b.size()) << f;
    ASSERT_TRUE(a == b) << f << " differs between two builds";
    lists += f.size() > 4 && f.compare(f.size() - 4, 4, ".txt") == 0;
    images += f.size() > 4 && f.compare(f.size() - 4, 4, ".png") == 0;
  }
  EXPECT_EQ(lists, 20);
  EXPECT_EQ(images, 5 * (1000 + kTestSize));
}

TEST_F(SuiteMiniTest, TaskTableAndMetadata) {
  const auto& tasks = mini_suite_tasks();
  ASSERT_GE(tasks.size(), 5u);
  const std::vector<std::pair<std::string, int>> expected = {
      {"fashion_mnist", 10}, {"sprites_loc", 8}, {"sprites_ori", 8}, {"objects_count", 8}, {"objects_dist", 6}};
  ASSERT_EQ(tasks.size(), expected.size());
  const std::string readme = read_file(suite() / "SUITE.md");
  for (size_t t = 0; t < tasks.size(); ++t) {
    EXPECT_EQ(tasks[t].name, expected[t].first);
    EXPECT_EQ(tasks[t].num_classes, expected[t].second);
    EXPECT_FALSE(tasks[t].description.empty());
    EXPECT_NE(readme.find(tasks[t].name), std::string::npos) << "SUITE.md omits " << tasks[t].name;
    const auto meta = nlohmann::json::parse(read_file(suite() / tasks[t].name / "petl_task.json"));
    EXPECT_EQ(meta.at("num_classes").get<int>(), tasks[t].num_classes);
    EXPECT_EQ(meta.at("description").get<std::string>(), tasks[t].description);
    EXPECT_EQ(meta.at("suite").get<std::string>(), "mini");
    EXPECT_EQ(meta.at("version").get<int>(), 1);
  }
}

TEST_F(SuiteMiniTest, ListsFollowTheVtabTxtLayout) {
  const std::regex line_re(R"(images/(train800|val200|test)/(\d{6})\.png (\d+))");
  for (const auto& task : mini_suite_tasks()) {
    const fs::path dir = suite() / task.name;
    const auto train = read_lines(dir / "train800.txt"), val = read_lines(dir / "val200.txt"),
               trainval = read_lines(dir / "train800val200.txt"), test = read_lines(dir / "test.txt");
    EXPECT_EQ(train.size(), 800u) << task.name;
    EXPECT_EQ(val.size(), 200u) << task.name;
    EXPECT_EQ(test.size(), size_t(kTestSize)) << task.name;
    std::vector<std::string> joined = train;
    joined.insert(joined.end(), val.begin(), val.end());
    EXPECT_EQ(trainval, joined) << task.name << ": train800val200 != train800 + val200";
    EXPECT_EQ(read_file(dir / "train800val200.txt"), read_file(dir / "train800.txt") + read_file(dir / "val200.txt"));
    for (const std::string split : {"train800", "val200", "test"}) {
      const auto lines = read_lines(dir / (split + ".txt"));
      for (size_t i = 0; i < lines.size(); ++i) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(lines[i], m, line_re))
            << task.name << "/" << split << ".txt line " << i + 1 << ": " << lines[i];
        EXPECT_EQ(m[1].str(), split);
        EXPECT_EQ(std::stoi(m[2].str()), int(i));
        const fs::path image = dir / lines[i].substr(0, lines[i].find(' '));
        ASSERT_TRUE(fs::is_regular_file(image)) << image;
      }
    }
  }
}

TEST_F(SuiteMiniTest, LabelsAreInRangeBalancedAndEveryClassIsPresent) {
  for (const auto& task : mini_suite_tasks()) {
    for (const auto& split : kSplits) {
      std::map<int, int> counts;
      for (const auto& e : read_list(suite() / task.name / (split + ".txt"))) {
        ASSERT_GE(e.label, 0) << task.name << "/" << split;
        ASSERT_LT(e.label, task.num_classes) << task.name << "/" << split;
        ++counts[e.label];
      }
      if (split == "train800val200" || split == "test") {
        EXPECT_EQ(int(counts.size()), task.num_classes) << task.name << "/" << split << ": some class is missing";
      }
      int lo = 1 << 30, hi = 0, n = 0;
      for (const auto& [label, count] : counts) {
        lo = std::min(lo, count);
        hi = std::max(hi, count);
        n += count;
      }
      if (task.name == "fashion_mnist") {
        // A random draw from a balanced source: within ±40% of the mean for 1000 images (the
        // suite's draw has 87..122 per class in train800val200 and 82..111 in test).
        if (split == "train800val200" || split == "test") {
          const double mean = double(n) / task.num_classes;
          EXPECT_GT(lo, 0.6 * mean) << split;
          EXPECT_LT(hi, 1.4 * mean) << split;
        }
      } else if (split != "train800val200") {  // balanced by construction
        EXPECT_LE(hi - lo, 1) << task.name << "/" << split;
      }
    }
  }
}

TEST_F(SuiteMiniTest, ImagesHaveTheDocumentedFormat) {
  for (const auto& task : mini_suite_tasks()) {
    const bool fashion = task.name == "fashion_mnist";
    for (const std::string split : {"train800", "val200", "test"}) {
      const auto list = read_list(suite() / task.name / (split + ".txt"));
      for (size_t i = 0; i < list.size(); i += 97) {
        const fs::path path = suite() / task.name / list[i].rel_path;
        int w = 0, h = 0, comp = 0;
        ASSERT_TRUE(stbi_info(path.string().c_str(), &w, &h, &comp)) << path;
        EXPECT_EQ(w, fashion ? 28 : 64) << path;
        EXPECT_EQ(h, fashion ? 28 : 64) << path;
        EXPECT_EQ(comp, fashion ? 1 : 3) << path;
      }
    }
  }
}

// The fashion_mnist images and labels are the source's, unchanged, at the listed indices.
TEST_F(SuiteMiniTest, FashionImagesAreTheSourceImages) {
  const std::string dir = SuiteOptions{}.fashion_mnist_dir;
  for (const auto& [split, prefix] :
       std::vector<std::pair<std::string, std::string>>{{"train800", "train"}, {"val200", "train"}, {"test", "t10k"}}) {
    const std::string images = gunzip(dir + "/" + prefix + "-images-idx3-ubyte.gz");
    const std::string labels = gunzip(dir + "/" + prefix + "-labels-idx1-ubyte.gz");
    const auto indices = mini_fashion_indices(split, kTestSize);
    const auto list = read_list(suite() / "fashion_mnist" / (split + ".txt"));
    ASSERT_EQ(indices.size(), list.size()) << split;
    for (size_t i = 0; i < list.size(); i += 37) {
      const int src = indices[i];
      EXPECT_EQ(list[i].label, int(uint8_t(labels[8 + size_t(src)]))) << split << " " << i;
      EXPECT_EQ(decode_pixels(suite() / "fashion_mnist" / list[i].rel_path, 1),
                images.substr(16 + size_t(src) * 784, 784))
          << split << " " << i;
    }
  }
  EXPECT_THROW(mini_fashion_indices("train"), petl::Error);
}

// Rendered labels are visible in the pixels: the sprite's centroid moves right with the x bin,
// the count task's object area grows with the count, and the nearest object's lowest row climbs
// with its depth bin.
TEST_F(SuiteMiniTest, RenderedLabelsAreVisible) {
  auto class_means = [&](const std::string& task, int num_classes, auto&& feature) {
    std::vector<double> sum(num_classes, 0.0);
    std::vector<int> n(num_classes, 0);
    for (const auto& e : read_list(suite() / task / "train800val200.txt")) {
      const std::string px = decode_pixels(suite() / task / e.rel_path, 3);
      EXPECT_EQ(px.size(), 64u * 64 * 3);
      sum[e.label] += feature(px);
      ++n[e.label];
    }
    for (int c = 0; c < num_classes; ++c) sum[c] /= n[c];
    return sum;
  };
  // Pixels that differ clearly from the median of their row (the floor): objects and shadows.
  auto object_mask = [](const std::string& px) {
    std::vector<uint8_t> mask(64 * 64, 0);
    for (int y = 0; y < 64; ++y) {
      std::vector<int> row(64);
      for (int x = 0; x < 64; ++x) {
        const auto* p = reinterpret_cast<const uint8_t*>(&px[(y * 64 + x) * 3]);
        row[x] = p[0] + p[1] + p[2];
      }
      std::vector<int> sorted = row;
      std::nth_element(sorted.begin(), sorted.begin() + 32, sorted.end());
      for (int x = 0; x < 64; ++x) mask[y * 64 + x] = std::abs(row[x] - sorted[32]) > 60;
    }
    return mask;
  };
  const auto centroid_x = class_means("sprites_loc", 8, [](const std::string& px) {
    double sx = 0, s = 0;
    for (int i = 0; i < 64 * 64; ++i) {
      const double v = uint8_t(px[size_t(i) * 3]);
      sx += v * (i % 64);
      s += v;
    }
    return sx / s;
  });
  const auto area = class_means("objects_count", 8, [&](const std::string& px) {
    const auto mask = object_mask(px);
    return double(std::count(mask.begin(), mask.end(), 1));
  });
  const auto lowest_row = class_means("objects_dist", 6, [&](const std::string& px) {
    const auto mask = object_mask(px);
    for (int y = 63; y >= 0; --y)
      for (int x = 0; x < 64; ++x)
        if (mask[y * 64 + x]) return double(y);
    return 0.0;
  });
  for (int c = 1; c < 8; ++c) EXPECT_GT(centroid_x[c], centroid_x[c - 1] + 2.0) << "x bin " << c;
  for (int c = 1; c < 8; ++c) EXPECT_GT(area[c], area[c - 1]) << "count label " << c;
  for (int c = 1; c < 6; ++c) EXPECT_LT(lowest_row[c], lowest_row[c - 1] - 2.0) << "depth bin " << c;
}

// ------------------------------------------------------------------ upstream data

TEST(SuiteMiniUpstream, AttributeTables) {
  EXPECT_EQ(upstream_generators(), (std::vector<std::string>{"fashion", "sprites", "objects"}));
  EXPECT_EQ(attribute_names("fashion"), (std::vector<std::string>{"class"}));
  EXPECT_EQ(attribute_names("sprites"),
            (std::vector<std::string>{"shape", "x_bin", "y_bin", "orientation_bin", "scale_bin"}));
  EXPECT_EQ(attribute_names("objects"),
            (std::vector<std::string>{"count", "nearest_distance_bin", "largest_colour", "largest_shape"}));
  EXPECT_EQ(attribute_num_classes("fashion", "class"), 10);
  EXPECT_EQ(attribute_num_classes("sprites", "x_bin"), 8);
  EXPECT_EQ(attribute_num_classes("sprites", "scale_bin"), 4);
  EXPECT_EQ(attribute_num_classes("objects", "count"), 10);
  EXPECT_EQ(attribute_num_classes("objects", "nearest_distance_bin"), 6);
  EXPECT_THROW(attribute_names("imagenet"), petl::Error);
  EXPECT_THROW(attribute_num_classes("sprites", "colour"), petl::Error);
  EXPECT_THROW(upstream_sample("imagenet", 0), petl::Error);
  EXPECT_THROW(upstream_sample("sprites", uint64_t(1) << 48), petl::Error);
}

TEST(SuiteMiniUpstream, ScenesAreDeterministicAndCoverEveryAttributeClass) {
  for (const std::string generator : {"sprites", "objects"}) {
    const auto& attrs = upstream_attributes(generator);
    std::map<std::string, std::set<int>> seen;
    std::unordered_set<std::string> distinct;
    const int n = generator == "sprites" ? 2000 : 600;
    for (int i = 0; i < n; ++i) {
      const SceneSample s = upstream_sample(generator, uint64_t(i));
      ASSERT_EQ(s.image.width, 64);
      ASSERT_EQ(s.image.height, 64);
      ASSERT_EQ(s.image.channels, 3);
      ASSERT_EQ(s.image.pixels.size(), 64u * 64 * 3);
      ASSERT_EQ(s.attributes.size(), attrs.size());
      for (const auto& a : attrs) {
        ASSERT_TRUE(s.attributes.count(a.name)) << generator << " lacks " << a.name;
        const int v = s.attributes.at(a.name);
        ASSERT_GE(v, 0);
        ASSERT_LT(v, a.num_classes) << generator << " " << a.name;
        seen[a.name].insert(v);
      }
      distinct.insert(pixels_of(s.image));
    }
    for (const auto& a : attrs) EXPECT_EQ(int(seen[a.name].size()), a.num_classes) << generator << " " << a.name;
    EXPECT_GT(distinct.size(), size_t(n * 9 / 10)) << generator;
    for (uint64_t i : {0, 17, 123456789}) {
      const SceneSample a = upstream_sample(generator, i), b = upstream_sample(generator, i);
      EXPECT_EQ(a.image.pixels, b.image.pixels);
      EXPECT_EQ(a.attributes, b.attributes);
    }
  }
}

TEST_F(SuiteMiniTest, UpstreamFashionNeverUsesASuiteImage) {
  std::set<int> used;
  for (const std::string split : {"train800", "val200"})
    for (int i : mini_fashion_indices(split)) used.insert(i);
  ASSERT_EQ(used.size(), 1000u);
  std::vector<char> hit(60000, 0);
  for (int i = 0; i < kUpstreamFashionDistinct; ++i) {
    const int src = upstream_fashion_index(uint64_t(i));
    ASSERT_GE(src, 0);
    ASSERT_LT(src, 60000);
    ASSERT_EQ(used.count(src), 0u) << "upstream fashion " << i << " is suite image " << src;
    ASSERT_FALSE(hit[src]) << "upstream fashion index " << src << " repeats";
    hit[src] = 1;
  }
  EXPECT_EQ(upstream_fashion_index(kUpstreamFashionDistinct + 5), upstream_fashion_index(5));
  // The sample itself: RGB with three equal channels, labelled with the source class.
  const std::string labels = gunzip(SuiteOptions{}.fashion_mnist_dir + "/train-labels-idx1-ubyte.gz");
  for (uint64_t i : {0, 1, 58999}) {
    const SceneSample s = upstream_sample("fashion", i);
    ASSERT_EQ(s.image.width, 28);
    ASSERT_EQ(s.image.height, 28);
    ASSERT_EQ(s.image.channels, 3);
    for (size_t p = 0; p < 28 * 28; ++p) {
      ASSERT_EQ(s.image.pixels[3 * p], s.image.pixels[3 * p + 1]);
      ASSERT_EQ(s.image.pixels[3 * p], s.image.pixels[3 * p + 2]);
    }
    EXPECT_EQ(s.attributes,
              (std::map<std::string, int>{{"class", int(uint8_t(labels[8 + size_t(upstream_fashion_index(i))]))}}));
  }
}

TEST_F(SuiteMiniTest, UpstreamScenesAreNotDownstreamImages) {
  const std::map<std::string, std::vector<std::string>> downstream = {{"sprites", {"sprites_loc", "sprites_ori"}},
                                                                      {"objects", {"objects_count", "objects_dist"}}};
  for (const auto& [generator, tasks] : downstream) {
    std::unordered_set<std::string> images;
    for (const auto& task : tasks)
      for (const std::string split : {"train800val200", "test"})
        for (const auto& e : read_list(suite() / task / (split + ".txt"))) {
          std::string px = decode_pixels(suite() / task / e.rel_path, 3);
          ASSERT_FALSE(px.empty()) << task << "/" << e.rel_path;
          images.insert(std::move(px));
        }
    EXPECT_EQ(images.size(), tasks.size() * (1000 + kTestSize)) << "duplicate downstream images";
    for (uint64_t i = 0; i < 300; ++i)
      ASSERT_EQ(images.count(pixels_of(upstream_sample(generator, i).image)), 0u)
          << "upstream " << generator << " " << i << " equals a downstream image";
  }
}

TEST(SuiteMiniOptions, RejectsBadOptions) {
  const fs::path out = fs::temp_directory_path() / ("petl_test_suite_mini_bad_" + std::to_string(getpid()));
  SuiteOptions opts;
  opts.progress = false;
  opts.test_size = 999;
  EXPECT_THROW(build_mini_suite(out.string(), opts), petl::Error);
  opts.test_size = 10001;
  EXPECT_THROW(build_mini_suite(out.string(), opts), petl::Error);
  opts.test_size = 1000;
  opts.fashion_mnist_dir = "/nonexistent/fashion-mnist";
  try {
    build_mini_suite(out.string(), opts);
    ADD_FAILURE() << "expected petl::Error for a missing Fashion-MNIST directory";
  } catch (const petl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/fashion-mnist"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out / "fashion_mnist" / "train800.txt"));
  fs::remove_all(out);
}

}  // namespace
