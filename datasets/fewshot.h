// NOAH's few-shot fine-grained benchmark on disk (ZhangYuanhan-AI/NOAH, data/few-shot/): a root
// holding one folder per dataset, each with
//   annotations/train_meta.list.num_shot_<K>.seed_<S>   K images per class drawn with split seed S
//   annotations/val_meta.list, annotations/test_meta.list
// lines `<relative image path> <label>` (0-based labels), the images under <dataset>/images/ (Stanford
// Cars: the dataset folder itself, as NOAH's lib/datasets.py joins them).
//
// A few-shot dataset is a data::TaskInfo of format "fewshot", so the readers, loaders and caches of
// VTAB-1k tasks serve it. Its splits, by name:
//   train_<K>shot_seed<S>   the K-shot list of split seed S (every class exactly K images: a class with
//                           fewer or more is an error naming it and the list)
//   val, test               val_meta.list, test_meta.list
//   train_pool              every train list of the dataset merged (first occurrence of an image, the
//                           lists in (K, S) order): one feature cache serves every shot and seed
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "datasets/vtab.h"

namespace petl::data {

constexpr const char* kFewshotFormat = "fewshot";
constexpr const char* kFewshotPoolSplit = "train_pool";

// NOAH's five datasets by canonical name, in its table order, with their class counts.
const std::vector<std::string>& fewshot_dataset_names();
// Class count of a canonical few-shot dataset name; -1 for other datasets.
int fewshot_known_num_classes(const std::string& canonical);
// Maps NOAH's folder names and the usual aliases (fgvc-aircraft, food-101, oxford-flowers102,
// oxford-pets, stanford_cars, aircraft, pets, cars, ...) to the canonical name; others as given.
std::string canonical_fewshot_name(const std::string& name);

// "train_4shot_seed1" for K = 4, S = 1; parse_fewshot_train_split reads it back (false otherwise).
std::string fewshot_train_split(int shots, int split_seed);
bool parse_fewshot_train_split(const std::string& split, int* shots, int* split_seed);

// Finds <root>/<dataset> (NOAH's folder names and aliases). Throws an ArgumentError naming the root,
// what was tried and the folders present when absent, and naming the folder when it has no
// annotations/test_meta.list. num_classes: the known count, else <dir>/petl_task.json's, else -1.
TaskInfo find_fewshot_dataset(const std::string& root, const std::string& dataset);

// What a dataset folder holds: its train lists (K, S) ascending, and the lengths of its lists.
struct FewshotDatasetListing {
  TaskInfo task;
  std::vector<std::pair<int, int>> train_lists;  // (shots, split seed)
  int64_t val_lines = -1, test_lines = -1;       // -1: no such list
  int test_classes = 0;                          // distinct labels of the test list
};
FewshotDatasetListing describe_fewshot_dataset(const TaskInfo& task);
// Every folder under root that holds annotations/test_meta.list, sorted by name.
std::vector<FewshotDatasetListing> list_fewshot_datasets(const std::string& root);

// The list file of a split ("" for train_pool, which merges every train list).
std::string fewshot_list_file(const TaskInfo& task, const std::string& split);
// The samples of a split (rules above; errors name list file and line).
std::vector<Sample> read_fewshot_split(const TaskInfo& task, const std::string& split);
// SHA-256 of a split's list bytes; train_pool's is over the names and hashes of the lists it merges.
std::string fewshot_split_sha256(const TaskInfo& task, const std::string& split);
// The rows of train_pool that hold the samples of `split`, in the split's order.
std::vector<int64_t> fewshot_pool_rows(const TaskInfo& task, const std::string& split);

// Every image of the split exists on disk, else an error naming the list:line and path of the first
// missing ones and how many are missing (checked before any training).
void check_split_images_exist(const TaskInfo& task, const std::string& split);

}  // namespace petl::data
