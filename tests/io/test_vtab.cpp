// Tests of datasets/vtab.{h,cpp}: task names, aliases and class counts, folder lookup, both list
// formats, every list error (message names the file and line / element), and load_split
// (order, skip_bad, single- vs multi-threaded equality) on tiny task folders in a temp dir.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <numeric>

#include "core/error.h"
#include "core/hashing.h"
#include "datasets/vtab.h"

namespace fs = std::filesystem;
using namespace petl::data;

namespace {

// A fresh directory under /tmp, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/petl_test_vtab_XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// A deterministic textured image (RGB or grey) so resizing actually changes pixels.
Image8 pattern(int w, int h, int channels, int seed) {
  Image8 img;
  img.width = w;
  img.height = h;
  img.channels = channels;
  img.pixels.resize(size_t(w) * h * channels);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(((i + seed * 7919) * 2654435761u) >> 11);
  return img;
}

void write_image(const fs::path& path, int w, int h, int channels, int seed) {
  fs::create_directories(path.parent_path());
  write_png(path.string(), pattern(w, h, channels, seed));
}

// Message of the petl::Error thrown by f ("" when nothing is thrown).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const petl::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Writes <root>/svhn/<file> (10 classes) with the given content and returns read_split's error.
std::string txt_split_error(const std::string& content, const std::string& file = "test.txt") {
  TempDir root;
  write_file(fs::path(root.path()) / "svhn" / "test.txt", "images/test/0.png 1\n");
  write_file(fs::path(root.path()) / "svhn" / file, content);
  const TaskInfo task = find_task(root.path(), "svhn");
  const std::string split = file.substr(0, file.find('.'));
  return error_of([&] { read_split(task, split); });
}

std::string json_split_error(const std::string& content) {
  TempDir root;
  write_file(fs::path(root.path()) / "eurosat" / "test.json", content);
  const TaskInfo task = find_task(root.path(), "eurosat");
  return error_of([&] { read_split(task, "test"); });
}

TEST(VtabNames, TableAndAliases) {
  const auto& names = vtab_task_names();
  ASSERT_EQ(names.size(), 19u);
  EXPECT_EQ(names.front(), "cifar");
  EXPECT_EQ(names[7], "patch_camelyon");  // first specialized task
  EXPECT_EQ(names[11], "clevr_count");    // first structured task
  EXPECT_EQ(names.back(), "smallnorb_ele");
  const std::pair<const char*, int> expected[] = {{"cifar", 100},
                                                  {"caltech101", 102},
                                                  {"dtd", 47},
                                                  {"oxford_flowers102", 102},
                                                  {"oxford_iiit_pet", 37},
                                                  {"svhn", 10},
                                                  {"sun397", 397},
                                                  {"patch_camelyon", 2},
                                                  {"eurosat", 10},
                                                  {"resisc45", 45},
                                                  {"diabetic_retinopathy", 5},
                                                  {"clevr_count", 8},
                                                  {"clevr_dist", 6},
                                                  {"dmlab", 6},
                                                  {"kitti", 4},
                                                  {"dsprites_loc", 16},
                                                  {"dsprites_ori", 16},
                                                  {"smallnorb_azi", 18},
                                                  {"smallnorb_ele", 9}};
  for (const auto& [name, classes] : expected) EXPECT_EQ(known_num_classes(name), classes) << name;
  EXPECT_EQ(known_num_classes("imagenet"), -1);

  for (const char* a : {"cifar", "cifar100", "cifar_100", "cifar-100", "CIFAR-100"})
    EXPECT_EQ(canonical_task_name(a), "cifar") << a;
  for (const char* a : {"oxford_pet", "pets", "oxford_pets", "oxford-iiit-pet"})
    EXPECT_EQ(canonical_task_name(a), "oxford_iiit_pet") << a;
  for (const char* a : {"flowers102", "flowers", "oxford_flowers", "oxford-flowers102"})
    EXPECT_EQ(canonical_task_name(a), "oxford_flowers102") << a;
  EXPECT_EQ(canonical_task_name("caltech"), "caltech101");
  EXPECT_EQ(canonical_task_name("clevr-count"), "clevr_count");
  EXPECT_EQ(canonical_task_name("dsprites-ori"), "dsprites_ori");
  EXPECT_EQ(canonical_task_name("smallnorb-azi"), "smallnorb_azi");
  EXPECT_EQ(canonical_task_name("my-own-task"), "my-own-task");  // unknown: as given
}

class VtabRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path r = root_.path();
    write_file(r / "cifar100" / "train800val200.txt", "images/a.png 3\n");  // alias folder
    write_file(r / "clevr-count" / "test.txt", "images/a.png 7\n");         // hyphenated
    write_file(r / "eurosat" / "test.json", R"([{"a.png": 1}])");           // json format
    write_file(r / "mytask" / "train800val200.txt", "images/a.png 2\n");    // unknown task
    write_file(r / "mytask" / "petl_task.json", R"({"num_classes": 3, "description": "toy"})");
    fs::create_directories(r / "notes");  // no lists
  }
  TempDir root_;
};

TEST_F(VtabRoot, FindTaskTriesAliases) {
  for (const char* name : {"cifar", "cifar100", "cifar_100", "cifar-100"}) {
    const TaskInfo t = find_task(root_.path(), name);
    EXPECT_EQ(t.name, "cifar") << name;
    EXPECT_EQ(fs::path(t.dir).filename(), "cifar100") << name;
    EXPECT_EQ(t.format, "txt");
    EXPECT_EQ(t.num_classes, 100);
  }
  const TaskInfo clevr = find_task(root_.path(), "clevr_count");
  EXPECT_EQ(fs::path(clevr.dir).filename(), "clevr-count");
  EXPECT_EQ(clevr.num_classes, 8);
  const TaskInfo euro = find_task(root_.path(), "eurosat");
  EXPECT_EQ(euro.format, "json");
  EXPECT_EQ(euro.num_classes, 10);
  const TaskInfo mine = find_task(root_.path(), "mytask");
  EXPECT_EQ(mine.num_classes, 3);
  EXPECT_EQ(mine.description, "toy");
}

TEST_F(VtabRoot, FindTaskErrors) {
  std::string msg = error_of([&] { find_task(root_.path(), "svhn"); });
  EXPECT_TRUE(contains(msg, root_.path())) << msg;
  EXPECT_TRUE(contains(msg, "cifar100") && contains(msg, "eurosat")) << msg;  // folders present
  msg = error_of([&] { find_task(root_.path(), "notes"); });
  EXPECT_TRUE(contains(msg, "notes") && contains(msg, "no list file")) << msg;
  msg = error_of([&] { find_task(root_.path() + "/nope", "cifar"); });
  EXPECT_TRUE(contains(msg, "/nope")) << msg;

  write_file(fs::path(root_.path()) / "dtd" / "test.txt", "images/a.png 1\n");
  write_file(fs::path(root_.path()) / "dtd" / "petl_task.json", R"({"num_classes": 40})");
  msg = error_of([&] { find_task(root_.path(), "dtd"); });
  EXPECT_TRUE(contains(msg, "class-count mismatch") && contains(msg, "petl_task.json")) << msg;
  EXPECT_TRUE(contains(msg, "40") && contains(msg, "47")) << msg;
}

TEST_F(VtabRoot, ListTasks) {
  const auto tasks = list_tasks(root_.path());
  std::vector<std::string> names;
  for (const auto& t : tasks) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"cifar", "clevr_count", "eurosat", "mytask"}));
  EXPECT_EQ(tasks[2].format, "json");
  EXPECT_EQ(tasks[3].num_classes, 3);
}

TEST(VtabReadSplit, TxtOrderPathsAndTolerance) {
  TempDir root;
  const fs::path dir = fs::path(root.path()) / "cifar_100";
  // CRLF endings, trailing spaces and blank lines are tolerated; line numbers stay physical.
  write_file(dir / "train800.txt",
             "images/train800/000000.jpg 7\r\n"
             "images/train800/000001.jpg 0  \r\n"
             "\r\n"
             "images/train800/000002.jpg 99\n"
             "\n");
  const TaskInfo task = find_task(root.path(), "cifar");
  EXPECT_EQ(task.format, "txt");
  const auto s = read_split(task, "train800");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].rel_path, "images/train800/000000.jpg");
  EXPECT_EQ(s[0].abs_path, (dir / "images/train800/000000.jpg").string());
  EXPECT_EQ(s[0].label, 7);
  EXPECT_EQ(s[1].label, 0);
  EXPECT_EQ(s[2].label, 99);
  EXPECT_EQ(s[2].line, 4);
  EXPECT_EQ(s[2].list_file, (dir / "train800.txt").string());

  std::string msg = error_of([&] { read_split(task, "val200"); });
  EXPECT_TRUE(contains(msg, "missing list file") && contains(msg, (dir / "val200.txt").string())) << msg;
  msg = error_of([&] { read_split(task, "train"); });
  EXPECT_TRUE(contains(msg, "unknown split 'train'")) << msg;
}

TEST(VtabReadSplit, TxtErrorsNameFileAndLine) {
  std::string msg = txt_split_error("images/a.png 1\nimages/b.png\n", "train800.txt");
  EXPECT_TRUE(contains(msg, "train800.txt:2") && contains(msg, "malformed")) << msg;
  msg = txt_split_error("images/a.png 1\nx.png 2 3\n", "train800.txt");  // an extra field, not an image "x.png 2"
  EXPECT_TRUE(contains(msg, "train800.txt:2") && contains(msg, "expected `<path> <label>` (two fields, got 3)")) << msg;
  msg = txt_split_error("\n  \n", "train800.txt");
  EXPECT_TRUE(contains(msg, "train800.txt") && contains(msg, "lists no sample")) << msg;
  msg = txt_split_error("images/a.png 1\n\nimages/c.png seven\n", "val200.txt");
  EXPECT_TRUE(contains(msg, "val200.txt:3") && contains(msg, "'seven' is not an integer")) << msg;
  msg = txt_split_error("images/a.png 2.5\n");
  EXPECT_TRUE(contains(msg, "test.txt:1") && contains(msg, "not an integer")) << msg;
  msg = txt_split_error("images/a.png -1\n", "train800val200.txt");
  EXPECT_TRUE(contains(msg, "train800val200.txt:1") && contains(msg, "negative label -1")) << msg;
  msg = txt_split_error("images/a.png 1\nimages/b.png 12\n");
  EXPECT_TRUE(contains(msg, "test.txt:2") && contains(msg, "label 12 out of range [0, 10)")) << msg;
  EXPECT_TRUE(contains(msg, "images/b.png")) << msg;
}

TEST(VtabReadSplit, Json) {
  TempDir root;
  const fs::path dir = fs::path(root.path()) / "eurosat";
  write_file(dir / "train800val200.json", R"([{"AnnualCrop/1.png": 0}, {"River/7.png": 9}])");
  write_file(dir / "test.json", "[]");
  const TaskInfo task = find_task(root.path(), "eurosat");
  const auto s = read_split(task, "train800val200");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1].rel_path, "River/7.png");
  EXPECT_EQ(s[1].abs_path, (dir / "images" / "River/7.png").string());
  EXPECT_EQ(s[1].label, 9);
  EXPECT_EQ(s[1].line, 2);
  const std::string empty = error_of([&] { read_split(task, "test"); });  // an empty split is an error
  EXPECT_TRUE(contains(empty, (dir / "test.json").string()) && contains(empty, "lists no sample")) << empty;
  const std::string msg = error_of([&] { read_split(task, "train800"); });
  EXPECT_TRUE(contains(msg, "missing list file") && contains(msg, (dir / "train800.json").string())) << msg;
}

TEST(VtabReadSplit, JsonErrorsNameFileAndElement) {
  std::string msg = json_split_error(R"([{"a.png": 1}, {"b.png": "x"}])");
  EXPECT_TRUE(contains(msg, "test.json[1]") && contains(msg, "not an integer")) << msg;
  msg = json_split_error(R"([{"a.png": 1}, {"b.png": 2, "c.png": 3}])");
  EXPECT_TRUE(contains(msg, "test.json[1]") && contains(msg, "one-key")) << msg;
  msg = json_split_error(R"([{"a.png": -2}])");
  EXPECT_TRUE(contains(msg, "test.json[0]") && contains(msg, "negative label -2")) << msg;
  msg = json_split_error(R"([{"a.png": 1}, {"b.png": 3}, {"c.png": 10}])");
  EXPECT_TRUE(contains(msg, "test.json[2]") && contains(msg, "label 10 out of range [0, 10)")) << msg;
  msg = json_split_error(R"({"a.png": 1})");
  EXPECT_TRUE(contains(msg, "test.json") && contains(msg, "JSON list")) << msg;
  msg = json_split_error("[{\"a.png\": 1},");
  EXPECT_TRUE(contains(msg, "test.json") && contains(msg, "invalid JSON")) << msg;
}

// ------------------------------------------------------------------ load_split

class VtabLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(root_.path()) / "pets";  // alias of oxford_iiit_pet (37 classes)
    // Sizes: already the target (fast path), up, down, mixed; RGB and grey.
    const int sizes[][3] = {{16, 16, 3}, {20, 12, 3}, {9, 9, 1}, {40, 40, 3}, {16, 16, 1}, {33, 17, 3}, {5, 30, 1}};
    std::string list;
    for (int i = 0; i < 7; ++i) {
      const std::string rel = "images/test/00000" + std::to_string(i) + ".png";
      write_image(dir_ / rel, sizes[i][0], sizes[i][1], sizes[i][2], i);
      list += rel + " " + std::to_string((i * 5) % 37) + "\n";
    }
    write_file(dir_ / "test.txt", list);
    // A list with a missing image (line 3) and an undecodable one (line 5).
    write_file(dir_ / "images/train800/bad.png", "not a png");
    write_file(dir_ / "train800.txt",
               "images/test/000000.png 1\n"
               "images/test/000001.png 2\n"
               "images/train800/missing.png 3\n"
               "images/test/000003.png 4\n"
               "images/train800/bad.png 5\n"
               "images/test/000005.png 6\n");
    task_ = find_task(root_.path(), "oxford_iiit_pet");
  }

  LoadOptions options(int threads, bool skip_bad = false) const {
    LoadOptions o;
    o.image_size = 16;
    o.threads = threads;
    o.skip_bad = skip_bad;
    o.progress = false;
    return o;
  }

  TempDir root_;
  fs::path dir_;
  TaskInfo task_;
};

TEST_F(VtabLoad, MatchesPerImagePipelineInListOrder) {
  const LoadedSplit one = load_split(task_, "test", options(1));
  ASSERT_EQ(one.n, 7);
  EXPECT_EQ(one.image_size, 16);
  ASSERT_EQ(one.pixels.size(), size_t(7) * 3 * 16 * 16);
  EXPECT_TRUE(one.skipped.empty());
  const auto samples = read_split(task_, "test");
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(one.labels[i], (i * 5) % 37);
    EXPECT_EQ(one.rel_paths[i], samples[i].rel_path);
    const Image8 img = resize_bicubic_pil(decode_image_file(samples[i].abs_path), 16, 16);
    std::vector<float> expected(3 * 16 * 16);
    to_normalised_chw(img, Normalisation::imagenet, expected.data());
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), one.pixels.begin() + i * 3 * 16 * 16)) << "sample " << i;
  }
  EXPECT_EQ(one.list_sha256, petl::sha256_file((dir_ / "test.txt").string()));
  EXPECT_EQ(one.list_sha256.size(), 64u);

  const LoadedSplit four = load_split(task_, "test", options(4));
  EXPECT_EQ(four.n, one.n);
  EXPECT_EQ(four.labels, one.labels);
  EXPECT_EQ(four.rel_paths, one.rel_paths);
  EXPECT_TRUE(four.pixels == one.pixels);

  LoadOptions limited = options(2);
  limited.limit = 3;
  limited.norm = Normalisation::none;
  const LoadedSplit three = load_split(task_, "test", limited);
  EXPECT_EQ(three.n, 3);
  EXPECT_EQ(three.labels, (std::vector<int64_t>{0, 5, 10}));
  EXPECT_TRUE(std::all_of(three.pixels.begin(), three.pixels.end(), [](float v) { return v >= 0.f && v <= 1.f; }));
}

TEST_F(VtabLoad, BadImagesThrowWithListLineAndPath) {
  for (int threads : {1, 4}) {
    const std::string msg = error_of([&] { load_split(task_, "train800", options(threads)); });
    EXPECT_TRUE(contains(msg, (dir_ / "train800.txt").string() + ":3")) << msg;
    EXPECT_TRUE(contains(msg, "images/train800/missing.png")) << msg;
  }
}

TEST_F(VtabLoad, SkipBadKeepsTheRestInOrder) {
  const LoadedSplit one = load_split(task_, "train800", options(1, true));
  EXPECT_EQ(one.n, 4);
  EXPECT_EQ(one.labels, (std::vector<int64_t>{1, 2, 4, 6}));
  ASSERT_EQ(one.skipped.size(), 2u);
  EXPECT_TRUE(contains(one.skipped[0], "train800.txt:3") && contains(one.skipped[0], "images/train800/missing.png"))
      << one.skipped[0];
  EXPECT_TRUE(contains(one.skipped[1], "train800.txt:5") && contains(one.skipped[1], "cannot decode"))
      << one.skipped[1];
  EXPECT_EQ(one.pixels.size(), size_t(4) * 3 * 16 * 16);

  // The kept images are exactly those of the clean list, in order.
  const LoadedSplit clean = load_split(task_, "test", options(1));
  const size_t per = 3 * 16 * 16;
  const int clean_index[] = {0, 1, 3, 5};
  for (int k = 0; k < 4; ++k)
    EXPECT_TRUE(std::equal(one.pixels.begin() + k * per, one.pixels.begin() + (k + 1) * per,
                           clean.pixels.begin() + clean_index[k] * per))
        << k;

  const LoadedSplit four = load_split(task_, "train800", options(4, true));
  EXPECT_EQ(four.labels, one.labels);
  EXPECT_EQ(four.skipped, one.skipped);
  EXPECT_TRUE(four.pixels == one.pixels);
}

TEST(VtabLoadJson, LoadsImagesUnderImagesDir) {
  TempDir root;
  const fs::path dir = fs::path(root.path()) / "eurosat";
  write_image(dir / "images/Forest/1.png", 64, 64, 3, 1);
  write_image(dir / "images/River/2.png", 64, 64, 3, 2);
  write_file(dir / "train800val200.json", R"([{"River/2.png": 8}, {"Forest/1.png": 1}])");
  LoadOptions o;
  o.image_size = 24;
  o.threads = 2;
  o.progress = false;
  o.norm = Normalisation::inception;
  const LoadedSplit s = load_split(find_task(root.path(), "eurosat"), "train800val200", o);
  EXPECT_EQ(s.n, 2);
  EXPECT_EQ(s.labels, (std::vector<int64_t>{8, 1}));
  EXPECT_EQ(s.rel_paths, (std::vector<std::string>{"River/2.png", "Forest/1.png"}));
  EXPECT_EQ(s.pixels.size(), size_t(2) * 3 * 24 * 24);
}

}  // namespace
