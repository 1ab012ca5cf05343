// `petl data check` (see vtab_check.h): finds the task folders of a root, reads every list without
// stopping at the first bad line's neighbours, compares counts and classes with VTAB-1k's, and
// decodes every listed image once on a pool of threads, each finding naming list:line and path.
#include "datasets/vtab_check.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/hashing.h"
#include "core/progress.h"
#include "core/text.h"
#include "datasets/image.h"
#include "datasets/vtab.h"

namespace fs = std::filesystem;

namespace petl::data {
using json = nlohmann::json;

namespace {

const std::vector<std::string> kTxtSplits = {"train800", "val200", "train800val200", "test"};
const std::vector<std::string> kJsonSplits = {"train800val200", "test"};

// The splits petl trains and tests on (every recipe: config/recipes.yaml); the other two only
// serve tuning on train800 → val200 (VPT's protocol).
bool required_split(const std::string& split) { return split == "train800val200" || split == "test"; }
bool train_split(const std::string& split) { return split == "train800" || split == "train800val200"; }

DataIssue make_issue(std::string kind, bool problem, std::string message, const Sample* s = nullptr,
                     std::string list = "") {
  DataIssue i;
  i.kind = std::move(kind);
  i.problem = problem;
  i.message = std::move(message);
  i.list = s ? s->list_file : std::move(list);
  if (s) {
    i.line = s->line;
    i.path = s->rel_path;
  }
  return i;
}

std::string normal_path(const std::string& p) { return fs::path(p).lexically_normal().string(); }

// One image file and every line that lists it.
struct ImageJob {
  std::string path;                   // normalised absolute path
  std::vector<const Sample*> listed;  // list order; the first names the issue
  bool decode = true;                 // false (quick): existence only
  bool ok = false, missing = false;
  std::string error;
};

struct TaskWork {
  TaskCheck check;
  TaskInfo info;
  std::vector<std::vector<Sample>> samples;  // per check.splits entry; empty when unreadable
  std::vector<ImageJob> images;
};

// ------------------------------------------------------------------ lists

void read_lists(TaskWork& w) {
  TaskCheck& c = w.check;
  const auto& splits = w.info.format == "json" ? kJsonSplits : kTxtSplits;
  for (const auto& split : splits) {
    SplitCheck sc;
    sc.split = split;
    sc.list = (fs::path(w.info.dir) / (split + "." + w.info.format)).string();
    sc.expected = c.vtab ? vtab_split_size(c.name, split) : -1;
    std::error_code ec;
    sc.present = fs::is_regular_file(sc.list, ec);
    std::vector<Sample> samples;
    if (!sc.present) {
      if (required_split(split))
        c.issues.push_back(make_issue("missing_list", true,
                                      str_cat("missing list file ", sc.list, ": every petl recipe trains on ",
                                              "train800val200 and tests on test"),
                                      nullptr, sc.list));
      else
        c.issues.push_back(make_issue(
            "missing_list", false,
            str_cat("no ", sc.list, ": only needed to tune on train800 and validate on val200 (VPT's protocol)"),
            nullptr, sc.list));
    } else {
      TaskInfo unchecked = w.info;  // labels are range-checked below, every one of them
      unchecked.num_classes = -1;
      try {
        samples = read_split(unchecked, split);
        sc.readable = true;
        sc.lines = int64_t(samples.size());
        sc.sha256 = sha256_file(sc.list);
      } catch (const Error& e) {
        c.issues.push_back(make_issue("list", true, e.what(), nullptr, sc.list));
      }
    }
    if (sc.readable && sc.expected >= 0 && sc.lines != sc.expected)
      c.issues.push_back(make_issue(
          "count", true,
          str_cat(sc.list, ": ", sc.lines, " samples, but VTAB-1k's ", split, " of ", c.name, " has ", sc.expected,
                  sc.lines < sc.expected ? " (a partial download or extraction?)" : " (extra lines?)"),
          nullptr, sc.list));
    c.splits.push_back(std::move(sc));
    w.samples.push_back(std::move(samples));
  }
}

// The class count the checks use: declared (VTAB table, petl_task.json) or, as petl run takes it,
// the highest label of train800val200 + 1. `top` receives that label's sample.
int class_count(TaskWork& w, const Sample** top) {
  TaskCheck& c = w.check;
  *top = nullptr;
  if (w.info.num_classes > 0) {
    c.classes_from = known_num_classes(c.name) > 0 ? "VTAB-1k" : "petl_task.json";
    return w.info.num_classes;
  }
  for (size_t k = 0; k < c.splits.size(); ++k) {
    if (c.splits[k].split != "train800val200" || w.samples[k].empty()) continue;
    for (const auto& s : w.samples[k])
      if (!*top || s.label > (*top)->label) *top = &s;
  }
  if (!*top) return -1;
  c.classes_from = "train labels";
  return int(std::min<int64_t>((*top)->label + 1, 1 << 30));
}

void check_classes(TaskWork& w) {
  TaskCheck& c = w.check;
  const Sample* top = nullptr;
  const int n = class_count(w, &top);
  c.num_classes = n;
  if (n <= 0) return;
  const std::string declared_by =
      top ? str_cat("the ", n, " classes [0, ", n, ") of the train list ", top->list_file,
                    " (the task declares no class count: add ", c.folder, "/petl_task.json {\"num_classes\": C})")
          : str_cat("the ", n, " classes [0, ", n, ") of task '", c.name, "' (", c.classes_from, ")");
  for (size_t k = 0; k < c.splits.size(); ++k) {
    SplitCheck& sc = c.splits[k];
    if (!sc.readable) continue;
    std::set<int64_t> seen;
    for (const auto& s : w.samples[k]) {
      if (s.label < n) {
        seen.insert(s.label);
        continue;
      }
      ++sc.out_of_range;
      c.issues.push_back(make_issue(
          "label_range", true,
          str_cat(sample_location(s), " ", s.rel_path, ": label ", s.label, " is outside ", declared_by), &s));
    }
    sc.classes_seen = int(seen.size());
    if (!train_split(sc.split)) continue;
    sc.missing_classes = missing_classes(w.samples[k], n);
    if (sc.missing_classes.empty()) continue;
    const bool expected = vtab_train_split_lacks_classes(c.name);
    std::string msg = str_cat(sc.list, ": ", sc.missing_classes.size(), " of the ", n,
                              " classes have no training image: ", class_list_text(sc.missing_classes));
    if (top)
      msg += str_cat(" (the class count ", n, " comes from the highest label, ", top->label, " at ",
                     sample_location(*top), ")");
    msg += expected ? "; expected here: VTAB-1k's own sun397 split lacks classes (task_adaptation issue #21)"
                    : "; a partial or mislabelled list? (petl run stops on it unless --allow-missing-classes)";
    c.issues.push_back(make_issue("class_gap", !expected, msg, nullptr, sc.list));
  }
}

// Duplicates inside a list; an image listed for training and for testing (or train800 and val200).
void check_overlaps(TaskWork& w) {
  TaskCheck& c = w.check;
  std::map<std::string, std::map<std::string, const Sample*>> by_split;  // split → path → first sample
  for (size_t k = 0; k < c.splits.size(); ++k) {
    auto& first = by_split[c.splits[k].split];
    for (const auto& s : w.samples[k]) {
      auto [it, fresh] = first.emplace(normal_path(s.abs_path), &s);
      if (!fresh)
        c.issues.push_back(make_issue("duplicate", false,
                                      str_cat(sample_location(s), " ", s.rel_path, ": listed again (first at ",
                                              sample_location(*it->second), ")"),
                                      &s));
    }
  }
  auto leak = [&](const std::string& a, const std::vector<std::string>& others) {
    for (const auto& [path, s] : by_split[a])
      for (const auto& b : others)
        if (auto it = by_split[b].find(path); it != by_split[b].end()) {
          c.issues.push_back(make_issue("leak", true,
                                        str_cat(sample_location(*s), " ", s->rel_path, ": the same image is listed in ",
                                                b, " at ", sample_location(*it->second)),
                                        s));
          break;
        }
  };
  leak("test", {"train800val200", "train800", "val200"});
  leak("val200", {"train800"});

  // train800val200 is train800 followed by val200 (task_adaptation's "train[:800]+..."): the
  // same labels, whatever the image files are called.
  std::map<std::string, size_t> idx;
  for (size_t k = 0; k < c.splits.size(); ++k)
    if (c.splits[k].readable) idx[c.splits[k].split] = k;
  if (idx.count("train800") && idx.count("val200") && idx.count("train800val200")) {
    std::map<int64_t, int64_t> diff;
    for (const auto& s : w.samples[idx["train800val200"]]) ++diff[s.label];
    for (const auto* part : {&w.samples[idx["train800"]], &w.samples[idx["val200"]]})
      for (const auto& s : *part) --diff[s.label];
    const int64_t differing = std::count_if(diff.begin(), diff.end(), [](const auto& d) { return d.second != 0; });
    if (differing)
      c.issues.push_back(
          make_issue("union", false,
                     str_cat(c.splits[idx["train800val200"]].list, ": the number of images of ", differing,
                             " classes differs from train800 + val200 (VTAB-1k's ", "train800val200 is their union)"),
                     nullptr, c.splits[idx["train800val200"]].list));
  }
}

// ------------------------------------------------------------------ images

void plan_images(TaskWork& w, const DataCheckOptions& opts) {
  std::unordered_map<std::string, size_t> index;
  for (size_t k = 0; k < w.samples.size(); ++k) {
    const auto& list = w.samples[k];
    // quick: `sample` images of each split decoded, evenly spaced over the list
    std::set<size_t> decode;
    if (opts.quick && !list.empty() && opts.sample > 0) {
      const size_t m = std::min(list.size(), size_t(opts.sample));
      for (size_t j = 0; j < m; ++j) decode.insert(m == 1 ? 0 : j * (list.size() - 1) / (m - 1));
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = normal_path(list[i].abs_path);
      auto [it, fresh] = index.emplace(path, w.images.size());
      if (fresh) {
        ImageJob job;
        job.path = path;
        job.decode = !opts.quick;
        w.images.push_back(std::move(job));
      }
      ImageJob& job = w.images[it->second];
      job.listed.push_back(&list[i]);
      if (decode.count(i)) job.decode = true;
    }
  }
}

void check_image(ImageJob& job) {
  std::error_code ec;
  if (job.decode) {
    try {
      decode_image_file(job.path);
      job.ok = true;
    } catch (const std::exception& e) {
      job.error = e.what();
      job.missing = !fs::exists(job.path, ec);
    }
    return;
  }
  if (!fs::is_regular_file(job.path, ec)) {
    job.missing = true;
    job.error = str_cat("image file ", job.path, " does not exist");
  } else if (fs::file_size(job.path, ec) == 0) {
    job.error = str_cat("image file ", job.path, " is empty");
  } else {
    job.ok = true;
  }
}

void check_images(std::vector<TaskWork>& work, const DataCheckOptions& opts) {
  std::vector<ImageJob*> jobs;
  for (auto& w : work)
    for (auto& j : w.images) jobs.push_back(&j);
  const int64_t n = int64_t(jobs.size());
  int threads = opts.threads > 0 ? opts.threads : int(std::thread::hardware_concurrency());
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  ProgressBar bar(opts.quick ? "data check (quick)" : "data check: decoding", n, opts.progress);
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      check_image(*jobs[size_t(i)]);
      bar.add(1);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  bar.finish();

  for (auto& w : work) {
    TaskCheck& c = w.check;
    c.images = int64_t(w.images.size());
    for (const auto& job : w.images) {
      if (job.ok) {
        ++(job.decode ? c.images_decoded : c.images_found);
        continue;
      }
      ++c.images_bad;
      const Sample& s = *job.listed.front();
      std::string msg = str_cat(sample_location(s), " ", s.rel_path, ": ", job.error);
      if (job.listed.size() > 1) {
        std::vector<std::string> also;
        for (size_t k = 1; k < job.listed.size(); ++k) also.push_back(sample_location(*job.listed[k]));
        msg += " (also listed at " + join(also, ", ") + ")";
      }
      c.issues.push_back(make_issue(job.missing ? "missing_image" : "bad_image", true, msg, &s));
    }
  }
}

// ------------------------------------------------------------------ finding the tasks

TaskWork start_task(const fs::path& dir, const std::string& canonical) {
  TaskWork w;
  w.check.folder = dir.filename().string();
  w.check.dir = dir.string();
  w.check.name = canonical;
  w.check.vtab = known_num_classes(canonical) > 0;
  try {
    w.info = read_task_folder(dir.string());
  } catch (const Error& e) {
    w.check.issues.push_back(make_issue("task_json", true, e.what(), nullptr, (dir / "petl_task.json").string()));
    w.info.name = canonical;
    w.info.dir = dir.string();
    w.info.format = list_format(dir.string());
    w.info.num_classes = known_num_classes(canonical);
  }
  w.check.format = w.info.format;
  w.check.description = w.info.description;
  return w;
}

std::vector<TaskWork> find_tasks(DataCheckReport& r, const DataCheckOptions& opts) {
  std::vector<TaskWork> work;
  std::set<std::string> done;
  if (!opts.tasks.empty()) {  // the tasks asked for, found as petl run finds them
    for (const auto& t : opts.tasks) {
      const std::string canonical = canonical_task_name(t);
      if (!done.insert(canonical).second) continue;
      try {
        const TaskInfo info = find_task(r.root, t);
        work.push_back(start_task(fs::path(info.dir), canonical));
      } catch (const Error& e) {
        r.missing_tasks.push_back(canonical);
        r.issues.push_back(make_issue("missing_task", true, e.what()));
      }
    }
    return work;
  }

  std::error_code ec;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(r.root, ec))
    if (entry.is_directory(ec)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  std::map<std::string, std::vector<fs::path>> with_lists;  // canonical name → folders
  std::map<std::string, fs::path> empty_vtab;               // VTAB task folders without a list
  std::vector<std::string> others;
  for (const auto& d : dirs) {
    const std::string canonical = canonical_task_name(d.filename().string());
    if (!list_format(d.string()).empty())
      with_lists[canonical].push_back(d);
    else if (known_num_classes(canonical) > 0)
      empty_vtab.emplace(canonical, d);
    else
      others.push_back(d.filename().string());
  }
  for (const auto& [canonical, folders] : with_lists) {
    fs::path used = folders.front();
    if (folders.size() > 1) {
      used = fs::path(find_task(r.root, canonical).dir);
      std::vector<std::string> names;
      for (const auto& f : folders) names.push_back(f.filename().string());
      r.issues.push_back(make_issue("duplicate_folder", false,
                                    str_cat("folders ", join(names, ", "), " under ", r.root, " are all task '",
                                            canonical, "': petl uses ", used.string(), " (only it is checked)")));
    }
    work.push_back(start_task(used, canonical));
    r.vtab_root = r.vtab_root || known_num_classes(canonical) > 0;
  }
  for (const auto& [canonical, dir] : empty_vtab) {
    if (with_lists.count(canonical)) continue;
    TaskWork w;
    w.check.name = canonical;
    w.check.folder = dir.filename().string();
    w.check.dir = dir.string();
    w.check.vtab = true;
    w.check.num_classes = known_num_classes(canonical);
    w.check.classes_from = "VTAB-1k";
    w.check.issues.push_back(make_issue("missing_list", true,
                                        str_cat("task folder ", dir.string(),
                                                " holds no list file: expected {train800,val200,train800val200,"
                                                "test}.txt (txt format) or {train800val200,test}.json (json format)")));
    work.push_back(std::move(w));
    r.vtab_root = true;
  }
  if (!others.empty())
    r.issues.push_back(make_issue("not_a_task", false,
                                  str_cat("folders without a list file, not checked as tasks: ", join(others, ", "))));
  if (r.vtab_root)
    for (const auto& name : vtab_task_names())
      if (!with_lists.count(name) && !empty_vtab.count(name)) {
        r.missing_tasks.push_back(name);
        r.issues.push_back(make_issue("missing_task", true,
                                      str_cat("VTAB-1k task '", name, "' not found: no folder ", name,
                                              " (or an alias of it) with list files under ", r.root)));
      }
  if (work.empty())
    r.issues.push_back(make_issue("missing_task", true,
                                  str_cat("no task folder under ", r.root,
                                          ": expected <task>/ folders holding train800val200.txt and test.txt (txt "
                                          "format) or train800val200.json and test.json (json format)")));
  std::sort(work.begin(), work.end(), [](const TaskWork& a, const TaskWork& b) { return a.check.name < b.check.name; });
  return work;
}

json issue_json(const DataIssue& i) {
  json j = {{"kind", i.kind}, {"problem", i.problem}, {"message", i.message}};
  if (!i.list.empty()) j["list"] = i.list;
  if (i.line > 0) j["line"] = i.line;
  if (!i.path.empty()) j["path"] = i.path;
  return j;
}

}  // namespace

int TaskCheck::problems() const {
  return int(std::count_if(issues.begin(), issues.end(), [](const DataIssue& i) { return i.problem; }));
}
int TaskCheck::notes() const { return int(issues.size()) - problems(); }

int DataCheckReport::problems() const {
  int n = int(std::count_if(issues.begin(), issues.end(), [](const DataIssue& i) { return i.problem; }));
  for (const auto& t : tasks) n += t.problems();
  return n;
}
int DataCheckReport::notes() const {
  int n = int(std::count_if(issues.begin(), issues.end(), [](const DataIssue& i) { return !i.problem; }));
  for (const auto& t : tasks) n += t.notes();
  return n;
}

DataCheckReport check_data_root(const std::string& root, const DataCheckOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  PETL_CHECK(fs::is_directory(root, ec), "data root ", root, " is not a directory");
  PETL_CHECK(opts.sample >= 1, "--sample ", opts.sample, ": expected an integer >= 1");
  DataCheckReport r;
  r.root = root;
  r.quick = opts.quick;
  std::vector<TaskWork> work = find_tasks(r, opts);
  for (auto& w : work) {
    if (w.info.format.empty()) continue;  // a folder without lists: already a problem
    read_lists(w);
    check_classes(w);
    check_overlaps(w);
    plan_images(w, opts);
  }
  check_images(work, opts);
  for (auto& w : work) r.tasks.push_back(std::move(w.check));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

json data_check_json(const DataCheckReport& r) {
  json tasks = json::array();
  for (const auto& t : r.tasks) {
    json splits = json::object();
    for (const auto& s : t.splits)
      splits[s.split] = {{"list", s.list},
                         {"present", s.present},
                         {"readable", s.readable},
                         {"lines", s.lines},
                         {"expected", s.expected >= 0 ? json(s.expected) : json()},
                         {"classes_seen", s.classes_seen},
                         {"missing_classes", s.missing_classes},
                         {"out_of_range", s.out_of_range},
                         {"sha256", s.sha256}};
    json issues = json::array();
    for (const auto& i : t.issues) issues.push_back(issue_json(i));
    tasks.push_back(
        {{"task", t.name},
         {"folder", t.folder},
         {"dir", t.dir},
         {"format", t.format},
         {"vtab", t.vtab},
         {"description", t.description},
         {"num_classes", t.num_classes},
         {"classes_from", t.classes_from},
         {"status", t.problems() ? "problems" : "ok"},
         {"problems", t.problems()},
         {"notes", t.notes()},
         {"splits", splits},
         {"images",
          {{"listed", t.images}, {"decoded", t.images_decoded}, {"found", t.images_found}, {"bad", t.images_bad}}},
         {"issues", issues}});
  }
  json issues = json::array();
  for (const auto& i : r.issues) issues.push_back(issue_json(i));
  return {{"schema", "petl.data_check"},
          {"schema_version", 1},
          {"root", r.root},
          {"quick", r.quick},
          {"vtab_root", r.vtab_root},
          {"ok", r.problems() == 0},
          {"problems", r.problems()},
          {"notes", r.notes()},
          {"missing_tasks", r.missing_tasks},
          {"issues", issues},
          {"tasks", tasks},
          {"seconds", r.seconds}};
}

}  // namespace petl::data
