// The readers under fuzz (one Target each, by name) and their seed inputs. A target's `read`
// writes the bytes where the reader expects its file (inside `work_dir`) and calls the real reader
// the way petl does, then consumes what it returned (every row of a feature cache, every record of
// a journal), so a reader that accepts a corrupt input without checking it fails here too.
//
//   txt_list        datasets/vtab read_split, txt format (<path> <label> lines)
//   json_list       datasets/vtab read_split, json format ([{"<path>": label}, ...])
//   petl_task_json  datasets/vtab find_task / list_tasks reading <task>/petl_task.json
//   safetensors     io/tensor_file read_safetensors (checkpoints, backbones)
//   npy             io/tensor_file read_npy
//   npz             io/tensor_file read_npz (Google ViT checkpoints)
//   feature_store   io/feature_store FeatureStoreReader (open, read every row, label and path),
//                   verify() and list_caches()
//   sweep_yaml      harness/sweep parse_sweep_config, then plan_sweep when it parses
//   journal         io/journal read_json_lines, harness/sweep read_journal, results load_records
#pragma once
#include <string>
#include <vector>

#include "fuzz.h"

namespace petl::fuzz {

const std::vector<std::string>& target_names();
Target make_target(const std::string& name, const std::string& work_dir);
// Seeds: generated ones (by petl's own writers where it has one) plus tests/fuzz/seeds/<name>/*.
std::vector<std::string> seeds_for(const std::string& name, const std::string& work_dir);

}  // namespace petl::fuzz
