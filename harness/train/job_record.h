// What a job writes, step by step (internal to harness/train; the job runner calls them): its
// record's header (identity, settings, backbone, provenance, job key), its accuracies and data
// section, its checkpoint, and the search for an earlier finished record of the same job key.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "harness/train/feature_source.h"
#include "harness/train/job.h"

namespace petl::job_record {

// The last ok record with this job key in <out_dir>/results.jsonl whose checkpoint (if any) still
// exists, or nullopt (a torn last line is cut first).
std::optional<Record> find_finished(const std::string& out_dir, const std::string& key);

// Identity, settings, backbone and provenance: everything known before training.
Record record_header(const ResolvedJob& job, Method& method, const JobBackbone& bb);

// best_of_10, final and the headline accuracy from r.evals.
void set_accuracies(Record& r, int eval_every);

// The record's data section (root, task, lists' hashes, sizes, skipped samples).
// missing_train_classes: the classes without a training image that the job was allowed to train
// without (check_train_classes; recorded as data.missing_train_classes, empty when none).
nlohmann::json data_section(const ResolvedJob& job, int num_classes, int image_size, const FeatureSources& src,
                            const std::vector<int>& missing_train_classes);

// Saves the method's checkpoint tensors under <out>/checkpoints/ and sets r.checkpoint.
void save_checkpoint(const ResolvedJob& job, Method& method, Record& r, int num_classes);

// Removes <out_dir>/state/<key>.safetensors if present.
void remove_job_state(const std::string& out_dir, const std::string& key);

// petl::Error when the test split has a label outside the train split's classes.
void check_test_labels(const ResolvedJob& job, const FeatureSources& src, int num_classes);

}  // namespace petl::job_record
