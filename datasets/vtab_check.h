// `petl data check ROOT`: verifies a VTAB-1k download (or any root of petl task folders) before a
// single job runs on it. Per task: which list files exist (txt: train800/val200/train800val200/
// test.txt; json: train800val200/test.json), their line counts against VTAB-1k's split sizes, the
// classes each split holds against the task's class count, classes with no training image, labels
// out of range, images listed by both a train and a test list, and every image decoded with the
// training decoder (or, quick, every image's existence and a sample decoded). Each finding names
// the list file, the line and the image path. Torch-free; the CLI prints it (app/cmd_data_check.cpp).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace petl::data {

// One finding. A problem makes the check fail; a note is reported and does not.
struct DataIssue {
  std::string kind;     // missing_task, missing_list, list, count, label_range, class_gap, missing_image,
                        // bad_image, leak, duplicate, union, task_json, duplicate_folder, not_a_task
  bool problem = true;  // false: a note
  std::string message;  // one line naming the file, file:line and image path
  std::string list;     // the list file it is about ("" when none)
  int line = 0;         // 1-based line (txt) or element index + 1 (json); 0 when none
  std::string path;     // the image path as listed ("" when none)
};

struct SplitCheck {
  std::string split;                 // train800, val200, train800val200, test
  std::string list;                  // the list file's path
  bool present = false;              // the list file exists
  bool readable = false;             // and parses (every line `<path> <label>`, not empty)
  int64_t lines = 0;                 // samples listed
  int64_t expected = -1;             // VTAB-1k's size of this split; -1: not a VTAB-1k task
  int classes_seen = 0;              // distinct labels inside [0, num_classes)
  std::vector<int> missing_classes;  // train splits: classes with no image in this list
  int64_t out_of_range = 0;          // labels outside [0, num_classes)
  std::string sha256;                // of the list file's bytes (what job keys and records hold)
};

struct TaskCheck {
  std::string name;    // canonical task name (cifar100 → cifar)
  std::string folder;  // the folder found under the root
  std::string dir, format, description;
  bool vtab = false;         // one of the 19 VTAB-1k tasks
  int num_classes = -1;      // the class count the checks use (-1: unknown)
  std::string classes_from;  // where it comes from: "VTAB-1k", "petl_task.json", "train labels"
  std::vector<SplitCheck> splits;
  int64_t images = 0;          // distinct image files listed
  int64_t images_decoded = 0;  // decoded (all of them, or a sample with quick)
  int64_t images_found = 0;    // quick: found on disk (not decoded)
  int64_t images_bad = 0;      // missing or undecodable
  std::vector<DataIssue> issues;
  int problems() const;
  int notes() const;
};

struct DataCheckOptions {
  std::vector<std::string> tasks;  // empty: every task folder under the root
  bool quick = false;              // every image's existence; decode only `sample` per split
  int sample = 10;                 // with quick: images decoded per split (evenly spaced)
  int threads = 0;                 // decoding threads; 0 = hardware concurrency
  bool progress = true;            // a progress bar on stderr (off a terminal: a line every PETL_PROGRESS_EVERY_S s)
};

struct DataCheckReport {
  std::string root;
  bool quick = false;
  // The root holds at least one VTAB-1k task (and no --tasks was given): every one of the 19 is
  // expected, and a missing one is a problem.
  bool vtab_root = false;
  std::vector<TaskCheck> tasks;            // sorted by name
  std::vector<std::string> missing_tasks;  // canonical names expected and not found
  std::vector<DataIssue> issues;           // about the root: missing tasks, duplicate folders, ...
  double seconds = 0;
  int problems() const;  // of the root and of every task
  int notes() const;
};

// Checks the root; petl::Error only when the root itself is not a directory (every finding about
// its content is an issue of the report).
DataCheckReport check_data_root(const std::string& root, const DataCheckOptions& opts);

// The report as JSON (schema "petl.data_check", version 1): root, summary, missing tasks, root
// issues and per task its splits, classes, image counts and every issue.
nlohmann::json data_check_json(const DataCheckReport& report);

}  // namespace petl::data
