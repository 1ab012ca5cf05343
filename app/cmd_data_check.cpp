// `petl data check ROOT`: verifies a VTAB-1k download (datasets/vtab_check.h) and prints every
// problem with its list file, line and image path, then one summary row per task; `--json FILE`
// writes the same for scripts. Exit status 0 when nothing is wrong, 1 when a problem was found.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/text.h"
#include "datasets/vtab.h"
#include "datasets/vtab_check.h"

namespace petl::cli {
namespace {

const char* kDataUsage =
    "usage: petl data check ROOT [options]\n"
    "Checks a VTAB-1k download (or any root of petl task folders) before training on it:\n"
    "  petl data check /data/vtab-1k            decode every image (all of VTAB-1k: minutes)\n"
    "  petl data check /data/vtab-1k --quick    every image's existence, a sample decoded\n"
    "See petl data check --help for every flag.";

const char* kCheckUsage =
    "usage: petl data check ROOT [--tasks LIST] [--quick [--sample N]] [--json FILE] [--threads N]\n"
    "Verifies the task folders under ROOT: the layout (txt lists train800/val200/train800val200/test.txt\n"
    "with `<path> <label>` lines as in the prepared VTAB-1k folders of NOAH, PETL-ViT, SSF and DTL;\n"
    "or SynQT's json lists train800val200/test.json), the tasks found (aliases such as cifar100 count\n"
    "as cifar) and the VTAB-1k tasks missing, each list's line count against VTAB-1k's (800, 200, 1000,\n"
    "the full test split), the classes each split holds against the task's class count (the VTAB-1k\n"
    "table or <task>/petl_task.json), classes with no training image, labels out of range, images\n"
    "listed both for training and for testing, and every image decoded with the decoder training uses.\n"
    "Each problem names the list file, the line and the image path. Ends with one row per task.\n"
    "Exit status: 0 when every check passed (notes allowed), 1 when a problem was found, 2 on bad usage.";

std::string count_cell(const data::SplitCheck* s) {
  if (!s || !s->present) return "-";
  if (!s->readable) return "unreadable";
  if (s->expected >= 0 && s->lines != s->expected) return str_cat(s->lines, "/", s->expected);
  return std::to_string(s->lines);
}

const data::SplitCheck* find_split(const data::TaskCheck& t, const std::string& split) {
  for (const auto& s : t.splits)
    if (s.split == split) return &s;
  return nullptr;
}

std::string classes_cell(const data::TaskCheck& t) {
  if (t.num_classes <= 0) return "-";
  const data::SplitCheck* train = find_split(t, "train800val200");
  if (!train || !train->readable) return str_cat("?/", t.num_classes);
  return str_cat(train->classes_seen, "/", t.num_classes);
}

std::string status_cell(const data::TaskCheck& t) {
  if (t.problems()) return str_cat(t.problems(), t.problems() == 1 ? " problem" : " problems");
  if (t.notes()) return str_cat("ok (", t.notes(), t.notes() == 1 ? " note)" : " notes)");
  return "ok";
}

// The findings, problems first, at most `max_issues` per task (0: all).
void print_issues(const data::DataCheckReport& r, bool problems, int max_issues) {
  const int total = problems ? r.problems() : r.notes();
  if (!total) return;
  std::printf("\n%s (%d):\n", problems ? "problems" : "notes", total);
  // Missing VTAB-1k tasks of a VTAB root on one line (the JSON report has one issue each).
  const bool merge = problems && r.vtab_root && r.missing_tasks.size() > 3;
  if (merge)
    std::printf("  %zu VTAB-1k tasks not found under %s (no folder of their name or an alias holds list files): %s\n",
                r.missing_tasks.size(), r.root.c_str(), join(r.missing_tasks, ", ").c_str());
  for (const auto& i : r.issues)
    if (i.problem == problems && !(merge && i.kind == "missing_task")) std::printf("  %s\n", i.message.c_str());
  for (const auto& t : r.tasks) {
    int shown = 0, left = 0;
    for (const auto& i : t.issues) {
      if (i.problem != problems) continue;
      if (max_issues > 0 && shown >= max_issues) {
        ++left;
        continue;
      }
      std::printf("  %s: %s\n", t.name.c_str(), i.message.c_str());
      ++shown;
    }
    if (left)
      std::printf("  %s: ... and %d more (--max-issues 0 prints all; --json FILE holds all)\n", t.name.c_str(), left);
  }
}

void print_report(const data::DataCheckReport& r, int max_issues) {
  int txt = 0, json = 0;
  for (const auto& t : r.tasks) {
    txt += t.format == "txt";
    json += t.format == "json";
  }
  std::printf("petl data check %s\n", r.root.c_str());
  std::printf(
      "  layout: %d task(s) with txt lists (train800/val200/train800val200/test.txt, `<path> <label>` lines), "
      "%d with json lists (train800val200/test.json)\n",
      txt, json);
  std::vector<std::string> vtab_names;
  for (const auto& t : r.tasks)
    if (t.vtab) vtab_names.push_back(t.name);
  const size_t others = r.tasks.size() - vtab_names.size();
  if (r.vtab_root)
    std::printf("  VTAB-1k tasks: %zu of %zu found%s%s\n", vtab_names.size(), data::vtab_task_names().size(),
                r.missing_tasks.empty() ? "" : "; missing: ", join(r.missing_tasks, ", ").c_str());
  else if (!vtab_names.empty())
    std::printf("  VTAB-1k tasks checked (--tasks): %s\n", join(vtab_names, ", ").c_str());
  if (others)
    std::printf(
        "  %s%zu other task(s), checked against the class count each declares (petl_task.json) or its "
        "train labels\n",
        vtab_names.empty() && !r.vtab_root ? "no VTAB-1k task here: " : "", others);
  int64_t listed = 0, decoded = 0, found = 0, bad = 0;
  for (const auto& t : r.tasks) {
    listed += t.images;
    decoded += t.images_decoded;
    found += t.images_found;
    bad += t.images_bad;
  }
  if (r.quick)
    std::printf("  images (--quick): %lld listed, %lld decoded, %lld more found on disk, %lld missing or bad\n",
                (long long)listed, (long long)decoded, (long long)found, (long long)bad);
  else
    std::printf("  images: %lld listed, %lld decoded, %lld missing or bad\n", (long long)listed, (long long)decoded,
                (long long)bad);

  print_issues(r, true, max_issues);
  print_issues(r, false, max_issues);

  std::vector<std::vector<std::string>> rows = {
      {"task", "folder", "format", "train800", "val200", "train800val200", "test", "classes", "images", "status"}};
  auto row = [&](const data::TaskCheck& t) {
    rows.push_back({t.name, t.folder, t.format.empty() ? "-" : t.format, count_cell(find_split(t, "train800")),
                    count_cell(find_split(t, "val200")), count_cell(find_split(t, "train800val200")),
                    count_cell(find_split(t, "test")), classes_cell(t), std::to_string(t.images), status_cell(t)});
  };
  // VTAB-1k's tasks in its table order (natural, specialized, structured), missing ones in place;
  // then the others by name.
  for (const auto& name : data::vtab_task_names()) {
    auto it = std::find_if(r.tasks.begin(), r.tasks.end(), [&](const data::TaskCheck& t) { return t.name == name; });
    if (it != r.tasks.end())
      row(*it);
    else if (std::count(r.missing_tasks.begin(), r.missing_tasks.end(), name))
      rows.push_back({name, "-", "-", "-", "-", "-", "-", "-", "-", "missing"});
  }
  for (const auto& t : r.tasks)
    if (!t.vtab) row(t);
  for (const auto& m : r.missing_tasks)
    if (data::known_num_classes(m) <= 0) rows.push_back({m, "-", "-", "-", "-", "-", "-", "-", "-", "missing"});
  std::printf("\n");
  print_table(rows, {false, false, false, true, true, true, true, true, true, false});  // the numbers right
  std::printf(
      "(counts: lines, or lines/expected where VTAB-1k's size differs; classes: seen in train800val200 "
      "/ the task's class count)\n\n");
  const int problems = r.problems();
  if (problems == 0)
    std::printf("ok: %zu task(s), every check passed in %.1f s%s\n", r.tasks.size(), r.seconds,
                r.quick ? " (--quick: images found, a sample decoded)" : "");
  else
    std::printf("FAILED: %d problem(s) in %.1f s (exit status 1)\n", problems, r.seconds);
}

int cmd_data_check(const Args& args) {
  std::string root, tasks, json_file;
  data::DataCheckOptions opts;
  int max_issues = 20;
  po::options_description d("petl data check options");
  d.add_options()("root", po::value(&root), "the data root (also the positional ROOT): one folder per task")(
      "tasks", po::value(&tasks),
      "comma-separated tasks to check (aliases accepted; a missing one is a problem); default: every task folder, "
      "and when ROOT holds a VTAB-1k task, all 19 VTAB-1k tasks are expected")(
      "quick", "check that every listed image exists (not empty) and decode only --sample images per split")(
      "sample", po::value(&opts.sample)->default_value(opts.sample), "with --quick: images decoded per split")(
      "threads", po::value(&opts.threads)->default_value(opts.threads), "decoding threads (0 = every core)")(
      "json", po::value(&json_file), "also write the report as JSON (schema petl.data_check) to FILE")(
      "max-issues", po::value(&max_issues)->default_value(max_issues),
      "findings printed per task and kind (0 = all; --json holds all)")(
      "no-progress",
      "no progress (on a terminal a progress bar; otherwise a line every PETL_PROGRESS_EVERY_S seconds, default 30)");
  po::positional_options_description pos;
  pos.add("root", 1);
  d.add_options()("help,h", "show this help and exit");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << kCheckUsage << "\n\n" << d << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    PETL_FAIL(e.what(), " (see petl data check --help)");
  }
  PETL_CHECK(!root.empty(), "petl data check: no ROOT given (usage: petl data check ROOT; see --help)");
  PETL_CHECK(opts.threads >= 0, "--threads ", opts.threads, ": expected an integer >= 0 (0 = every core)");
  PETL_CHECK(max_issues >= 0, "--max-issues ", max_issues, ": expected an integer >= 0 (0 = all)");
  opts.quick = vm.count("quick") > 0;
  opts.progress = !vm.count("no-progress");
  opts.tasks = split_list(tasks);
  if (!json_file.empty()) {  // before the work: a path that cannot be written fails now
    std::ofstream probe(json_file, std::ios::app);
    PETL_CHECK(probe.good(), "--json ", json_file, ": cannot write to this file");
  }

  const data::DataCheckReport report = data::check_data_root(root, opts);
  print_report(report, max_issues);
  if (!json_file.empty()) {
    std::ofstream out(json_file, std::ios::trunc);
    out << data::data_check_json(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    out.close();
    PETL_CHECK(!out.fail(), "--json ", json_file, ": write failed");
    std::printf("report written to %s\n", json_file.c_str());
  }
  return report.problems() ? 1 : 0;
}

}  // namespace

int cmd_data(const Args& args) {
  if (args.empty()) {
    std::cout << kDataUsage << "\n";
    return 1;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") return cmd_data_check({"--help"});
  const std::string sub = args[0];
  if (sub == "check") return cmd_data_check(Args(args.begin() + 1, args.end()));
  PETL_FAIL("unknown data subcommand '", sub, "' (expected check; see petl data --help)");
}

}  // namespace petl::cli
