// VTAB-1k on-disk readers (docs/spec/vtab1k.md): task names, folder aliases and class counts; the
// NOAH/PETL-ViT "txt" lists and SynQT's "json" lists with file:line errors; and parallel
// decode → PIL bicubic resize → normalise loading into one float array in list order.
#include "datasets/vtab.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/hashing.h"
#include "core/progress.h"
#include "core/text.h"
#include "datasets/fewshot.h"

namespace fs = std::filesystem;

namespace petl::data {
namespace {

struct TaskEntry {
  const char* name;
  int num_classes;
  int64_t test_size;  // images in the task's full test split
};
// docs/spec/vtab1k.md, table order: natural (7), specialized (4), structured (8). The test sizes
// are VTAB's own: `expected_num_samples(test=...)` of google-research/task_adaptation's
// task_adaptation/data/<task>_test.py (read in the copy vendored by ZhangYuanhan-AI/NOAH at
// e9c55f3, data/vtab-source/task_adaptation/data/): cifar_test.py:59 (cifar100), caltech_test.py:40,
// dtd_test.py:37, oxford_flowers102_test.py:41, oxford_iiit_pet_test.py:37, svhn_test.py:41,
// sun397_test.py:37, patch_camelyon_test.py:37, eurosat_test.py:37, resisc45_test.py:37,
// diabetic_retinopathy_test.py:39, clevr_test.py:37 (count_all) and :83 (closest_object_distance),
// dmlab_test.py:41, kitti_test.py:198 (closest_vehicle_distance), dsprites_test.py:108 (x position)
// and :85 (orientation), smallnorb_test.py:85 (azimuth) and :62 (elevation).
constexpr TaskEntry kTasks[] = {
    {"cifar", 100, 10000},
    {"caltech101", 102, 6084},
    {"dtd", 47, 1880},
    {"oxford_flowers102", 102, 6149},
    {"oxford_iiit_pet", 37, 3669},
    {"svhn", 10, 26032},
    {"sun397", 397, 21750},
    {"patch_camelyon", 2, 32768},
    {"eurosat", 10, 5400},
    {"resisc45", 45, 6300},
    {"diabetic_retinopathy", 5, 42670},
    {"clevr_count", 8, 15000},
    {"clevr_dist", 6, 15000},
    {"dmlab", 6, 22735},
    {"kitti", 4, 711},
    {"dsprites_loc", 16, 73728},
    {"dsprites_ori", 16, 73728},
    {"smallnorb_azi", 18, 12150},
    {"smallnorb_ele", 9, 12150},
};

// Folder names seen in the wild (lower case, '_' for '-') → canonical task name.
const std::vector<std::pair<std::string, std::string>>& alias_table() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"cifar100", "cifar"},
      {"cifar_100", "cifar"},
      {"oxford_pet", "oxford_iiit_pet"},
      {"oxford_pets", "oxford_iiit_pet"},
      {"pets", "oxford_iiit_pet"},
      {"oxford_iiit_pets", "oxford_iiit_pet"},
      {"flowers102", "oxford_flowers102"},
      {"flowers", "oxford_flowers102"},
      {"oxford_flowers", "oxford_flowers102"},
      {"caltech", "caltech101"},
      {"caltech_101", "caltech101"},
      {"svhn_cropped", "svhn"},
      {"sun_397", "sun397"},
      {"pcam", "patch_camelyon"},
      {"camelyon", "patch_camelyon"},
      {"resisc", "resisc45"},
      {"diabetic_retinopathy_detection", "diabetic_retinopathy"},
      {"retinopathy", "diabetic_retinopathy"},
      {"clevr_distance", "clevr_dist"},
      {"dsprites_location", "dsprites_loc"},
      {"dsprites_orientation", "dsprites_ori"},
      {"smallnorb_azimuth", "smallnorb_azi"},
      {"smallnorb_elevation", "smallnorb_ele"},
  };
  return table;
}

std::string normalise_key(const std::string& name) {
  std::string k = name;
  for (char& c : k) c = (c == '-') ? '_' : char(std::tolower(static_cast<unsigned char>(c)));
  return k;
}

std::string hyphenated(std::string s) {
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

const char* const kSplits[] = {"train800", "val200", "train800val200", "test"};

// "txt" / "json" from the list files present in dir, or "" when it holds none. txt wins when
// both exist; any of the four txt lists counts (a train800 + val200 folder is usable for tuning).
std::string detect_format(const fs::path& dir) {
  std::error_code ec;
  for (const char* split : kSplits)
    if (fs::is_regular_file(dir / (std::string(split) + ".txt"), ec)) return "txt";
  if (fs::is_regular_file(dir / "train800val200.json", ec) || fs::is_regular_file(dir / "test.json", ec)) return "json";
  return "";
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) PETL_FAIL("cannot open ", path, ": ", std::strerror(errno));
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Builds the TaskInfo of an existing folder; reads <dir>/petl_task.json when present.
TaskInfo make_task_info(const fs::path& dir, const std::string& name, const std::string& format) {
  TaskInfo info = read_task_metadata(dir.string(), name);
  info.dir = dir.string();
  info.format = format;
  return info;
}

std::string list_path(const TaskInfo& task, const std::string& split) {
  return (fs::path(task.dir) / (split + "." + task.format)).string();
}

// Location of a sample for messages: "list.txt:12" or "list.json[11]".
std::string where(const Sample& s) {
  const bool json = s.list_file.size() >= 5 && s.list_file.compare(s.list_file.size() - 5, 5, ".json") == 0;
  return json ? str_cat(s.list_file, "[", s.line - 1, "]") : str_cat(s.list_file, ":", s.line);
}

// Strict decimal integer (optional sign, digits only, fits int64).
bool parse_int64(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t k = i; k < s.size(); ++k)
    if (!std::isdigit(static_cast<unsigned char>(s[k]))) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

void check_label(int64_t label, int num_classes, const std::string& loc, const std::string& content) {
  PETL_CHECK(label >= 0, loc, ": negative label ", label, " in '", content, "'");
  PETL_CHECK(num_classes <= 0 || label < num_classes, loc, ": label ", label, " out of range [0, ", num_classes,
             ") in '", content, "'");
}

std::vector<Sample> parse_txt(const TaskInfo& task, const std::string& file, const std::string& text) {
  return parse_list_lines(file, text, task.num_classes, task.dir);
}

std::vector<Sample> parse_json(const TaskInfo& task, const std::string& file, const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    PETL_FAIL(file, ": invalid JSON: ", e.what());
  }
  PETL_CHECK(j.is_array(), file, ": expected a JSON list of {\"<relpath>\": label} objects, got ", j.type_name());
  std::vector<Sample> out;
  out.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& el = j[i];
    const std::string loc = str_cat(file, "[", i, "]");
    PETL_CHECK(el.is_object() && el.size() == 1, loc, ": expected a one-key object {\"<relpath>\": label}, got ",
               el.dump());
    const std::string rel = el.begin().key();
    const auto& v = el.begin().value();
    const std::string content = el.dump();
    PETL_CHECK(!rel.empty(), loc, ": empty image path in ", content);
    Sample s;
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      s.label = u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max() : int64_t(u);
    } else if (v.is_number_integer()) {
      s.label = v.get<int64_t>();
    } else {
      PETL_FAIL(loc, ": label ", v.dump(), " is not an integer in ", content);
    }
    check_label(s.label, task.num_classes, loc, content);
    s.rel_path = rel;
    s.abs_path = (fs::path(task.dir) / "images" / rel).string();
    s.list_file = file;
    s.line = int(i) + 1;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------ names and class counts

TaskInfo read_task_metadata(const std::string& dir_text, const std::string& name) {
  const fs::path dir(dir_text);
  TaskInfo info;
  info.name = name;
  info.num_classes = known_num_classes(name);
  const fs::path meta = dir / "petl_task.json";
  std::error_code ec;
  if (!fs::exists(meta, ec)) return info;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(meta.string()));
  } catch (const nlohmann::json::exception& e) {
    PETL_FAIL(meta.string(), ": invalid JSON: ", e.what());
  }
  PETL_CHECK(j.is_object(), meta.string(), ": expected an object {\"num_classes\": C, \"description\": ...}, got ",
             j.type_name());
  if (j.contains("num_classes")) {
    const auto& c = j["num_classes"];
    PETL_CHECK(c.is_number_integer() && c.get<int64_t>() > 0 && c.get<int64_t>() <= std::numeric_limits<int>::max(),
               meta.string(), ": num_classes must be a positive integer, got ", c.dump());
    const int declared = c.get<int>();
    PETL_CHECK(info.num_classes < 0 || info.num_classes == declared, "class-count mismatch: ", meta.string(),
               " says num_classes = ", declared, " but VTAB-1k task '", name, "' has ", info.num_classes, " classes");
    info.num_classes = declared;
  }
  if (j.contains("description")) {
    PETL_CHECK(j["description"].is_string(), meta.string(), ": description must be a string, got ",
               j["description"].dump());
    info.description = j["description"].get<std::string>();
  }
  return info;
}

std::vector<Sample> parse_list_lines(const std::string& file, const std::string& text, int num_classes,
                                     const std::string& image_dir) {
  std::vector<Sample> out;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty()) continue;

    const std::string loc = str_cat(file, ":", line_no);
    const auto fields = split_whitespace(line);
    PETL_CHECK(fields.size() == 2, loc, ": malformed line '", line, "': expected `<path> <label>` (two fields, got ",
               fields.size(), ")");
    const std::string& rel = fields[0];
    const std::string& token = fields[1];
    Sample s;
    PETL_CHECK(parse_int64(token, &s.label), loc, ": label '", token, "' is not an integer in '", line, "'");
    check_label(s.label, num_classes, loc, line);
    s.rel_path = rel;
    s.abs_path = (fs::path(image_dir) / rel).string();
    s.list_file = file;
    s.line = line_no;
    out.push_back(std::move(s));
  }
  return out;
}

int known_num_classes(const std::string& canonical_task) {
  for (const auto& t : kTasks)
    if (canonical_task == t.name) return t.num_classes;
  return -1;
}

std::string canonical_task_name(const std::string& name) {
  const std::string key = normalise_key(name);
  if (known_num_classes(key) > 0) return key;
  for (const auto& [alias, canonical] : alias_table())
    if (key == alias) return canonical;
  return name;
}

int64_t vtab_split_size(const std::string& canonical_task, const std::string& split) {
  for (const auto& t : kTasks) {
    if (canonical_task != t.name) continue;
    if (split == "train800") return 800;
    if (split == "val200") return 200;
    if (split == "train800val200") return 1000;
    if (split == "test") return t.test_size;
  }
  return -1;
}

bool vtab_train_split_lacks_classes(const std::string& canonical_task) {
  // google-research/task_adaptation issue #21 (opened by VPT's author, 2022-01-24): SUN397's
  // VTAB-1k split holds 309 of the 397 classes in train800 and 325 in train800val200 (it is
  // train[:800] + validation[:200] of TFDS sun397, not stratified). Every other task's train
  // splits hold every class.
  return canonical_task == "sun397";
}

std::vector<int> missing_classes(const std::vector<Sample>& samples, int num_classes) {
  std::vector<char> seen(size_t(std::max(num_classes, 0)), 0);
  for (const auto& s : samples)
    if (s.label >= 0 && s.label < num_classes) seen[size_t(s.label)] = 1;
  std::vector<int> out;
  for (int c = 0; c < num_classes; ++c)
    if (!seen[size_t(c)]) out.push_back(c);
  return out;
}

std::string class_list_text(const std::vector<int>& classes, size_t max_items) {
  std::string out;
  size_t items = 0, i = 0;
  while (i < classes.size()) {
    size_t j = i;
    while (j + 1 < classes.size() && classes[j + 1] == classes[j] + 1) ++j;
    if (items == max_items) {
      out += str_cat(", ... (", classes.size(), " in all)");
      break;
    }
    out += (out.empty() ? "" : ", ") +
           (j == i ? std::to_string(classes[i]) : str_cat(classes[i], j == i + 1 ? ", " : "-", classes[j]));
    ++items;
    i = j + 1;
  }
  return out;
}

std::string sample_location(const Sample& s) { return where(s); }

const std::vector<std::string>& vtab_task_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& t : kTasks) v.emplace_back(t.name);
    return v;
  }();
  return names;
}

// ------------------------------------------------------------------ finding tasks

TaskInfo find_task(const std::string& root, const std::string& task) {
  std::error_code ec;
  PETL_CHECK(fs::is_directory(root, ec), "VTAB root ", root, " is not a directory");
  const std::string canonical = canonical_task_name(task);

  // Folder names to try: as given, canonical, then every alias of the canonical name, each
  // also with '-' in place of '_'.
  std::vector<std::string> candidates = {task, canonical, hyphenated(canonical)};
  for (const auto& [alias, target] : alias_table())
    if (target == canonical) {
      candidates.push_back(alias);
      candidates.push_back(hyphenated(alias));
    }
  std::vector<std::string> tried;
  for (const auto& c : candidates)
    if (std::find(tried.begin(), tried.end(), c) == tried.end()) tried.push_back(c);

  std::string empty_dir;  // an existing folder without list files, for the error message
  for (const auto& folder : tried) {
    const fs::path dir = fs::path(root) / folder;
    if (!fs::is_directory(dir, ec)) continue;
    const std::string format = detect_format(dir);
    if (!format.empty()) return make_task_info(dir, canonical, format);
    if (empty_dir.empty()) empty_dir = dir.string();
  }
  PETL_CHECK(empty_dir.empty(), "task folder ", empty_dir,
             " holds no list file: expected {train800,val200,train800val200,test}.txt (txt format) "
             "or {train800val200,test}.json (json format)");

  std::vector<std::string> existing;
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (entry.is_directory(ec)) existing.push_back(entry.path().filename().string());
  std::sort(existing.begin(), existing.end());
  std::string tried_s, existing_s;
  for (const auto& t : tried) tried_s += (tried_s.empty() ? "" : ", ") + t;
  for (const auto& e : existing) existing_s += (existing_s.empty() ? "" : ", ") + e;
  std::vector<std::string> names = existing;  // what the user may have meant: a folder or a VTAB name
  for (const auto& n : vtab_task_names()) names.push_back(n);
  throw ArgumentError(str_cat("VTAB task '", task, "' not found under ", root, did_you_mean(task, names),
                              " (tried folders: ", tried_s,
                              "); folders present: ", existing.empty() ? "none" : existing_s));
}

std::string list_format(const std::string& dir) { return detect_format(dir); }

TaskInfo read_task_folder(const std::string& dir) {
  const std::string format = detect_format(dir);
  PETL_CHECK(!format.empty(), "task folder ", dir,
             " holds no list file: expected {train800,val200,train800val200,test}.txt (txt format) "
             "or {train800val200,test}.json (json format)");
  const fs::path p = fs::path(dir).lexically_normal();
  const std::string folder = p.has_filename() ? p.filename().string() : p.parent_path().filename().string();
  return make_task_info(p, canonical_task_name(folder), format);
}

std::vector<TaskInfo> list_tasks(const std::string& root) {
  std::error_code ec;
  PETL_CHECK(fs::is_directory(root, ec), "VTAB root ", root, " is not a directory");
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (entry.is_directory(ec)) dirs.push_back(entry.path());
  std::vector<TaskInfo> out;
  for (const auto& dir : dirs) {
    const std::string format = detect_format(dir);
    if (format.empty()) continue;
    out.push_back(make_task_info(dir, canonical_task_name(dir.filename().string()), format));
  }
  std::sort(out.begin(), out.end(),
            [](const TaskInfo& a, const TaskInfo& b) { return a.name != b.name ? a.name < b.name : a.dir < b.dir; });
  return out;
}

// ------------------------------------------------------------------ lists

std::vector<Sample> read_split(const TaskInfo& task, const std::string& split) {
  if (task.format == kFewshotFormat) return read_fewshot_split(task, split);
  PETL_CHECK(std::find(std::begin(kSplits), std::end(kSplits), split) != std::end(kSplits), "unknown split '", split,
             "': expected train800, val200, train800val200 or test");
  PETL_CHECK(task.format == "txt" || task.format == "json", "task '", task.name, "': unknown list format '",
             task.format, "' (expected txt or json)");
  const std::string file = list_path(task, split);
  std::error_code ec;
  PETL_CHECK(fs::is_regular_file(file, ec), "missing list file ", file, " for task '", task.name, "' (", task.format,
             " format", task.format == "json" ? ", which has only train800val200 and test)" : ")");
  const std::string text = read_text_file(file);
  auto samples = task.format == "txt" ? parse_txt(task, file, text) : parse_json(task, file, text);
  PETL_CHECK(!samples.empty(), "list file ", file, " of task '", task.name, "' lists no sample (an empty ", split,
             " split): expected one `<path> <label>` ", task.format == "txt" ? "line" : "entry", " per image");
  return samples;
}

// ------------------------------------------------------------------ loading

std::string split_list_sha256(const TaskInfo& task, const std::string& split) {
  return task.format == kFewshotFormat ? fewshot_split_sha256(task, split) : sha256_file(list_path(task, split));
}

int64_t count_samples(const TaskInfo& task, const std::string& split) {
  return int64_t(read_split(task, split).size());
}

LoadedSplit load_split(const TaskInfo& task, const std::string& split, const LoadOptions& opts) {
  PETL_CHECK(opts.image_size > 0, "load_split: image_size must be positive, got ", opts.image_size);
  std::vector<Sample> samples = read_split(task, split);
  PETL_CHECK(opts.offset >= 0, "load_split: offset must be >= 0, got ", opts.offset);
  samples.erase(samples.begin(), samples.begin() + std::min<size_t>(size_t(opts.offset), samples.size()));
  if (opts.limit >= 0 && size_t(opts.limit) < samples.size()) samples.resize(size_t(opts.limit));

  LoadedSplit out;
  out.image_size = opts.image_size;
  out.list_sha256 = split_list_sha256(task, split);
  const int64_t n = int64_t(samples.size());
  const int s = opts.image_size;
  const size_t per_image = size_t(3) * s * s;
  out.pixels.resize(size_t(n) * per_image);

  int threads = opts.threads > 0 ? opts.threads : int(std::thread::hardware_concurrency());
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n)));

  // Workers claim indices in increasing order, so the claimed ones always form a prefix of the
  // list: after an abort, the lowest failed index is the first bad sample in list order.
  const size_t count = samples.size();
  std::vector<std::string> errors(count);
  std::vector<char> ok(count, 0);
  std::atomic<int64_t> next{0};
  std::atomic<bool> abort{false};
  ProgressBar bar("load " + task.name + "/" + split, n, opts.progress);
  auto worker = [&] {
    while (!abort.load()) {
      const int64_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        Image8 img = decode_image_file(samples[size_t(i)].abs_path);
        if (img.width != s || img.height != s) img = resize_bicubic_pil(img, s, s);
        to_normalised_chw(img, opts.norm, out.pixels.data() + size_t(i) * per_image);
        ok[size_t(i)] = 1;
      } catch (const std::exception& e) {
        errors[size_t(i)] = e.what();
        if (!opts.skip_bad) abort = true;
      }
      bar.add(1);
    }
  };
  if (threads == 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  bar.finish();

  // Keep the good samples in list order (in place: a kept sample only ever moves forward).
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Sample& smp = samples[size_t(i)];
    if (!ok[size_t(i)]) {
      if (errors[size_t(i)].empty()) continue;  // never claimed (only after an abort)
      if (!opts.skip_bad) PETL_FAIL("cannot load sample ", where(smp), " ", smp.rel_path, ": ", errors[size_t(i)]);
      out.skipped.push_back(str_cat(where(smp), " ", smp.rel_path, ": ", errors[size_t(i)]));
      continue;
    }
    if (kept != i)
      std::copy_n(out.pixels.data() + size_t(i) * per_image, per_image, out.pixels.data() + size_t(kept) * per_image);
    out.labels.push_back(smp.label);
    out.rel_paths.push_back(smp.rel_path);
    ++kept;
  }
  out.n = kept;
  out.pixels.resize(size_t(kept) * per_image);
  return out;
}

}  // namespace petl::data
