#include "datasets/suite_fewshot.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/text.h"
#include "datasets/suite_mini.h"
#include "datasets/vtab.h"

namespace petl::data {
namespace fs = std::filesystem;

namespace {

constexpr int kFewshotSuiteVersion = 1;

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// FNV-1a of the task name: the draws of one task do not depend on the others.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// Fisher-Yates with splitmix64 draws (bounded by rejection: unbiased and portable).
void shuffle(std::vector<size_t>& v, uint64_t seed) {
  for (size_t i = v.size(); i > 1; --i) {
    const uint64_t bound = uint64_t(i), limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = splitmix64(seed);
    while (r >= limit);
    std::swap(v[i - 1], v[size_t(r % bound)]);
  }
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  PETL_CHECK(!out.fail(), "build_fewshot_suite: cannot write ", p.string());
}

// "images/train800/000012.png" → "train800/000012.png" (NOAH joins <dataset>/images/<path>).
std::string noah_rel(const std::string& mini_rel) {
  return mini_rel.rfind("images/", 0) == 0 ? mini_rel.substr(7) : mini_rel;
}

void link_images(const std::vector<Sample>& samples, const fs::path& image_root) {
  for (const auto& s : samples) {
    const fs::path dst = image_root / noah_rel(s.rel_path);
    std::error_code ec;
    fs::create_directories(dst.parent_path(), ec);
    if (fs::exists(dst, ec)) continue;
    fs::create_hard_link(s.abs_path, dst, ec);
    if (ec) fs::copy_file(s.abs_path, dst, fs::copy_options::overwrite_existing);
  }
}

std::string list_text(const std::vector<const Sample*>& samples) {
  std::ostringstream os;
  for (const Sample* s : samples) os << noah_rel(s->rel_path) << ' ' << s->label << '\n';
  return os.str();
}

// K images of every class of the train list, drawn for (task, K, S); grouped by class.
std::string shot_list(const std::string& task, const std::vector<Sample>& train, int num_classes, int shots, int seed) {
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t i = 0; i < train.size(); ++i) by_class[train[i].label].push_back(i);
  std::vector<const Sample*> out;
  for (int c = 0; c < num_classes; ++c) {
    auto idx = by_class[c];
    PETL_CHECK(int(idx.size()) >= shots, "build_fewshot_suite: class ", c, " of mini task ", task, " has ", idx.size(),
               " train800 images, fewer than ", shots);
    shuffle(idx, name_hash(task) ^ (uint64_t(shots) << 40) ^ (uint64_t(seed) << 20) ^ uint64_t(c));
    for (int k = 0; k < shots; ++k) out.push_back(&train[idx[size_t(k)]]);
  }
  return list_text(out);
}

std::string all_lines(const std::vector<Sample>& samples) {
  std::vector<const Sample*> p;
  for (const auto& s : samples) p.push_back(&s);
  return list_text(p);
}

}  // namespace

const std::vector<int>& fewshot_suite_shots() {
  static const std::vector<int> v = {1, 2, 4, 8, 16};
  return v;
}
const std::vector<int>& fewshot_suite_seeds() {
  static const std::vector<int> v = {0, 1, 2};
  return v;
}

void build_fewshot_suite(const std::string& mini_dir, const std::string& out_dir) {
  PETL_CHECK(!out_dir.empty(), "build_fewshot_suite: empty output directory");
  for (const auto& spec : mini_suite_tasks()) {
    const TaskInfo task = find_task(mini_dir, spec.name);
    const auto train = read_split(task, "train800");
    const auto val = read_split(task, "val200");
    const auto test = read_split(task, "test");
    const fs::path dir = fs::path(out_dir) / spec.name;
    std::error_code ec;
    fs::create_directories(dir / "annotations", ec);
    PETL_CHECK(!ec, "build_fewshot_suite: cannot create ", (dir / "annotations").string(), ": ", ec.message());
    for (const auto* split : {&train, &val, &test}) link_images(*split, dir / "images");
    for (int k : fewshot_suite_shots())
      for (int s : fewshot_suite_seeds())
        write_file(dir / "annotations" / str_cat("train_meta.list.num_shot_", k, ".seed_", s),
                   shot_list(spec.name, train, spec.num_classes, k, s));
    write_file(dir / "annotations" / "val_meta.list", all_lines(val));
    write_file(dir / "annotations" / "test_meta.list", all_lines(test));
    nlohmann::ordered_json meta;
    meta["num_classes"] = spec.num_classes;
    meta["description"] = spec.description + " (few-shot lists drawn from its train800 list)";
    meta["suite"] = "mini_fewshot";
    meta["version"] = kFewshotSuiteVersion;
    write_file(dir / "petl_task.json", meta.dump(2) + "\n");
  }
}

}  // namespace petl::data
