// The closed sets of values a job, a record or a cache has: each an enum class with its names in one
// place (core/enum_text.h: to_string, parse_enum, enum_choices).
#pragma once
#include <array>

#include "core/enum_text.h"

namespace petl {

// The headline accuracy of a job (both are recorded): the best test accuracy over the evaluations
// every eval_every epochs, or the one after the last epoch. val_select chooses settings and epoch
// count on val200 without the test set (a search stage, then a final run; harness/train/selection.h)
// and reports the final run's test accuracy after its last epoch.
enum class Protocol { kBestOf10, kFinal, kValSelect };
template <>
struct EnumText<Protocol> {
  static constexpr const char* kWhat = "protocol";
  static constexpr std::array<EnumName<Protocol>, 3> kNames{
      {{Protocol::kBestOf10, "best_of_10"}, {Protocol::kFinal, "final"}, {Protocol::kValSelect, "val_select"}}};
  static constexpr std::array<EnumName<Protocol>, 0> kAliases{};
};

// The arithmetic of a job's forward passes: float32 (exact; the reference code's) or bfloat16
// autocast (harness/train/precision.h).
enum class Precision { kFp32, kBf16 };
template <>
struct EnumText<Precision> {
  static constexpr const char* kWhat = "precision";
  static constexpr std::array<EnumName<Precision>, 2> kNames{{{Precision::kFp32, "fp32"}, {Precision::kBf16, "bf16"}}};
  static constexpr std::array<EnumName<Precision>, 2> kAliases{
      {{Precision::kFp32, "float32"}, {Precision::kBf16, "bfloat16"}}};
};

// How a feature cache stores its values: float32 (training from it equals live training) or
// float16 (half the disk and memory).
enum class CacheDtype { kFloat32, kFloat16 };
template <>
struct EnumText<CacheDtype> {
  static constexpr const char* kWhat = "cache dtype";
  static constexpr std::array<EnumName<CacheDtype>, 2> kNames{
      {{CacheDtype::kFloat32, "float32"}, {CacheDtype::kFloat16, "float16"}}};
  static constexpr std::array<EnumName<CacheDtype>, 0> kAliases{};
};
inline int bytes_per_value(CacheDtype d) { return d == CacheDtype::kFloat16 ? 2 : 4; }

// What became of a job (results/record.h): trained and evaluated; failed (with its error); only
// resolved (--dry-run); or unable to train under its memory budget even one image at a time.
enum class RecordStatus { kOk, kFailed, kDryRun, kDoesNotFit };
template <>
struct EnumText<RecordStatus> {
  static constexpr const char* kWhat = "record status";
  static constexpr std::array<EnumName<RecordStatus>, 4> kNames{{{RecordStatus::kOk, "ok"},
                                                                 {RecordStatus::kFailed, "failed"},
                                                                 {RecordStatus::kDryRun, "dry_run"},
                                                                 {RecordStatus::kDoesNotFit, "does_not_fit"}}};
  static constexpr std::array<EnumName<RecordStatus>, 0> kAliases{};
};

// A method's training memory (docs/spec/baselines.md): nothing back-propagated through the
// backbone's token path (light), through part of it (partial), or through all of it (heavy).
enum class MemoryClass { kLight, kPartial, kHeavy };
template <>
struct EnumText<MemoryClass> {
  static constexpr const char* kWhat = "memory class";
  static constexpr std::array<EnumName<MemoryClass>, 3> kNames{
      {{MemoryClass::kLight, "light"}, {MemoryClass::kPartial, "partial"}, {MemoryClass::kHeavy, "heavy"}}};
  static constexpr std::array<EnumName<MemoryClass>, 0> kAliases{};
};

// How a checkpoint's position embeddings are resampled when its patch grid differs from the run's
// (DINOv2's 518-pixel 37×37 grid at 224 px: 16×16): timm 0.9.16's resample_abs_pos_embed (bicubic to
// the new size, antialias on; timm's default) or DINOv2's interpolate_pos_encoding (bicubic with scale
// factor (new + 0.1) / old, antialias off).
enum class PosResample { kTimm, kDinov2 };
template <>
struct EnumText<PosResample> {
  static constexpr const char* kWhat = "position-embedding resampling";
  static constexpr std::array<EnumName<PosResample>, 2> kNames{
      {{PosResample::kTimm, "timm"}, {PosResample::kDinov2, "dinov2"}}};
  static constexpr std::array<EnumName<PosResample>, 0> kAliases{};
};

// The benchmark a task belongs to: VTAB-1k (train800val200 / test lists per task folder) or NOAH's
// few-shot fine-grained classification (annotations/train_meta.list.num_shot_K.seed_S per dataset).
enum class Benchmark { kVtab, kFewshot };
template <>
struct EnumText<Benchmark> {
  static constexpr const char* kWhat = "benchmark";
  static constexpr std::array<EnumName<Benchmark>, 2> kNames{
      {{Benchmark::kVtab, "vtab"}, {Benchmark::kFewshot, "fewshot"}}};
  static constexpr std::array<EnumName<Benchmark>, 3> kAliases{
      {{Benchmark::kVtab, "vtab1k"}, {Benchmark::kVtab, "vtab-1k"}, {Benchmark::kFewshot, "few-shot"}}};
};

}  // namespace petl
