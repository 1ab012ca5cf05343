// VTAB-1k on-disk readers: the NOAH/PETL-ViT "txt" lists and SynQT's "json" lists, folder
// aliases, class counts, and parallel loading into normalised float arrays.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/image.h"

namespace petl::data {

// Known class count of a VTAB-1k task (canonical name), or -1 for unknown tasks.
int known_num_classes(const std::string& canonical_task);
// Maps folder aliases (cifar100, cifar_100 → cifar; oxford_pet, pets → oxford_iiit_pet;
// flowers102 → oxford_flowers102, ...) to the canonical name; other names are returned as is.
std::string canonical_task_name(const std::string& name);
// The 19 VTAB-1k task names in table order (natural, specialized, structured).
const std::vector<std::string>& vtab_task_names();
// Lines a VTAB-1k list of a canonical task holds: 800 (train800), 200 (val200), 1000
// (train800val200), the task's full test split (test; task_adaptation's sizes); -1 for other
// tasks or splits.
int64_t vtab_split_size(const std::string& canonical_task, const std::string& split);
// True where VTAB-1k's own train splits lack classes (sun397: 325 of 397 classes in
// train800val200, task_adaptation issue #21), so a class without a training image is expected there.
bool vtab_train_split_lacks_classes(const std::string& canonical_task);

struct TaskInfo {
  std::string name;         // canonical name
  std::string dir;          // <root>/<folder actually found>
  std::string format;       // "txt" or "json" (VTAB-1k), "fewshot" (NOAH's layout: datasets/fewshot.h)
  int num_classes = -1;     // from the VTAB table, or <dir>/petl_task.json {"num_classes": C}
  std::string description;  // from petl_task.json when present
};

// Finds <root>/<task> (trying aliases). Throws petl::Error naming the root and the folders that
// exist when the task is absent, and "class-count mismatch" when petl_task.json disagrees with
// the VTAB table. Tasks with neither a known count nor petl_task.json get num_classes = -1.
TaskInfo find_task(const std::string& root, const std::string& task);
// "txt" or "json" from the list files in dir (txt wins when both exist), "" when it holds none.
std::string list_format(const std::string& dir);
// One task folder as find_task reads it (canonical name from the folder's name, class count from
// the VTAB table or petl_task.json); throws petl::Error naming the folder when it holds no list
// file, and as find_task on a bad petl_task.json.
TaskInfo read_task_folder(const std::string& dir);
// Every folder under root holding a list file of either format, sorted by name.
std::vector<TaskInfo> list_tasks(const std::string& root);

struct Sample {
  std::string rel_path;  // as written in the list
  std::string abs_path;  // resolved image path
  int64_t label = -1;
  std::string list_file;  // the list it came from
  int line = 0;           // 1-based line (txt) or element index + 1 (json)
};

// A task folder's petl_task.json ({"num_classes": C, "description": ...}) over the VTAB table's count of
// `name`; a TaskInfo with only name, num_classes and description set (dir and format empty).
TaskInfo read_task_metadata(const std::string& dir, const std::string& name);
// The `<path> <label>` lines of a list (VTAB's txt lists, NOAH's few-shot lists): blank lines and
// trailing whitespace ignored; errors name file:line (two fields, an integer label in
// [0, num_classes) when num_classes > 0). abs_path = image_dir/<path>.
std::vector<Sample> parse_list_lines(const std::string& file, const std::string& text, int num_classes,
                                     const std::string& image_dir);

// Reads split ∈ {train800, val200, train800val200, test} (json format: train800val200, test; a
// few-shot dataset's splits: datasets/fewshot.h).
// Errors name list file + line: missing list, malformed line, label not an integer, label out of
// range [0, num_classes) when num_classes > 0.
std::vector<Sample> read_split(const TaskInfo& task, const std::string& split);

struct LoadOptions {
  int image_size = 224;  // output S×S (PIL bicubic resize)
  Normalisation norm = Normalisation::imagenet;
  int threads = 0;        // decode threads; 0 = hardware concurrency
  bool skip_bad = false;  // skip missing/undecodable images instead of failing
  bool progress = true;   // progress bar on stderr
  int64_t limit = -1;     // load only the first `limit` samples (tests)
  int64_t offset = 0;     // skip the first `offset` samples (chunked loading)
};

struct LoadedSplit {
  int64_t n = 0;
  int image_size = 0;
  std::vector<float> pixels;    // n × 3 × S × S, CHW per image, list order (minus skipped)
  std::vector<int64_t> labels;  // n
  std::vector<std::string> rel_paths;
  std::vector<std::string> skipped;  // "list:line path: reason" for each skipped sample
  std::string list_sha256;           // SHA-256 of the list file's bytes
};

// Decodes, resizes and normalises every sample of a split on `threads` threads. Without
// skip_bad the first bad sample throws petl::Error naming list file, line and image path.
LoadedSplit load_split(const TaskInfo& task, const std::string& split, const LoadOptions& opts);
// SHA-256 of the list a split is read from (a few-shot train_pool: of the lists it merges).
std::string split_list_sha256(const TaskInfo& task, const std::string& split);
// Number of samples listed for a split (no decoding).
int64_t count_samples(const TaskInfo& task, const std::string& split);

// The classes in [0, num_classes) that none of the samples has, ascending.
std::vector<int> missing_classes(const std::vector<Sample>& samples, int num_classes);
// "0, 3-5, 9" (ranges of consecutive classes), at most max_items items then "... (N in all)".
std::string class_list_text(const std::vector<int>& classes, size_t max_items = 24);
// Where a sample is listed, as errors name it: "list.txt:12" (txt) or "list.json[11]" (json).
std::string sample_location(const Sample& s);

}  // namespace petl::data
