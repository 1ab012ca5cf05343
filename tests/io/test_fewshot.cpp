// Tests of datasets/fewshot.{h,cpp} (NOAH's few-shot layout) and datasets/suite_fewshot (the
// embedded few-shot set's lists): folder names and aliases as NOAH's repository and scripts spell
// them, Stanford Cars' own image root, the split names, the K-shot rule per class (NOAH's doubled
// 1-shot pets list passes), the train pool (merged lists, rows per list, conflicting labels), list
// hashes, missing images, and every error naming its file or folder.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/hashing.h"
#include "datasets/fewshot.h"

namespace fs = std::filesystem;
using namespace petl::data;

namespace {

class FewshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/petl_test_fewshot_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const fs::path& rel, const std::string& text) const {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }
  // `classes` classes, `shots` images each: "<prefix>c<class>_<i>.jpg <class>" lines.
  static std::string shot_lines(int classes, int shots, const std::string& prefix = "") {
    std::string s;
    for (int c = 0; c < classes; ++c)
      for (int i = 0; i < shots; ++i)
        s += prefix + "c" + std::to_string(c) + "_" + std::to_string(i) + ".jpg " + std::to_string(c) + "\n";
    return s;
  }
  // A dataset folder with test/val lists and the given train lists.
  void dataset(const std::string& folder, int classes, const std::vector<std::pair<int, int>>& lists) const {
    write(folder + "/annotations/test_meta.list", shot_lines(classes, 3, "t"));
    write(folder + "/annotations/val_meta.list", shot_lines(classes, 2, "v"));
    for (auto [k, s] : lists)
      write(folder + "/annotations/train_meta.list.num_shot_" + std::to_string(k) + ".seed_" + std::to_string(s),
            shot_lines(classes, k, "s" + std::to_string(s) + "k" + std::to_string(k)));
  }
  template <typename F>
  static std::string error_of(F&& f) {
    try {
      f();
    } catch (const petl::Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path root_;
};

TEST(FewshotNames, NoahFolderNamesAndAliasesMapToTheCanonicalNames) {
  EXPECT_EQ(canonical_fewshot_name("fgvc-aircraft"), "fgvc_aircraft");
  EXPECT_EQ(canonical_fewshot_name("food-101"), "food101");
  EXPECT_EQ(canonical_fewshot_name("food101"), "food101");
  EXPECT_EQ(canonical_fewshot_name("oxford-flowers102"), "oxford_flowers102");
  EXPECT_EQ(canonical_fewshot_name("oxford_flowers"), "oxford_flowers102");
  EXPECT_EQ(canonical_fewshot_name("oxford-pets"), "oxford_iiit_pet");
  EXPECT_EQ(canonical_fewshot_name("standford-cars"), "stanford_cars");  // NOAH's repository folder
  EXPECT_EQ(canonical_fewshot_name("stanford_cars"), "stanford_cars");
  EXPECT_EQ(canonical_fewshot_name("fashion_mnist"), "fashion_mnist");  // other datasets: as given
  EXPECT_EQ(fewshot_known_num_classes("fgvc_aircraft"), 100);
  EXPECT_EQ(fewshot_known_num_classes("food101"), 101);
  EXPECT_EQ(fewshot_known_num_classes("oxford_flowers102"), 102);
  EXPECT_EQ(fewshot_known_num_classes("oxford_iiit_pet"), 37);
  EXPECT_EQ(fewshot_known_num_classes("stanford_cars"), 196);
  EXPECT_EQ(fewshot_known_num_classes("fashion_mnist"), -1);
  EXPECT_EQ(fewshot_dataset_names().size(), 5u);
}

TEST(FewshotNames, TrainSplitNamesRoundTrip) {
  EXPECT_EQ(fewshot_train_split(4, 1), "train_4shot_seed1");
  int k = 0, s = -1;
  EXPECT_TRUE(parse_fewshot_train_split("train_16shot_seed2", &k, &s));
  EXPECT_EQ(k, 16);
  EXPECT_EQ(s, 2);
  EXPECT_FALSE(parse_fewshot_train_split("train_0shot_seed1", &k, &s));
  EXPECT_FALSE(parse_fewshot_train_split("train800val200", &k, &s));
  EXPECT_FALSE(parse_fewshot_train_split("train_4shot_seedx", &k, &s));
}

TEST_F(FewshotTest, FindsNoahsFoldersWithTheirImageRoots) {
  dataset("fgvc-aircraft", 100, {{1, 0}});
  dataset("standford-cars", 196, {{1, 0}});
  const TaskInfo air = find_fewshot_dataset(root_, "fgvc_aircraft");
  EXPECT_EQ(air.name, "fgvc_aircraft");
  EXPECT_EQ(air.format, "fewshot");
  EXPECT_EQ(air.num_classes, 100);
  const auto a = read_split(air, "train_1shot_seed0");
  ASSERT_EQ(a.size(), 100u);
  EXPECT_EQ(a[0].abs_path, (root_ / "fgvc-aircraft" / "images" / a[0].rel_path).string());  // <dataset>/images/
  const TaskInfo cars = find_fewshot_dataset(root_, "cars");
  EXPECT_EQ(cars.name, "stanford_cars");
  const auto c = read_split(cars, "test");
  EXPECT_EQ(c[0].abs_path, (root_ / "standford-cars" / c[0].rel_path).string());  // no images/ level
  EXPECT_EQ(c.size(), 196u * 3);
  EXPECT_EQ(read_split(cars, "val").size(), 196u * 2);
}

TEST_F(FewshotTest, MissingDatasetAndFolderWithoutListsAreNamed) {
  dataset("food-101", 101, {{1, 0}});
  fs::create_directories(root_ / "oxford-pets" / "images");
  const std::string e1 = error_of([&] { find_fewshot_dataset(root_, "aircraft"); });
  EXPECT_NE(e1.find("few-shot dataset 'aircraft' not found under " + root_.string()), std::string::npos) << e1;
  EXPECT_NE(e1.find("food-101"), std::string::npos) << e1;  // the folders present
  const std::string e2 = error_of([&] { find_fewshot_dataset(root_, "pets"); });
  EXPECT_NE(e2.find((root_ / "oxford-pets").string() + " has no annotations/test_meta.list"), std::string::npos) << e2;
  const std::string e3 = error_of([&] { find_fewshot_dataset((root_ / "nope").string(), "food101"); });
  EXPECT_NE(e3.find("is not a directory"), std::string::npos) << e3;
}

TEST_F(FewshotTest, AClassWithFewerImagesThanShotsIsAnErrorNamingIt) {
  dataset("food-101", 101, {{2, 0}});
  std::string lines = shot_lines(101, 2);
  lines.replace(lines.find("c7_1.jpg 7"), 10, "c7_0.jpg 7");  // class 7: the same image twice
  write("food-101/annotations/train_meta.list.num_shot_2.seed_0", lines);
  const TaskInfo t = find_fewshot_dataset(root_, "food101");
  const std::string e = error_of([&] { read_split(t, "train_2shot_seed0"); });
  EXPECT_NE(e.find("train_meta.list.num_shot_2.seed_0: 1 of the 101 classes have fewer distinct images than the 2 "
                   "shots"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("class 7 has 1"), std::string::npos) << e;
}

TEST_F(FewshotTest, NoahsDoubledOnceShotPetsListIsAccepted) {
  dataset("oxford-pets", 37, {});
  write("oxford-pets/annotations/train_meta.list.num_shot_1.seed_0", shot_lines(37, 1) + shot_lines(37, 1));
  const TaskInfo t = find_fewshot_dataset(root_, "oxford-pets");
  EXPECT_EQ(read_split(t, "train_1shot_seed0").size(), 74u);  // duplicates kept: NOAH trains on them
  EXPECT_EQ(read_split(t, kFewshotPoolSplit).size(), 37u);    // the pool holds each image once
}

TEST_F(FewshotTest, ALabelOutOfRangeNamesFileAndLine) {
  dataset("fgvc-aircraft", 100, {});
  write("fgvc-aircraft/annotations/train_meta.list.num_shot_1.seed_0", shot_lines(100, 1) + "x.jpg 100\n");
  const TaskInfo t = find_fewshot_dataset(root_, "fgvc_aircraft");
  const std::string e = error_of([&] { read_split(t, "train_1shot_seed0"); });
  EXPECT_NE(e.find("train_meta.list.num_shot_1.seed_0:101: label 100 out of range [0, 100)"), std::string::npos) << e;
  const std::string e2 = error_of([&] { read_split(t, "train_4shot_seed0"); });
  EXPECT_NE(e2.find("missing list file"), std::string::npos) << e2;
  EXPECT_NE(e2.find("train_meta.list.num_shot_4.seed_0"), std::string::npos) << e2;
  const std::string e3 = error_of([&] { read_split(t, "train800val200"); });
  EXPECT_NE(e3.find("expected train_<K>shot_seed<S>"), std::string::npos) << e3;
}

TEST_F(FewshotTest, ThePoolMergesEveryListAndEachListMapsToItsRows) {
  dataset("fgvc-aircraft", 100, {{1, 0}, {2, 0}, {1, 1}});
  // The 2-shot list reuses the 1-shot seed-0 images as its first shot: shared rows in the pool.
  std::string two;
  for (int c = 0; c < 100; ++c)
    two += "s0k1c" + std::to_string(c) + "_0.jpg " + std::to_string(c) + "\nnew" + std::to_string(c) + ".jpg " +
           std::to_string(c) + "\n";
  write("fgvc-aircraft/annotations/train_meta.list.num_shot_2.seed_0", two);
  const TaskInfo t = find_fewshot_dataset(root_, "fgvc_aircraft");
  const auto pool = read_split(t, kFewshotPoolSplit);
  EXPECT_EQ(pool.size(), 100u + 100u + 100u);  // (1,0), (1,1), then the 2-shot list's new images
  const auto rows = fewshot_pool_rows(t, "train_2shot_seed0");
  ASSERT_EQ(rows.size(), 200u);
  const auto list = read_split(t, "train_2shot_seed0");
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(pool[size_t(rows[i])].rel_path, list[i].rel_path);
  EXPECT_EQ(rows[0], 0);  // s0k1c0_0.jpg is the pool's first row (the (1, 0) list comes first)
  // The pool's hash covers every list: changing one list changes it, and not the other lists' hashes.
  const std::string before = split_list_sha256(t, kFewshotPoolSplit), one = split_list_sha256(t, "train_1shot_seed1");
  write("fgvc-aircraft/annotations/train_meta.list.num_shot_2.seed_0", two + "\n");
  EXPECT_NE(split_list_sha256(t, kFewshotPoolSplit), before);
  EXPECT_EQ(split_list_sha256(t, "train_1shot_seed1"), one);
  EXPECT_EQ(one, petl::sha256_file((root_ / "fgvc-aircraft/annotations/train_meta.list.num_shot_1.seed_1").string()));
}

TEST_F(FewshotTest, OneImageWithTwoLabelsInThePoolIsAnError) {
  dataset("fgvc-aircraft", 100, {{1, 0}});
  const std::string lines = shot_lines(100, 1, "s0k1");  // the seed-0 list's images again
  write("fgvc-aircraft/annotations/train_meta.list.num_shot_1.seed_1", lines + "s0k1c5_0.jpg 6\n");
  const TaskInfo t = find_fewshot_dataset(root_, "fgvc_aircraft");
  const std::string e = error_of([&] { read_split(t, kFewshotPoolSplit); });
  EXPECT_NE(e.find("s0k1c5_0.jpg has label 6 but label 5 at"), std::string::npos) << e;
}

TEST_F(FewshotTest, MissingImagesAreCountedAndNamed) {
  dataset("fgvc-aircraft", 100, {{1, 0}});
  const TaskInfo t = find_fewshot_dataset(root_, "fgvc_aircraft");
  const auto test = read_split(t, "test");
  for (size_t i = 0; i + 1 < test.size(); ++i) {  // every test image but the last
    fs::create_directories(fs::path(test[i].abs_path).parent_path());
    std::ofstream(test[i].abs_path) << "x";
  }
  const std::string e = error_of([&] { check_split_images_exist(t, "test"); });
  EXPECT_NE(e.find("fgvc_aircraft (test split): 1 listed image is missing on disk"), std::string::npos) << e;
  EXPECT_NE(e.find(test.back().abs_path), std::string::npos) << e;
  EXPECT_NE(e.find("test_meta.list:300"), std::string::npos) << e;
  std::ofstream(test.back().abs_path) << "x";
  EXPECT_EQ(error_of([&] { check_split_images_exist(t, "test"); }), "");
}

TEST_F(FewshotTest, DescribeListsShotsSeedsAndSizes) {
  dataset("fgvc-aircraft", 100, {{4, 1}, {1, 0}, {16, 2}});
  dataset("food-101", 101, {{1, 0}});
  fs::create_directories(root_ / "not_a_dataset");
  const auto all = list_fewshot_datasets(root_);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].task.name, "fgvc_aircraft");
  EXPECT_EQ(all[0].train_lists, (std::vector<std::pair<int, int>>{{1, 0}, {4, 1}, {16, 2}}));
  EXPECT_EQ(all[0].test_lines, 300);
  EXPECT_EQ(all[0].val_lines, 200);
  EXPECT_EQ(all[0].test_classes, 100);
  EXPECT_EQ(all[1].task.name, "food101");
}

}  // namespace
