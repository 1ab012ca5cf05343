// Protocol val_select: selection without the test set. For one method × task × training seed, every
// point of a grid trains on train800 and is evaluated on val200 at every evaluation epoch (the
// "search" jobs); the (grid point, epoch count) with the best val200 accuracy is chosen — ties go to
// the earlier epoch count, then to the earlier grid point; then one "final" run trains on
// train800val200 with the chosen point's settings for that many epochs (`--epochs E`: the recipe's
// schedule fitted to E epochs, warmup in proportion, as any --epochs), and its test accuracy after
// its last epoch is the result. The final record names the search it came from (selection: the
// search jobs' keys and files, every candidate's val200 evaluations, the rule, the choice), so
// "were these numbers selected on the test set?" is answered from the records alone.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/spec/job_spec.h"

namespace petl {

struct SelectionCandidate {
  std::string file, job_key;                  // the search job's result file and record
  std::map<std::string, std::string> sets;    // its grid point (the search record's --set values)
  std::vector<std::pair<int, double>> evals;  // (epoch count, val200 accuracy)
};

struct Selection {
  std::vector<SelectionCandidate> candidates;  // grid order
  size_t chosen = 0;                           // index into candidates
  int epochs = 0;                              // the chosen epoch count
  double val_acc = 0;                          // its val200 accuracy
  nlohmann::json to_json() const;              // the final record's "selection"
};

// The rule, in words (recorded).
extern const char* const kSelectionRule;

// Reads the last ok search record of each file (grid order) and chooses. petl::Error naming the file
// when one has no ok search record of the same method, task and training seed as `final_spec`.
Selection select_on_val(const JobSpec& final_spec);

// The final run: final_spec with the chosen settings over its own --set values and --epochs E.
JobSpec final_run_spec(const JobSpec& final_spec, const Selection& s);

// A search job of one grid point: base with stage "search" and the point's --set values.
JobSpec search_spec(const JobSpec& base, const std::map<std::string, std::string>& point);

// config/val_grids.yaml: the default search grid of a method (key → values in grid order), empty
// when the file names none; `source` (optional) gets the file's source line for the method.
std::map<std::string, std::vector<std::string>> default_val_grid(const std::string& method,
                                                                 std::string* source = nullptr);

}  // namespace petl
