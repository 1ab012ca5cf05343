// The embedded few-shot set: the embedded suite "mini" (datasets/suite_mini.h) rewritten in NOAH's
// few-shot layout (datasets/fewshot.h), so every few-shot rule runs on real files with no download.
// For each mini task (fashion_mnist, sprites_loc, sprites_ori, objects_count, objects_dist):
//   <task>/images/{train800,val200,test}/NNNNNN.png   the mini images (hard links where possible)
//   <task>/annotations/train_meta.list.num_shot_K.seed_S   K ∈ {1,2,4,8,16}, S ∈ {0,1,2}: K images of
//       every class drawn from the task's train800 list, independently per (K, S) as NOAH's lists
//       are (not nested), lines grouped by class in ascending order
//   <task>/annotations/val_meta.list (the val200 list), test_meta.list (the test list)
//   <task>/petl_task.json {num_classes, description, suite: "mini_fewshot", version}
// Deterministic: the draws depend only on (task, K, S) through splitmix64 and a Fisher-Yates shuffle
// of petl's own, so two builds write identical lists on every machine.
#pragma once
#include <string>
#include <vector>

namespace petl::data {

// The shots and split seeds the embedded few-shot set has lists for.
const std::vector<int>& fewshot_suite_shots();
const std::vector<int>& fewshot_suite_seeds();

// Writes the set under out_dir from a mini suite already built in mini_dir (`petl suite --out`).
// Throws petl::Error naming a missing mini task or a class with fewer train images than 16.
void build_fewshot_suite(const std::string& mini_dir, const std::string& out_dir);

}  // namespace petl::data
