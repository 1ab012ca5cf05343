#include "datasets/fewshot.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "core/error.h"
#include "core/hashing.h"
#include "core/text.h"

namespace petl::data {
namespace fs = std::filesystem;

namespace {

struct KnownDataset {
  const char* name;
  int num_classes;
};
// NOAH's lib/datasets.py hard-codes these counts (nb_classes by --data-set).
constexpr KnownDataset kDatasets[] = {
    {"fgvc_aircraft", 100},  {"food101", 101},       {"oxford_flowers102", 102},
    {"oxford_iiit_pet", 37}, {"stanford_cars", 196},
};

// Lower case, '-' and '_' removed: "Food-101" and "food_101" → "food101".
std::string squeezed(const std::string& s) {
  std::string k;
  for (char c : s)
    if (c != '-' && c != '_') k += char(std::tolower(static_cast<unsigned char>(c)));
  return k;
}

// Squeezed folder names of NOAH's repository (data/few-shot/), its scripts (--data-path) and the
// usual short names → canonical name.
const std::map<std::string, std::string>& alias_map() {
  static const std::map<std::string, std::string> m = {
      {"fgvcaircraft", "fgvc_aircraft"},
      {"aircraft", "fgvc_aircraft"},
      {"food101", "food101"},
      {"food", "food101"},
      {"oxfordflowers102", "oxford_flowers102"},
      {"oxfordflowers", "oxford_flowers102"},
      {"flowers102", "oxford_flowers102"},
      {"flowers", "oxford_flowers102"},
      {"oxfordpets", "oxford_iiit_pet"},
      {"oxfordpet", "oxford_iiit_pet"},
      {"oxfordiiitpet", "oxford_iiit_pet"},
      {"oxfordiiitpets", "oxford_iiit_pet"},
      {"pets", "oxford_iiit_pet"},
      {"stanfordcars", "stanford_cars"},
      {"standfordcars", "stanford_cars"},  // the folder's spelling in NOAH's repository
      {"cars", "stanford_cars"},
  };
  return m;
}

// A short decimal (list names carry K and S).
bool digits(const std::string& x) {
  return !x.empty() && x.size() < 9 && std::all_of(x.begin(), x.end(), [](char c) { return std::isdigit(c); });
}

fs::path annotations(const TaskInfo& t) { return fs::path(t.dir) / "annotations"; }

std::string train_list_name(int shots, int seed) { return str_cat("train_meta.list.num_shot_", shots, ".seed_", seed); }

// "train_meta.list.num_shot_<K>.seed_<S>" → (K, S).
bool parse_train_list_name(const std::string& name, int* shots, int* seed) {
  const std::string head = "train_meta.list.num_shot_";
  if (name.rfind(head, 0) != 0) return false;
  const size_t dot = name.find(".seed_", head.size());
  if (dot == std::string::npos) return false;
  const std::string k = name.substr(head.size(), dot - head.size()), s = name.substr(dot + 6);
  if (!digits(k) || !digits(s)) return false;
  *shots = std::stoi(k);
  *seed = std::stoi(s);
  return *shots > 0;
}

std::vector<std::pair<int, int>> train_lists(const TaskInfo& t) {
  std::vector<std::pair<int, int>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(annotations(t), ec)) {
    int k = 0, s = 0;
    if (e.is_regular_file(ec) && parse_train_list_name(e.path().filename().string(), &k, &s)) out.emplace_back(k, s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// NOAH joins <dataset>/images/<path>, except for Stanford Cars (<dataset>/<path>: cars_train/...).
std::string image_dir(const TaskInfo& t) {
  return t.name == "stanford_cars" ? t.dir : (fs::path(t.dir) / "images").string();
}

std::string read_file_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  PETL_CHECK(f.good(), "cannot open ", path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<Sample> read_list(const TaskInfo& t, const std::string& file, const std::string& split) {
  std::error_code ec;
  PETL_CHECK(fs::is_regular_file(file, ec), "missing list file ", file, " for few-shot dataset '", t.name, "' (split ",
             split, ")");
  auto samples = parse_list_lines(file, read_file_text(file), t.num_classes, image_dir(t));
  PETL_CHECK(!samples.empty(), "list file ", file, " of few-shot dataset '", t.name,
             "' lists no sample: expected one `<path> <label>` line per image");
  return samples;
}

// Every class of [0, C) holds at least `shots` distinct images of the K-shot list (NOAH's 1-shot pets
// list names each image twice: duplicates are kept, as NOAH trains on them, but count once).
void check_shots(const TaskInfo& t, const std::vector<Sample>& samples, int shots, const std::string& file) {
  int classes = t.num_classes;
  for (const auto& s : samples) classes = std::max<int>(classes, int(s.label) + 1);
  std::vector<std::set<std::string>> per_class(static_cast<size_t>(classes));
  for (const auto& s : samples) per_class[size_t(s.label)].insert(s.rel_path);
  std::vector<std::string> short_classes;
  for (int c = 0; c < classes; ++c)
    if (int(per_class[size_t(c)].size()) < shots)
      short_classes.push_back(str_cat("class ", c, " has ", per_class[size_t(c)].size()));
  if (short_classes.empty()) return;
  const size_t shown = std::min<size_t>(short_classes.size(), 8);
  PETL_FAIL(file, ": ", short_classes.size(), " of the ", classes, " classes have fewer distinct images than the ",
            shots, " shots of the list: ",
            join(std::vector<std::string>(short_classes.begin(), short_classes.begin() + long(shown)), "; "),
            short_classes.size() > shown ? "; ..." : "", " (a ", shots, "-shot list holds ", shots,
            " images of every class)");
}

TaskInfo make_info(const fs::path& dir, const std::string& canonical) {
  TaskInfo info;
  info.name = canonical;
  info.dir = dir.string();
  info.format = kFewshotFormat;
  info.num_classes = fewshot_known_num_classes(canonical);
  // A dataset of one's own (the embedded few-shot set) declares its classes as a VTAB task folder does.
  std::error_code ec;
  if (info.num_classes < 0 && fs::exists(dir / "petl_task.json", ec)) {
    const TaskInfo declared = read_task_metadata(dir.string(), canonical);
    info.num_classes = declared.num_classes;
    info.description = declared.description;
  }
  return info;
}

bool is_dataset_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "annotations" / "test_meta.list", ec);
}

}  // namespace

const std::vector<std::string>& fewshot_dataset_names() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> n;
    for (const auto& d : kDatasets) n.emplace_back(d.name);
    return n;
  }();
  return v;
}

int fewshot_known_num_classes(const std::string& canonical) {
  for (const auto& d : kDatasets)
    if (canonical == d.name) return d.num_classes;
  return -1;
}

std::string canonical_fewshot_name(const std::string& name) {
  auto it = alias_map().find(squeezed(name));
  return it != alias_map().end() ? it->second : name;
}

std::string fewshot_train_split(int shots, int split_seed) { return str_cat("train_", shots, "shot_seed", split_seed); }

bool parse_fewshot_train_split(const std::string& split, int* shots, int* split_seed) {
  const size_t shot = split.find("shot_seed");
  if (split.rfind("train_", 0) != 0 || shot == std::string::npos) return false;
  const std::string k = split.substr(6, shot - 6), s = split.substr(shot + 9);
  if (!digits(k) || !digits(s)) return false;
  *shots = std::stoi(k);
  *split_seed = std::stoi(s);
  return *shots > 0;
}

TaskInfo find_fewshot_dataset(const std::string& root, const std::string& dataset) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw ArgumentError(str_cat("few-shot root ", root, " is not a directory"));
  const std::string canonical = canonical_fewshot_name(dataset);
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec)) folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  std::string without_lists;
  for (const auto& dir : folders) {
    const std::string f = dir.filename().string();
    if (f != dataset && canonical_fewshot_name(f) != canonical) continue;
    if (is_dataset_dir(dir)) return make_info(dir, canonical);
    if (without_lists.empty()) without_lists = dir.string();
  }
  if (!without_lists.empty())
    throw ArgumentError(str_cat("few-shot dataset folder ", without_lists,
                                " has no annotations/test_meta.list: expected NOAH's layout (annotations/"
                                "train_meta.list.num_shot_<K>.seed_<S>, val_meta.list, test_meta.list)"));
  std::vector<std::string> present, names = fewshot_dataset_names();
  for (const auto& dir : folders) present.push_back(dir.filename().string());
  names.insert(names.end(), present.begin(), present.end());
  throw ArgumentError(str_cat("few-shot dataset '", dataset, "' not found under ", root, did_you_mean(dataset, names),
                              " (NOAH's folder names and aliases of '", canonical,
                              "' were tried); folders present: ", present.empty() ? "none" : join(present, ", ")));
}

FewshotDatasetListing describe_fewshot_dataset(const TaskInfo& task) {
  FewshotDatasetListing l;
  l.task = task;
  l.train_lists = train_lists(task);
  std::error_code ec;
  auto lines = [&](const char* name) -> int64_t {
    const fs::path p = annotations(task) / name;
    return fs::is_regular_file(p, ec) ? int64_t(read_list(task, p.string(), name).size()) : -1;
  };
  l.val_lines = lines("val_meta.list");
  l.test_lines = lines("test_meta.list");
  std::set<int64_t> labels;
  for (const auto& s : read_list(task, (annotations(task) / "test_meta.list").string(), "test")) labels.insert(s.label);
  l.test_classes = int(labels.size());
  return l;
}

std::vector<FewshotDatasetListing> list_fewshot_datasets(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw ArgumentError(str_cat("few-shot root ", root, " is not a directory"));
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec) && is_dataset_dir(e.path())) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  std::vector<FewshotDatasetListing> out;
  for (const auto& d : dirs)
    out.push_back(describe_fewshot_dataset(make_info(d, canonical_fewshot_name(d.filename().string()))));
  return out;
}

std::string fewshot_list_file(const TaskInfo& task, const std::string& split) {
  int k = 0, s = 0;
  if (parse_fewshot_train_split(split, &k, &s)) return (annotations(task) / train_list_name(k, s)).string();
  if (split == "val") return (annotations(task) / "val_meta.list").string();
  if (split == "test") return (annotations(task) / "test_meta.list").string();
  PETL_CHECK(split == kFewshotPoolSplit, "unknown split '", split, "' of few-shot dataset '", task.name,
             "': expected train_<K>shot_seed<S> (e.g. train_4shot_seed1), val, test or train_pool");
  return "";
}

std::vector<Sample> read_fewshot_split(const TaskInfo& task, const std::string& split) {
  const std::string file = fewshot_list_file(task, split);
  int k = 0, s = 0;
  if (!file.empty()) {
    auto samples = read_list(task, file, split);
    if (parse_fewshot_train_split(split, &k, &s)) check_shots(task, samples, k, file);
    return samples;
  }
  // train_pool: every train list, first occurrence of each image; one image with two labels is an error.
  const auto lists = train_lists(task);
  PETL_CHECK(!lists.empty(), "few-shot dataset '", task.name, "' has no train list in ", annotations(task).string(),
             " (expected train_meta.list.num_shot_<K>.seed_<S>)");
  std::vector<Sample> pool;
  std::map<std::string, size_t> row;
  for (const auto& [shots, seed] : lists)
    for (auto& smp : read_list(task, (annotations(task) / train_list_name(shots, seed)).string(), split)) {
      auto [it, fresh] = row.emplace(smp.rel_path, pool.size());
      if (fresh) {
        pool.push_back(std::move(smp));
        continue;
      }
      const Sample& first = pool[it->second];
      PETL_CHECK(first.label == smp.label, sample_location(smp), ": ", smp.rel_path, " has label ", smp.label,
                 " but label ", first.label, " at ", sample_location(first));
    }
  return pool;
}

std::string fewshot_split_sha256(const TaskInfo& task, const std::string& split) {
  const std::string file = fewshot_list_file(task, split);
  if (!file.empty()) return sha256_file(file);
  std::string text;
  for (const auto& [shots, seed] : train_lists(task)) {
    const std::string name = train_list_name(shots, seed);
    text += name + " " + sha256_file((annotations(task) / name).string()) + "\n";
  }
  return sha256_string(text);
}

std::vector<int64_t> fewshot_pool_rows(const TaskInfo& task, const std::string& split) {
  std::map<std::string, int64_t> row;
  const auto pool = read_fewshot_split(task, kFewshotPoolSplit);
  for (size_t i = 0; i < pool.size(); ++i) row.emplace(pool[i].rel_path, int64_t(i));
  std::vector<int64_t> out;
  for (const auto& s : read_fewshot_split(task, split)) {
    auto it = row.find(s.rel_path);
    PETL_CHECK(it != row.end(), sample_location(s), ": ", s.rel_path, " is not in the train pool of '", task.name,
               "' (only train lists are subsets of it)");
    out.push_back(it->second);
  }
  return out;
}

void check_split_images_exist(const TaskInfo& task, const std::string& split) {
  std::error_code ec;
  std::vector<std::string> missing;
  size_t count = 0;
  for (const auto& s : read_split(task, split))
    if (!fs::is_regular_file(s.abs_path, ec) && count++ < 5) missing.push_back(sample_location(s) + " " + s.abs_path);
  PETL_CHECK(count == 0, task.name, " (", split, " split): ", count, " listed image", count == 1 ? " is" : "s are",
             " missing on disk, e.g. ", join(missing, "; "), " (checked before any training)");
}

}  // namespace petl::data
