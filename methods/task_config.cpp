#include "methods/task_config.h"

#include "core/error.h"
#include "core/paths.h"
#include "core/text.h"

namespace petl::methods {

std::map<std::string, std::string> task_row(const std::string& name, const std::string& task, std::string* source) {
  const CsvTable t = read_csv(config_dir() + "/" + name);
  PETL_CHECK(!t.header.empty() && t.header[0] == "task", t.file, ": expected a header starting with 'task'");
  std::map<std::string, std::string> row;
  bool found = false;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    if (t.rows[r][0] != task) continue;
    PETL_CHECK(!found, t.where(r), ": task '", task, "' is listed twice");
    found = true;
    for (size_t i = 1; i < t.header.size(); ++i) row[t.header[i]] = t.rows[r][i];
    if (source) *source = t.where(r);
  }
  return row;
}

}  // namespace petl::methods
