// The one reader of per-task method configs: config/<file> is a CSV with a header starting with
// "task" and one row per VTAB task (e.g. config/synqt_task_configs.csv, config/baselines/*.csv);
// '#' lines are comments citing where the values come from. Torch-free.
#pragma once
#include <map>
#include <string>

namespace petl::methods {

// Column → value of `task`'s row of config/<file> (relative to config_dir()); empty when the task
// has no row. *source (optional) becomes "file:line" of the row, or stays as it was. Errors (no
// file, no 'task' column, ragged rows, a task listed twice) name the file and line.
std::map<std::string, std::string> task_row(const std::string& file, const std::string& task,
                                            std::string* source = nullptr);

}  // namespace petl::methods
