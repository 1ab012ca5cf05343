// Tests of results/report.{h,cpp}: mean / sample std / group-mean arithmetic, row identities
// (a swept lr splits rows, a per-task setting does not), golden report.md and report.csv from the
// fixed records in tests/io/data/report/ (regenerate them with PETL_UPDATE_GOLDEN=1 and check the
// numbers by hand), every validation error and warning (messages name file:line), reference
// CSVs (the project's copy, a report.csv round trip, errors), other task sets, a sweep's (and a
// demo's) output folder read through its journal, the budget view's wording, the Mean's ± over
// seeds, the eval-peak and time columns, parameter counts, and the plots: the files exist and hold
// one point per (method, task), short labels with a key table, the key in a strip below the
// panels, every text inside the frame at 1, 3, 17 and 23 rows; protocol val_select: search records
// counted and never tabulated, final records in their own section (exact cells, inflation, means,
// the caption's test-set sentences, report_selection.csv, the plot) or the main table when alone.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <sstream>

#include "core/error.h"
#include "harness/sweep/sweep_journal.h"
#include "results/report.h"
#include "tests/ci_skip.h"

namespace fs = std::filesystem;
using namespace petl::report;

namespace {

const std::string kTests = PETL_TEST_DIR;
std::string data(const std::string& rel) { return kTests + "/io/data/report/" + rel; }

// A fresh directory under /tmp, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/petl_test_report_XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& rel) const { return (fs::path(path_) / rel).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& p) {
  std::ifstream is(p, std::ios::binary);
  std::stringstream ss;
  ss << is.rdbuf();
  return ss.str();
}
void write_file(const std::string& p, const std::string& text) {
  fs::create_directories(fs::path(p).parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// Absolute fixture paths → "tests/...", so the golden files do not depend on the checkout.
std::string portable(std::string s) {
  for (size_t p = s.find(kTests); p != std::string::npos; p = s.find(kTests, p)) s.replace(p, kTests.size(), "tests");
  return s;
}

// Byte-for-byte comparison with a golden file; on a mismatch, names the first differing line and
// leaves the actual output beside the test for `diff -u`.
void expect_golden(const std::string& actual, const std::string& golden) {
  if (const char* u = std::getenv("PETL_UPDATE_GOLDEN"); u && *u == '1') {
    write_file(golden, actual);
    std::printf("updated %s\n", golden.c_str());
  }
  const std::string expected = read_file(golden);
  if (actual == expected) return;
  std::istringstream a(actual), e(expected);
  std::string la, le;
  int line = 0;
  while (true) {
    ++line;
    bool ga = bool(std::getline(a, la)), ge = bool(std::getline(e, le));
    if (!ga && !ge) break;
    if (!ga || !ge || la != le) {
      if (!ga) la = "<end of output>";
      if (!ge) le = "<end of golden file>";
      break;
    }
  }
  std::string out = "/tmp/" + fs::path(golden).filename().string() + ".actual";
  write_file(out, actual);
  ADD_FAILURE() << golden << " differs at line " << line << ":\n  expected: " << le << "\n  actual:   " << la
                << "\nfull output in " << out << " (diff -u " << golden << " " << out
                << "; PETL_UPDATE_GOLDEN=1 rewrites the golden file)";
}

// Runs f, expects petl::Error, returns its message.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const petl::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected petl::Error";
  return "";
}

nlohmann::json first_record(const std::string& file) {
  std::ifstream is(file);
  std::string line;
  std::getline(is, line);
  return nlohmann::json::parse(line);
}

// A record of the vtab fixture, re-targeted.
nlohmann::json make_record(const std::string& method, const std::string& task, int seed, double acc) {
  auto r = first_record(data("vtab/results.jsonl"));
  r["method"] = method;
  r["task"] = task;
  r["seed"] = seed;
  r["settings"]["recipe"]["seed"] = std::to_string(seed);
  r["accuracy"] = acc;
  r["accuracy_by_protocol"]["best_of_10"] = acc;
  r["accuracy_by_protocol"]["final"] = acc - 1;
  r["data"]["task"] = task;
  r["data"]["test_list_sha256"] = "t" + task;
  return r;
}
std::string lines(const std::vector<nlohmann::json>& recs) {
  std::string s;
  for (auto& r : recs) s += r.dump() + "\n";
  return s;
}

ReportOptions quiet() {
  ReportOptions o;
  o.warn_to_stderr = false;
  o.reference = "none";
  o.plots = false;
  return o;
}

Table vtab_table() {
  auto o = quiet();
  return build_table(load_records({data("vtab")}), o, load_reference(data("reference.csv")));
}

const Row& row_named(const Table& t, const std::string& label) {
  for (auto& r : t.rows)
    if (r.label() == label) return r;
  throw std::runtime_error("no row " + label);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

// ------------------------------------------------------------------ arithmetic

TEST(ReportStats, MeanAndSampleStd) {
  auto s = mean_std({1, 2, 3, 4});
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.std, std::sqrt(5.0 / 3.0), 1e-12);  // sum of squares 5, n − 1 = 3
  auto one = mean_std({71.5});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 71.5);
  EXPECT_TRUE(std::isnan(one.std));
  auto none = mean_std({});
  EXPECT_EQ(none.n, 0);
  EXPECT_TRUE(std::isnan(none.mean));
  auto two = mean_std({63.5, 64.0});
  EXPECT_NEAR(two.std, 0.5 / std::sqrt(2.0), 1e-12);
}

TEST(ReportTable, CellsGroupMeansAndRowMeans) {
  Table t = vtab_table();
  ASSERT_TRUE(t.vtab);
  ASSERT_EQ(t.groups.size(), 3u);
  EXPECT_EQ(t.groups[0].tasks.size(), 7u);
  EXPECT_EQ(t.groups[1].tasks.size(), 4u);
  EXPECT_EQ(t.groups[2].tasks.size(), 8u);
  EXPECT_EQ(t.tasks, vtab_tasks());
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].label(), "linear");
  EXPECT_EQ(t.rows[1].label(), "synqt (lr=0.001)");  // lr sweeps split rows, sorted numerically
  EXPECT_EQ(t.rows[2].label(), "synqt (lr=0.005)");
  EXPECT_EQ(t.varying.at("synqt"), std::vector<std::string>{"lr"});  // token_nums varies per task only

  const Row& lin = row_named(t, "linear");
  const Cell& cifar = lin.cells.at("cifar");  // seeds 42 (63.5, the journal's duplicate wins) and 43 (64.0)
  EXPECT_EQ(cifar.acc.n, 2);
  EXPECT_EQ(cifar.seeds, (std::vector<int>{42, 43}));
  EXPECT_NEAR(cifar.acc.mean, 63.75, 1e-9);
  EXPECT_NEAR(cifar.acc.std, 0.5 / std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(lin.cells.at("dtd").acc.std, 1.3 / std::sqrt(2.0), 1e-9);
  EXPECT_EQ(lin.cells.at("clevr_count").acc.n, 1);
  // Natural: cifar 63.75, dtd 63.15 of 7 → incomplete; Specialized: all 4 → complete.
  EXPECT_NEAR(lin.group_means[0], (63.75 + 63.15) / 2, 1e-9);
  EXPECT_FALSE(lin.group_complete[0]);
  EXPECT_NEAR(lin.group_means[1], (78.5 + 87.6 + 68.7 + 73.8) / 4, 1e-9);
  EXPECT_TRUE(lin.group_complete[1]);
  EXPECT_NEAR(lin.group_means[2], 34.5, 1e-9);
  EXPECT_FALSE(lin.group_complete[2]);
  // The plain mean is over the tasks, not over the group means.
  EXPECT_NEAR(lin.mean, (63.75 + 63.15 + 78.5 + 87.6 + 68.7 + 73.8 + 34.5) / 7, 1e-9);
  EXPECT_FALSE(lin.complete);
  EXPECT_NEAR(lin.params_m, (76900 + 36143 + 1538 + 7690 + 34605 + 3845 + 6152) / 7.0 / 1e6, 1e-12);
  EXPECT_NEAR(lin.peak_train_mib, 350.5, 1e-9);
  const Row& s1 = row_named(t, "synqt (lr=0.001)");
  EXPECT_NEAR(s1.mean, (70.2 + 95.1) / 2, 1e-9);
  EXPECT_NEAR(s1.peak_train_mib, (1520.75 + 1500.25) / 2, 1e-9);
  EXPECT_TRUE(std::isnan(s1.group_means[2]));

  // The Mean's spread over seeds: linear's clevr_count has seed 42 only, so one seed is common to
  // every task: no ±. synqt lr=0.005 has seeds 42 and 43 on both its tasks: per-seed means
  // (71.0 + 94.4) / 2 = 82.7 and (71.6 + 94.0) / 2 = 82.8.
  EXPECT_EQ(lin.seed_means.n, 1);
  EXPECT_TRUE(std::isnan(lin.seed_means.std));
  const Row& s5 = row_named(t, "synqt (lr=0.005)");
  EXPECT_EQ(s5.seed_means.n, 2);
  EXPECT_NEAR(s5.seed_means.mean, 82.75, 1e-9);
  EXPECT_NEAR(s5.seed_means.std, 0.1 / std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(s5.mean, (71.3 + 94.2) / 2, 1e-9);
  // Time and evaluation peak (make_records.py: train_s = peak/10 + 3.5·(seed mod 5) + 0.013,
  // wall_s = train_s + 10, peak_eval = 0.75·peak + classes/2): linear trains 42.063 s with seed 42
  // and 45.563 s with seed 43; six of its tasks have both seeds, clevr_count seed 42 only.
  const double s42 = 42.063, s43 = 45.563;
  EXPECT_NEAR(lin.cells.at("cifar").train_s, (s42 + s43) / 2, 1e-9);
  EXPECT_NEAR(lin.train_s, (6 * (s42 + s43) / 2 + s42) / 7, 1e-9);
  EXPECT_NEAR(lin.peak_eval_mib, 0.75 * 350.5 + 0.5 * (100 + 47 + 2 + 10 + 45 + 5 + 8) / 7.0, 1e-9);
  EXPECT_NEAR(lin.wall_h, (6 * (s42 + s43) + s42 + 13 * 10.0) / 3600, 1e-9);
  EXPECT_NEAR(lin.params, (76900 + 36143 + 1538 + 7690 + 34605 + 3845 + 6152) / 7.0, 1e-9);

  // Reference rows: group means from the published task values, the published plain mean.
  ASSERT_EQ(t.ref_lines.size(), 2u);
  EXPECT_EQ(t.ref_lines[1].ref.method, "linear");
  EXPECT_NEAR(t.ref_lines[1].group_means[2], (34.3 + 30.6 + 33.2 + 55.4 + 12.5 + 20.0 + 9.6 + 19.2) / 8, 1e-9);
  EXPECT_TRUE(t.ref_lines[1].mean_published);
  EXPECT_DOUBLE_EQ(t.ref_lines[1].mean, 52.94);
  // Δ: only linear is in the reference; mean of the per-task Δ over the common tasks.
  ASSERT_EQ(t.deltas.size(), 1u);
  EXPECT_NEAR(t.deltas[0].delta.at("cifar"), 63.75 - 63.4, 1e-9);
  EXPECT_NEAR(t.deltas[0].group_means[1], ((78.5 - 78.5) + (87.6 - 87.5) + (68.7 - 68.6) + (73.8 - 74.0)) / 4, 1e-9);
  EXPECT_TRUE(t.deltas[0].group_complete[1]);
  EXPECT_NEAR(t.deltas[0].mean, 0.5 / 7, 1e-9);
  EXPECT_FALSE(t.deltas[0].complete);

  // What was read: the dry run and the failed job are listed, the journal's own lines counted.
  EXPECT_EQ(t.records.skipped.size(), 2u);
  EXPECT_EQ(t.records.other_schemas.at("petl.sweep.journal"), 2);
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_TRUE(has(t.warnings[0], "duplicate record linear/cifar seed 42"));
  EXPECT_TRUE(has(t.warnings[0], "vtab/results.jsonl:1"));
  EXPECT_TRUE(has(t.warnings[0], "vtab/sweep/journal.jsonl:2"));
}

// ------------------------------------------------------------------ golden report

TEST(ReportGolden, VtabMarkdownAndCsv) {
  TempDir dir;
  auto o = quiet();
  o.reference = data("reference.csv");
  o.out_dir = dir.path();
  auto res = write_report({data("vtab")}, o);
  EXPECT_EQ(res.n_ok, 19);
  EXPECT_EQ(res.n_failed, 1);
  EXPECT_EQ(res.n_dry_run, 1);
  expect_golden(portable(read_file(dir / "report.md")), data("expected/vtab_report.md"));
  expect_golden(portable(read_file(dir / "report.csv")), data("expected/vtab_report.csv"));
  EXPECT_EQ(res.printed, res.table_markdown);
  EXPECT_TRUE(has(read_file(dir / "report.md"), res.table_markdown));
}

TEST(ReportGolden, OtherTaskSetMarkdown) {
  TempDir dir;
  auto o = quiet();
  o.reference = data("reference.csv");  // no common task: not shown, a warning
  o.reference_label = "my reference";
  o.out_dir = dir.path();
  auto res = write_report({data("mini/results.jsonl")}, o);
  expect_golden(portable(read_file(dir / "report.md")), data("expected/mini_report.md"));
  ASSERT_EQ(res.warnings.size(), 1u);
  EXPECT_TRUE(has(res.warnings[0], "shares no task"));
}

TEST(ReportTable, OtherTaskSetHasOneGroupInFirstSeenOrder) {
  Table t = build_table(load_records({data("mini")}), quiet());
  EXPECT_FALSE(t.vtab);
  ASSERT_EQ(t.groups.size(), 1u);
  EXPECT_EQ(t.groups[0].name, "Tasks");
  EXPECT_FALSE(t.groups[0].has_mean);
  EXPECT_EQ(t.tasks, (std::vector<std::string>{"fashion_mnist", "sprites_loc", "objects_count"}));
  auto md = render_markdown_table(t);
  EXPECT_TRUE(has(md, "| Method | "));
  EXPECT_FALSE(has(md, "Natural"));
  EXPECT_TRUE(has(md, "83.80 ± 0.42 (n=2)"));
  EXPECT_TRUE(has(md, "on 3 tasks"));
}

TEST(ReportRender, TexAndCellsCsv) {
  Table t = vtab_table();
  auto tex = render_tex(t);
  EXPECT_TRUE(has(tex, "\\begin{tabular}"));
  EXPECT_TRUE(has(tex, "\\multicolumn{7}{c}{Natural}"));
  EXPECT_TRUE(has(tex, "\\multicolumn{4}{c}{Specialized}"));
  EXPECT_TRUE(has(tex, "\\multicolumn{8}{c}{Structured}"));
  EXPECT_TRUE(has(tex, "63.75{\\scriptsize$\\pm$0.35$^{n=2}$}"));
  EXPECT_TRUE(has(tex, "synqt (lr=0.001)"));
  EXPECT_FALSE(has(tex, "±"));
  auto cells = render_cells_csv(t);
  EXPECT_TRUE(has(cells, "linear,,cifar,Natural,2,42;43,63.7500,0.3536,best_of_10,76900,350.500,"));
  EXPECT_TRUE(has(cells, "synqt,lr=0.005,eurosat,Specialized,2,42;43,94.2000,0.2828,best_of_10,2658294,1500.250,"));
  // The Mean's ± over seeds, readable parameter counts, and the memory and time columns in TeX too.
  EXPECT_TRUE(has(tex, "82.75{\\scriptsize$\\pm$0.07$^{n=2}$}$^*$")) << tex;
  EXPECT_TRUE(has(tex, "& 23.8 K & 350.5 & 278.4 & 43.6 \\\\")) << tex;
  EXPECT_TRUE(has(tex, "& 85.8 M & -- & -- & -- \\\\")) << tex;
  EXPECT_TRUE(has(tex, "\\rotatebox{90}{Train (s/job)}")) << tex;
}

// ------------------------------------------------------------------ protocols

TEST(ReportProtocol, RederivesAccuracyFromAccuracyByProtocol) {
  auto recs = load_records({data("mini")}, "final");
  for (auto& r : recs.runs) {
    EXPECT_EQ(r.protocol, "final");
    EXPECT_DOUBLE_EQ(r.accuracy, r.record.final_accuracy.value());
  }
  Table t = build_table(std::move(recs), [] {
    auto o = quiet();
    o.protocol = "final";
    return o;
  }());
  EXPECT_TRUE(has(t.caption, "protocol final (test accuracy after the last epoch)"));
  EXPECT_NEAR(t.rows[0].cells.at("fashion_mnist").acc.mean, 78.1, 1e-9);
}

TEST(ReportValidation, UnknownProtocolNamesTheRecord) {
  auto m = error_of([] { load_records({data("mini/results.jsonl")}, "best_of_5"); });
  EXPECT_TRUE(has(m, "mini/results.jsonl:1: accuracy_by_protocol has no number for protocol 'best_of_5'")) << m;
  EXPECT_TRUE(has(m, "it has: best_of_10, final")) << m;
}

// ------------------------------------------------------------------ validation errors

TEST(ReportValidation, UnknownSchemaVersion) {
  TempDir d;
  auto r = make_record("linear", "cifar", 42, 60);
  r["schema_version"] = 2;
  write_file(d / "r.jsonl", lines({make_record("linear", "dtd", 42, 50), r}));
  auto m = error_of([&] { load_records({d.path()}); });
  EXPECT_TRUE(has(m, d / "r.jsonl:2: schema_version 2 is not supported")) << m;
}

TEST(ReportValidation, MissingAndMistypedFields) {
  TempDir d;
  auto a = make_record("linear", "cifar", 42, 60);
  a["memory"].erase("peak_train_mib");
  a.erase("evals");
  auto b = make_record("linear", "dtd", 42, 60);
  b["seed"] = "42";
  auto c = make_record("linear", "svhn", 42, 60);
  c["evals"][1].erase("test_acc");
  write_file(d / "r.jsonl", lines({a, b, c}));
  auto m = error_of([&] { load_records({d / "r.jsonl"}); });
  EXPECT_TRUE(has(m, d / "r.jsonl:1: missing field(s): memory.peak_train_mib, evals")) << m;
  EXPECT_TRUE(has(m, d / "r.jsonl:2: mistyped field(s): seed (expected an integer, got string \"42\")")) << m;
  EXPECT_TRUE(has(m, d / "r.jsonl:3: evals[1] lacks a numeric epoch or test_acc")) << m;
}

TEST(ReportValidation, InvalidLinesAndStatus) {
  TempDir d;
  auto bad_status = make_record("linear", "dtd", 42, 60);
  bad_status["status"] = "running";
  write_file(d / "r.jsonl", lines({make_record("linear", "cifar", 42, 60)}) + "{\"schema\": \"petl.result\", \n" +
                                "[1, 2]\n{\"method\": \"linear\"}\n" + bad_status.dump() + "\n");
  auto m = error_of([&] { load_records({d.path()}); });
  EXPECT_TRUE(has(m, d / "r.jsonl:2: invalid JSON")) << m;
  EXPECT_TRUE(has(m, d / "r.jsonl:3: not a JSON object")) << m;
  EXPECT_TRUE(has(m, d / "r.jsonl:4: no \"schema\" string")) << m;
  EXPECT_TRUE(has(m, d / "r.jsonl:5: unknown status 'running'")) << m;
}

TEST(ReportWarnings, TornLastLineIsSkippedWithAWarning) {
  TempDir d;
  // A writer killed mid-write leaves a fragment without a newline at the end: the records before
  // it are read, the fragment is named in a warning. The same fragment inside the file is an error.
  write_file(d / "r.jsonl", lines({make_record("linear", "cifar", 42, 60), make_record("linear", "dtd", 42, 50)}) +
                                "{\"schema\": \"petl.result\", \"status\": \"ok\", \"meth");
  auto recs = load_records({d.path()});
  EXPECT_EQ(recs.runs.size(), 2u);
  ASSERT_EQ(recs.warnings.size(), 1u);
  EXPECT_TRUE(has(recs.warnings[0], d / "r.jsonl:3: torn last line (")) << recs.warnings[0];
  write_file(d / "r.jsonl", "{\"schema\": \"petl.result\", \"meth\n" + lines({make_record("linear", "cifar", 42, 60)}));
  EXPECT_TRUE(has(error_of([&] { load_records({d.path()}); }), d / "r.jsonl:1: invalid JSON"));
}

TEST(ReportValidation, PathsAndEmptyInputs) {
  TempDir d;
  EXPECT_TRUE(has(error_of([&] { load_records({d / "nope.jsonl"}); }), "does not exist"));
  fs::create_directories(d / "empty");
  EXPECT_TRUE(has(error_of([&] { load_records({d / "empty"}); }), "holds no *.jsonl"));
  EXPECT_TRUE(has(error_of([&] { load_records({}); }), "no result files"));
  // Only a failed record: nothing to tabulate, the failure is named.
  nlohmann::json f = {{"schema", "petl.result"}, {"schema_version", 1}, {"status", "failed"},      {"method", "full"},
                      {"task", "cifar"},         {"seed", 42},          {"error", "out of memory"}};
  write_file(d / "f.jsonl", f.dump() + "\n");
  auto m = error_of([&] { build_table(load_records({d / "f.jsonl"}), quiet()); });
  EXPECT_TRUE(has(m, "no successful result records")) << m;
  EXPECT_TRUE(has(m, d / "f.jsonl:1: full/cifar: out of memory")) << m;
}

TEST(ReportValidation, MixedBackbonesFailOrSplitRows) {
  TempDir d;
  auto other = make_record("linear", "dtd", 42, 61);
  other["backbone"]["sha256"] = "ffffffffffff0000";
  write_file(d / "a.jsonl", lines({make_record("linear", "cifar", 42, 60), make_record("linear", "dtd", 42, 62)}));
  write_file(d / "b.jsonl", lines({other}));
  auto m = error_of([&] { build_table(load_records({d.path()}), quiet()); });
  EXPECT_TRUE(has(m, "records mix backbones")) << m;
  EXPECT_TRUE(has(m, "(sha256 5b2f6e0c9d8e)' in 2 record(s) (" + (d / "a.jsonl:1") + ", " + (d / "a.jsonl:2") + ")"))
      << m;
  EXPECT_TRUE(has(m, "(sha256 ffffffffffff)' in 1 record(s) (" + (d / "b.jsonl:1") + ")")) << m;
  EXPECT_TRUE(has(m, "--allow-mixed")) << m;
  auto o = quiet();
  o.allow_mixed = true;
  Table t = build_table(load_records({d.path()}), o);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].label(), "linear (backbone=vit_base_patch16_224_in21k@5b2f6e0c)");
  EXPECT_EQ(t.rows[1].label(), "linear (backbone=vit_base_patch16_224_in21k@ffffffff)");
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_TRUE(has(t.warnings[0], "records mix backbones"));
}

// Backbone families (issue 30): the caption names the family and a resampled position embedding;
// records of one file resampled two ways are two backbones (an error, or two rows with allow_mixed).
TEST(ReportValidation, TheCaptionNamesTheFamilyAndAnotherResamplingIsAnotherBackbone) {
  TempDir d;
  auto dino = [](const std::string& task, const std::string& how) {
    auto r = make_record("linear", task, 42, 70);
    r["backbone"]["arch"] = "vit_base_patch14_dinov2";
    r["backbone"]["family"] = "dinov2";
    r["backbone"]["pos_embed_resampled"] = {{"from_grid", 37}, {"to_grid", 16}, {"method", how}};
    return r;
  };
  write_file(d / "a.jsonl", lines({dino("cifar", "timm"), dino("dtd", "timm")}));
  Table t = build_table(load_records({d.path()}), quiet());
  EXPECT_TRUE(has(t.caption,
                  "Backbone vit_base_patch14_dinov2 (dinov2 pre-training, pos_embed resampled 37→16 (timm), "
                  "sha256 5b2f6e0c9d8e)"))
      << t.caption;
  ASSERT_EQ(t.rows.size(), 1u);
  {  // a supervised record's caption is as before
    TempDir s;
    write_file(s / "a.jsonl", lines({make_record("linear", "cifar", 42, 60)}));
    const Table plain = build_table(load_records({s.path()}), quiet());
    EXPECT_TRUE(has(plain.caption, "Backbone vit_base_patch16_224_in21k (sha256 5b2f6e0c9d8e)")) << plain.caption;
  }
  write_file(d / "b.jsonl", lines({dino("cifar", "dinov2")}));
  auto m = error_of([&] { build_table(load_records({d.path()}), quiet()); });
  EXPECT_TRUE(has(m, "records mix backbones")) << m;
  auto o = quiet();
  o.allow_mixed = true;
  t = build_table(load_records({d.path()}), o);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].label(), "linear (backbone=vit_base_patch14_dinov2@5b2f6e0c+dinov2)");
  EXPECT_EQ(t.rows[1].label(), "linear (backbone=vit_base_patch14_dinov2@5b2f6e0c+timm)");
}

TEST(ReportBudget, BestRowPerMethodUnderEachBudgetAndTheParetoFront) {
  // Two methods on two backbones (two tasks of a non-VTAB set, so that two tasks make a complete row), peaks 100/300
  // MiB (small backbone) and 400/900 MiB (large); full on the large backbone also as a micro-batched run at 500 MiB.
  TempDir d;
  auto f1 = [](double v, int digits) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", digits, v);
    return std::string(b);
  };
  auto rec = [](const std::string& m, const std::string& task, double acc, double peak, const std::string& sha,
                const std::string& micro = "") {
    auto r = make_record(m, task, 42, acc);
    r["backbone"]["sha256"] = sha;
    r["memory"]["peak_train_mib"] = peak;
    if (!micro.empty()) r["settings"]["micro_batch"] = std::stoi(micro);  // as petl run --micro-batch records it
    return r;
  };
  const std::string s = "5b2f6e0c9d8e0000", l = "ffffffffffff0000";
  write_file(d / "r.jsonl",
             lines({rec("linear", "alpha", 60, 100, s), rec("linear", "beta", 50, 100, s),  // mean 55 @ 100
                    rec("full", "alpha", 70, 300, s), rec("full", "beta", 60, 290, s),      // mean 65 @ 295 (max 300)
                    rec("linear", "alpha", 64, 400, l), rec("linear", "beta", 56, 400, l),  // mean 60 @ 400
                    rec("full", "alpha", 80, 900, l), rec("full", "beta", 70, 900, l),      // mean 75 @ 900
                    rec("full", "alpha", 79, 500, l, "8"), rec("full", "beta", 69, 500, l, "8")}));  // 74 @ 500
  auto o = quiet();
  o.allow_mixed = true;
  o.budgets = {int64_t(1) << 30, 350LL << 20, 50LL << 20, 600LL << 20};
  Table t = build_table(load_records({d.path()}), o);
  ASSERT_EQ(t.budgets, (std::vector<int64_t>{50LL << 20, 350LL << 20, 600LL << 20, int64_t(1) << 30}));
  ASSERT_EQ(t.budget_best.size(), 2u);
  auto label = [&](int i) {
    return i < 0 ? std::string("-") : t.rows[size_t(i)].label() + " " + f1(t.rows[size_t(i)].mean, 1);
  };
  std::vector<std::string> lin, full;
  for (auto& [m, picks] : t.budget_best)
    for (auto& p : picks) (m == "linear" ? lin : full).push_back(label(p.row));
  EXPECT_EQ(lin[0], "-");
  EXPECT_TRUE(has(lin[1], "5b2f6e0c) 55.0")) << lin[1];
  EXPECT_TRUE(has(lin[2], "ffffffff) 60.0")) << lin[2];
  EXPECT_EQ(full[0], "-");
  EXPECT_TRUE(has(full[1], "@5b2f6e0c, whole batch) 65.0"))
      << full[1];  // 300 MiB fits 350; the large backbone does not
  EXPECT_TRUE(has(full[2], "micro_batch=8") && has(full[2], "74.0")) << full[2];  // 500 MiB: the micro-batched run
  EXPECT_TRUE(has(full[3], "75.0")) << full[3];
  // Pareto front by the Peak train column: linear small 55 @100, full small 65 @295, full micro 74 @500,
  // full large 75 @900; linear large (60 @400) is dominated by full small.
  std::vector<std::string> front;
  for (size_t i : t.pareto) front.push_back(f1(t.rows[i].mean, 1) + "@" + f1(t.rows[i].peak_train_mib, 0));
  EXPECT_EQ(front, (std::vector<std::string>{"55.0@100", "65.0@295", "74.0@500", "75.0@900"}));
  const std::string md = render_budget_view(t);
  for (auto* h : {"≤ 50.0 MiB", "≤ 350.0 MiB", "≤ 600.0 MiB", "≤ 1.0 GiB", "not run under this budget", "74.00 ("})
    EXPECT_TRUE(has(md, h)) << h << "\n" << md;
  EXPECT_TRUE(has(md, "Pareto front")) << md;
  EXPECT_EQ(render_budget_view(build_table(load_records({d.path()}),
                                           [&] {
                                             auto q = o;
                                             q.budgets.clear();
                                             return q;
                                           }())),
            "");
}

TEST(ReportValidation, MixedProtocolsNeedProtocolFlag) {
  TempDir d;
  auto fin = make_record("linear", "dtd", 42, 61);
  fin["protocol"] = "final";
  fin["accuracy"] = 60;
  write_file(d / "a.jsonl", lines({make_record("linear", "cifar", 42, 60), fin}));
  auto m = error_of([&] { build_table(load_records({d.path()}), quiet()); });
  EXPECT_TRUE(has(m, "records mix headline protocols: 'best_of_10' in 1 record(s) (" + (d / "a.jsonl:1") +
                         "); 'final' in 1 record(s) (" + (d / "a.jsonl:2") + ")"))
      << m;
  EXPECT_TRUE(has(m, "--protocol")) << m;
  auto o = quiet();
  o.protocol = "best_of_10";
  Table t = build_table(load_records({d.path()}, "best_of_10"), o);
  EXPECT_EQ(t.rows.size(), 1u);
  EXPECT_DOUBLE_EQ(t.rows[0].cells.at("dtd").acc.mean, 61);
}

TEST(ReportValidation, MixedPreprocessing) {
  TempDir d;
  auto inc = make_record("linear", "dtd", 42, 61);
  inc["data"]["normalisation"] = "inception";
  inc["settings"]["recipe"]["normalisation"] = "inception";
  write_file(d / "a.jsonl", lines({make_record("linear", "cifar", 42, 60), inc}));
  auto m = error_of([&] { build_table(load_records({d.path()}), quiet()); });
  EXPECT_TRUE(has(m, "records mix preprocessing (normalisation, image size): 'imagenet, 224 px' in 1 record(s) (" +
                         (d / "a.jsonl:1") + "); 'inception, 224 px' in 1 record(s) (" + (d / "a.jsonl:2") + ")"))
      << m;
}

// ------------------------------------------------------------------ warnings

TEST(ReportWarnings, DuplicatesLaterWinsAndFileNamedTwiceIsReadOnce) {
  TempDir d;
  write_file(d / "a.jsonl", lines({make_record("linear", "cifar", 42, 60), make_record("linear", "cifar", 42, 70)}));
  Table t = build_table(load_records({d / "a.jsonl", d.path(), d / "a.jsonl"}), quiet());
  EXPECT_EQ(t.records.files.size(), 1u);
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_TRUE(has(t.warnings[0], "duplicate record linear/cifar seed 42 (same settings): " + (d / "a.jsonl:1") +
                                     " and " + (d / "a.jsonl:2") + "; the later one is used"))
      << t.warnings[0];
  EXPECT_EQ(t.rows[0].cells.at("cifar").acc.n, 1);
  EXPECT_DOUBLE_EQ(t.rows[0].cells.at("cifar").acc.mean, 70);
  // A different lr is not a duplicate: it is a setting.
  auto lr = make_record("linear", "cifar", 42, 65);
  lr["settings"]["recipe"]["lr"] = "0.01";
  write_file(d / "b.jsonl", lines({lr}));
  Table t2 = build_table(load_records({d.path()}), quiet());
  EXPECT_EQ(t2.rows.size(), 2u);
  EXPECT_EQ(t2.rows[1].label(), "linear (lr=0.01)");
}

TEST(ReportWarnings, ManyDuplicatesAreSummarised) {
  TempDir d;
  std::vector<nlohmann::json> recs;
  for (int rep = 0; rep < 2; ++rep)
    for (int s = 0; s < 8; ++s) recs.push_back(make_record("linear", "cifar", s, 60 + s));
  write_file(d / "a.jsonl", lines(recs));
  Table t = build_table(load_records({d.path()}), quiet());
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_TRUE(has(t.warnings[0], "8 duplicate records")) << t.warnings[0];
  EXPECT_EQ(t.rows[0].cells.at("cifar").acc.n, 8);
}

TEST(ReportWarnings, DifferentTestListsForOneTask) {
  TempDir d;
  auto other = make_record("linear", "cifar", 43, 61);
  other["data"]["test_list_sha256"] = "different";
  write_file(d / "a.jsonl", lines({make_record("linear", "cifar", 42, 60), other}));
  Table t = build_table(load_records({d.path()}), quiet());
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_TRUE(has(t.warnings[0], "task cifar is evaluated on different test lists")) << t.warnings[0];
  EXPECT_TRUE(has(t.warnings[0], d / "a.jsonl:2")) << t.warnings[0];
}

// ------------------------------------------------------------------ reference CSVs

TEST(ReportReference, ProjectCopyOfVpetlBench) {
  auto ref = load_reference(kTests + "/../results/vpetl_bench_vtab1k.csv");
  EXPECT_EQ(ref.label, kDefaultReferenceLabel);
  EXPECT_EQ(ref.tasks, vtab_tasks());
  ASSERT_EQ(ref.rows.size(), 13u);
  for (auto& r : ref.rows) {
    ASSERT_EQ(r.acc.size(), 19u) << r.method;
    double s = 0;
    for (auto& [t, v] : r.acc) s += v;
    EXPECT_NEAR(s / 19, r.mean, 0.006) << r.method << ": the published mean is the plain 19-task mean";
    EXPECT_TRUE(std::isfinite(r.params_m)) << r.method;
  }
}

TEST(ReportReference, ReportCsvRoundTripsAsReference) {
  Table t = vtab_table();
  TempDir d;
  write_file(d / "report.csv", render_csv(t));
  auto ref = load_reference(d / "report.csv", "previous run");
  ASSERT_EQ(ref.rows.size(), 3u);  // only the "ours" rows
  EXPECT_EQ(ref.rows[1].label(), "synqt (lr=0.001)");
  EXPECT_EQ(ref.tasks, vtab_tasks());
  EXPECT_NEAR(ref.rows[0].acc.at("cifar"), 63.75, 1e-9);
  EXPECT_EQ(ref.rows[0].acc.count("caltech101"), 0u);
  // Against itself every Δ is zero.
  Table again = build_table(load_records({data("vtab")}), quiet(), ref);
  ASSERT_EQ(again.deltas.size(), 3u);
  for (auto& dl : again.deltas) EXPECT_NEAR(dl.mean, 0, 1e-4);
}

TEST(ReportReference, Errors) {
  TempDir d;
  write_file(d / "a.csv", "method,cifar,mean\nfull,68.9,68.9\nlinear,abc,1\n");
  EXPECT_TRUE(
      has(error_of([&] { load_reference(d / "a.csv"); }), d / "a.csv:3: column 'cifar': 'abc' is not a number"));
  write_file(d / "b.csv", "name,cifar\nfull,68.9\n");
  EXPECT_TRUE(has(error_of([&] { load_reference(d / "b.csv"); }), "no 'method' column"));
  write_file(d / "c.csv", "method,cifar\nfull,68.9,1\n");
  EXPECT_TRUE(has(error_of([&] { load_reference(d / "c.csv"); }), d / "c.csv:2: 3 fields, the header has 2"));
  EXPECT_TRUE(has(error_of([&] { load_reference(d / "none.csv"); }), "cannot open reference CSV"));
  write_file(d / "ok.csv", "method,cifar,dtd\n\"my, method\",70,–\n");
  auto ref = load_reference(d / "ok.csv");
  ASSERT_EQ(ref.rows.size(), 1u);
  EXPECT_EQ(ref.rows[0].method, "my, method");
  EXPECT_EQ(ref.rows[0].acc.count("dtd"), 0u);
  EXPECT_EQ(ref.label, "ok.csv");
}

// ------------------------------------------------------------------ plots

namespace {
// Points drawn in a gnuplot SVG: <use xlink:href='#gpPt<N>' transform='translate(...)...>.
int count_points(const std::string& svg) {
  const std::string head = "<use xlink:href='#gpPt", tail = "' transform='translate(";
  int n = 0;
  for (size_t p = svg.find(head); p != std::string::npos; p = svg.find(head, p + 1)) {
    size_t q = p + head.size();
    while (q < svg.size() && std::isdigit(static_cast<unsigned char>(svg[q]))) ++q;
    n += svg.compare(q, tail.size(), tail) == 0;
  }
  return n;
}
int data_lines(const std::string& file) {
  std::ifstream is(file);
  std::string l;
  int n = 0;
  while (std::getline(is, l))
    if (!l.empty() && l[0] != '#') ++n;
  return n;
}
}  // namespace

TEST(ReportPlots, OnePointPerMethodAndTask) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) PETL_SKIP_UNLESS_CI("gnuplot not installed");
  TempDir d;
  auto o = quiet();
  o.out_dir = d.path();
  o.plots = true;
  auto res = write_report({data("mini")}, o);
  EXPECT_TRUE(res.warnings.empty()) << res.warnings[0];
  // mini: linear and synqt on 3 tasks (synqt's fashion_mnist cell has 2 seeds) → 6 cells, 2 rows, 7 runs × 5 evals.
  const int cells = 6, rows = 2, eval_points = 7 * 5;
  for (auto name : {"acc_vs_memory", "acc_vs_memory_per_task", "acc_vs_params", "evals"}) {
    std::string png = d / (std::string("plots/") + name + ".png"), svg = d / (std::string("plots/") + name + ".svg");
    ASSERT_TRUE(fs::exists(png)) << png;
    ASSERT_TRUE(fs::exists(svg)) << svg;
    EXPECT_EQ(read_file(png).substr(1, 3), "PNG") << png;
    EXPECT_GT(fs::file_size(png), 5000u) << png;
    EXPECT_TRUE(has(read_file(svg), "<svg")) << svg;
    EXPECT_TRUE(has(read_file(d / "report.md"), std::string("](plots/") + name + ".png)")) << name;
  }
  // Every drawn point is an SVG <use> of a point glyph at a position; the key adds one sample per row.
  EXPECT_EQ(data_lines(d / "plots/acc_vs_memory_per_task.dat"), cells);
  EXPECT_EQ(count_points(read_file(d / "plots/acc_vs_memory_per_task.svg")), cells + rows);
  EXPECT_EQ(data_lines(d / "plots/acc_vs_memory.dat"), rows);
  EXPECT_EQ(count_points(read_file(d / "plots/acc_vs_memory.svg")), rows + rows);
  EXPECT_EQ(count_points(read_file(d / "plots/acc_vs_params.svg")), rows + rows);
  EXPECT_EQ(data_lines(d / "plots/evals.dat"), eval_points);
  EXPECT_EQ(count_points(read_file(d / "plots/evals.svg")), eval_points + rows);
  // Axes are labelled with units, and the SVG carries the task names as panel titles.
  auto svg = read_file(d / "plots/acc_vs_memory_per_task.svg");
  EXPECT_TRUE(has(svg, "Peak training memory (MiB)"));
  EXPECT_TRUE(has(svg, "Top-1 test accuracy (%)"));
  EXPECT_TRUE(has(svg, "objects_count"));
}

// ------------------------------------------------------------------ a run's output folder

namespace {
// A sweep's output folder as `petl sweep` leaves it: the journal (journal_path, the sweep's own
// name for it) with each record plus sweep_key and a cache build's line; every job's own copy of
// its record under jobs/<key>/results.jsonl; logs.
void write_sweep_folder(const std::string& out, const std::vector<nlohmann::json>& recs, int shard = 0,
                        int shards = 1) {
  std::string journal =
      "{\"schema\": \"petl.sweep_cache\", \"schema_version\": 1, \"kind\": \"cache\", "
      "\"status\": \"ok\", \"sweep_key\": \"c0\"}\n";
  for (size_t i = 0; i < recs.size(); ++i) {
    const std::string key = "k" + std::to_string(shard) + "_" + std::to_string(i);
    write_file(out + "/jobs/" + key + "/results.jsonl", recs[i].dump() + "\n");
    auto line = recs[i];
    line["sweep_key"] = key;
    line["sweep"] = "e2e";
    journal += line.dump() + "\n";
  }
  write_file(petl::journal_path(out, shard, shards), journal);
  write_file(out + "/logs/k0.log", "log\n");
}
}  // namespace

TEST(ReportLoad, ASweepFolderIsReadThroughItsJournalNotThePerJobCopies) {
  TempDir d;
  const std::string sweep = d / "sweep";
  write_sweep_folder(sweep, {make_record("linear", "cifar", 42, 60), make_record("linear", "dtd", 42, 50),
                             make_record("synqt", "cifar", 42, 70), make_record("synqt", "dtd", 42, 55)});
  auto recs = load_records({sweep});
  EXPECT_EQ(recs.files, std::vector<std::string>{petl::journal_path(sweep)});
  EXPECT_EQ(recs.runs.size(), 4u);
  EXPECT_EQ(recs.other_schemas.at("petl.sweep_cache"), 1);
  ASSERT_EQ(recs.read_notes.size(), 1u);
  EXPECT_TRUE(has(recs.read_notes[0], sweep + " is a sweep's output folder: read its journal " +
                                          petl::journal_path(sweep) + " only (not the 4 per-job copies under " + sweep +
                                          "/jobs/)"))
      << recs.read_notes[0];
  // No duplicate warning, and the report says in its notes what was read.
  auto o = quiet();
  o.out_dir = d / "report";
  auto res = write_report({sweep}, o);
  EXPECT_TRUE(res.warnings.empty()) << res.warnings[0];
  EXPECT_EQ(res.n_ok, 4);
  EXPECT_TRUE(has(read_file(d / "report/report.md"), "- " + recs.read_notes[0]));
  // Named inside a folder above it: the same, and the folder's other result files are read as before.
  write_file(d / "runs/a.jsonl", lines({make_record("full", "cifar", 42, 65)}));
  auto above = load_records({d.path()});
  EXPECT_EQ(above.files, (std::vector<std::string>{d / "runs/a.jsonl", petl::journal_path(sweep)}));
  EXPECT_EQ(above.runs.size(), 5u);
  EXPECT_EQ(above.read_notes, recs.read_notes);
  // The per-job copy named as a file is read as named.
  auto one = load_records({sweep + "/jobs/k0_1/results.jsonl"});
  EXPECT_EQ(one.runs.size(), 1u);
  EXPECT_TRUE(one.read_notes.empty());
}

TEST(ReportLoad, ShardedSweepJournalsAreAllReadAndAPlainFolderIsReadAsBefore) {
  TempDir d;
  write_sweep_folder(d / "s", {make_record("linear", "cifar", 42, 60)}, 0, 2);
  write_sweep_folder(d / "s", {make_record("linear", "dtd", 42, 50)}, 1, 2);
  auto recs = load_records({d / "s"});
  EXPECT_EQ(recs.files,
            (std::vector<std::string>{petl::journal_path(d / "s", 0, 2), petl::journal_path(d / "s", 1, 2)}));
  EXPECT_EQ(recs.runs.size(), 2u);
  EXPECT_EQ(recs.read_notes.size(), 1u);
  // A folder with a results.jsonl that is not a sweep journal (no sweep_key) and per-run copies
  // elsewhere: every *.jsonl, as before.
  write_file(d / "plain/results.jsonl", lines({make_record("linear", "cifar", 42, 60)}));
  write_file(d / "plain/jobs/x/results.jsonl", lines({make_record("linear", "dtd", 42, 50)}));
  auto plain = load_records({d / "plain"});
  EXPECT_EQ(plain.files.size(), 2u);
  EXPECT_TRUE(plain.read_notes.empty());
}

TEST(ReportLoad, ADemoFolderIsReadThroughItsResultsFile) {
  TempDir d;
  // petl demo's --out: results.jsonl (every run) and last_demo.jsonl (a copy of the last run's records).
  const auto a = make_record("linear", "cifar", 42, 60), b = make_record("linear", "dtd", 42, 50);
  write_file(d / "demo/results.jsonl", lines({a, b}));
  write_file(d / "demo/last_demo.jsonl", lines({b}));
  auto recs = load_records({d / "demo"});
  EXPECT_EQ(recs.files, std::vector<std::string>{d / "demo/results.jsonl"});
  ASSERT_EQ(recs.read_notes.size(), 1u);
  EXPECT_TRUE(has(recs.read_notes[0], "is a demo's output folder: read " + (d / "demo/results.jsonl") + " only"));
  EXPECT_TRUE(build_table(std::move(recs), quiet()).warnings.empty());
}

// ------------------------------------------------------------------ budget view wording, eval peak

TEST(ReportBudget, NotRunIsNotDoesNotFitAndRowsWithoutABudgetReadWell) {
  // Two tasks (a complete row needs both). lora without a budget (peak 36 MiB, eval 65.2 MiB) and
  // under a 10 MiB budget (9.5 MiB, micro-batch 8); full does not fit 10 MiB (minimum peak 45 MiB);
  // synqt peaks at 15 MiB and was never run under a budget; vqt fits 10 MiB on one task only.
  TempDir d;
  auto rec = [](const std::string& m, const std::string& task, double acc, double peak, double eval) {
    auto r = make_record(m, task, 42, acc);
    r["memory"]["peak_train_mib"] = peak;
    r["memory"]["peak_eval_mib"] = eval;
    return r;
  };
  auto budgeted = [&](const std::string& task, double acc) {
    auto r = rec("lora", task, acc, 9.5, 65.2);
    r["memory_budget"] = {{"budget_mib", 10.0}, {"minimum_peak_mib", 6.0}, {"micro_batch", 8}};
    r["settings"]["micro_batch"] = 8;
    return r;
  };
  nlohmann::json unfit = {
      {"schema", "petl.result"},  {"schema_version", 1},
      {"status", "does_not_fit"}, {"method", "full"},
      {"task", "beta"},           {"seed", 42},
      {"protocol", "best_of_10"}, {"memory_budget", {{"budget_mib", 10.0}, {"minimum_peak_mib", 45.0}}}};
  write_file(d / "r.jsonl", lines({rec("lora", "alpha", 70, 36, 65.2), rec("lora", "beta", 60, 35, 64.0),
                                   budgeted("alpha", 70), budgeted("beta", 61), rec("full", "alpha", 80, 300, 90),
                                   rec("full", "beta", 70, 300, 90), rec("synqt", "alpha", 66, 15, 121.3),
                                   rec("synqt", "beta", 56, 15, 120), rec("vqt", "alpha", 50, 8, 20)}) +
                                unfit.dump() + "\n");
  auto o = quiet();
  o.allow_mixed = true;
  o.budgets = {4LL << 20, 10LL << 20};
  Table t = build_table(load_records({d.path()}), o);
  EXPECT_EQ(t.rows[0].label(), "lora (no budget, whole batch)");
  EXPECT_EQ(t.rows[1].label(), "lora (budget 10.0 MiB, micro_batch=8)");
  const std::string md = render_budget_view(t);
  auto line_of = [&](const std::string& m) {
    auto p = md.find("| " + m + " ");
    return p == std::string::npos ? std::string() : md.substr(p, md.find('\n', p) - p);
  };
  using K = BudgetPick::Kind;
  ASSERT_EQ(t.budget_best.size(), 4u);
  EXPECT_EQ(t.budget_best[0].second[0].kind, K::kNotRun);  // lora ≤ 4 MiB: never tried
  EXPECT_EQ(t.budget_best[0].second[1].kind, K::kBest);
  EXPECT_EQ(t.budget_best[1].first, "full");
  EXPECT_EQ(t.budget_best[1].second[0].kind, K::kDoesNotFit);  // the record says 45 MiB > 4 MiB
  EXPECT_EQ(t.budget_best[1].second[1].kind, K::kDoesNotFit);
  EXPECT_EQ(t.budget_best[3].second[1].kind, K::kIncomplete);
  EXPECT_TRUE(has(line_of("lora"), "| not run under this budget (lowest peak 9.5 MiB) ")) << md;
  EXPECT_TRUE(has(line_of("lora"), "| 65.50 (budget 10.0 MiB, micro_batch=8; peak train 9.5, eval 65.2† MiB) ")) << md;
  EXPECT_TRUE(has(line_of("full"), "| does not fit (beta: minimum peak 45.0 MiB) ")) << md;
  EXPECT_FALSE(has(line_of("full"), "not run")) << md;
  EXPECT_TRUE(has(line_of("synqt"), "| not run under this budget (lowest peak 15.0 MiB) ")) << md;
  EXPECT_FALSE(has(line_of("synqt"), "does not fit")) << md;
  // vqt ran on one task only: its row, marked incomplete, with the tasks it ran.
  EXPECT_EQ(t.budget_best[3].second[1].row, 4);
  EXPECT_TRUE(has(line_of("vqt"), "| 50.00* (peak train 8.0, eval 20.0† MiB; 1 of 2 tasks run) ")) << md;
  EXPECT_EQ(t.budget_best[3].second[0].kind, K::kNotRun);  // 8 MiB > 4 MiB
  EXPECT_TRUE(has(md, "† the evaluation peak is above the budget")) << md;
  // The main table shows the evaluation peak beside the training peak (mean over the row's tasks).
  const std::string table = render_markdown_table(t);
  EXPECT_TRUE(has(table, "| Peak train (MiB) | Peak eval (MiB) |")) << table;
  EXPECT_TRUE(has(table, "|             35.5 |            64.6 |")) << table;  // lora without a budget
  EXPECT_NEAR(row_max_eval_mib(t.rows[0]), 65.2, 1e-12);
}

// ------------------------------------------------------------------ time and parameter columns

TEST(ReportRender, TimeColumnUnitAndReadableParameterCounts) {
  TempDir d;
  auto rec = [](const std::string& m, const std::string& task, int64_t params, double train_s) {
    auto r = make_record(m, task, 42, 60);
    r["trainable_params"] = params;
    r["timing"]["train_s"] = train_s;
    return r;
  };
  write_file(d / "r.jsonl", lines({rec("linear", "cifar", 776, 30), rec("bitfit", "cifar", 23839, 45),
                                   rec("synqt", "cifar", 2692854, 80), rec("full", "cifar", 85798656, 100)}));
  Table t = build_table(load_records({d.path()}), quiet());
  std::string md = render_markdown_table(t);
  EXPECT_TRUE(has(md, "| Params |")) << md;
  EXPECT_TRUE(has(md, "| Train (s/job) |")) << md;
  for (auto* cell : {"|    776 |", "| 23.8 K |", "| 2.69 M |", "| 85.8 M |", "|          30.0 |", "|         100.0 |"})
    EXPECT_TRUE(has(md, cell)) << cell << "\n" << md;
  EXPECT_TRUE(has(render_tex(t), "& 2.69 M &")) << render_tex(t);
  // The CSV keeps exact numbers: params_m as before, params (the count) and train_s added at the end.
  const std::string csv = render_csv(t);
  const std::string header = csv.substr(0, csv.find('\n'));
  EXPECT_TRUE(has(header,
                  ",mean,params_m,peak_train_mib,n_tasks,complete,source,params,peak_eval_mib,train_s,wall_h,"
                  "mean_std,mean_n_seeds"))
      << header;
  EXPECT_TRUE(has(csv, ",2.692854,350.500,1,0,petl,2692854,")) << csv;
  // Hours of training per job: the column switches its unit (one unit for the whole column).
  write_file(d / "r.jsonl", lines({rec("linear", "cifar", 776, 900), rec("full", "cifar", 85798656, 7200)}));
  md = render_markdown_table(build_table(load_records({d.path()}), quiet()));
  EXPECT_TRUE(has(md, "| Train (min/job) |")) << md;
  EXPECT_TRUE(has(md, "|           120.0 |")) << md;
  EXPECT_TRUE(has(md, "|            15.0 |")) << md;
}

namespace {
// A text of a gnuplot SVG: <g transform="translate(X,Y)[ rotate(R)]" ... font-size="F" ...
// text-anchor="A"> <text>CONTENT</text>.
struct SvgText {
  double x = 0, y = 0, font = 11;
  bool rotated = false;
  std::string anchor, text;
};
std::vector<SvgText> svg_texts(const std::string& svg) {
  std::vector<SvgText> out;
  const std::string head = "<g transform=\"translate(";
  for (size_t p = svg.find(head); p != std::string::npos; p = svg.find(head, p + 1)) {
    SvgText t;
    const size_t tag_end = svg.find('>', p);
    const std::string tag = svg.substr(p, tag_end - p);
    if (std::sscanf(tag.c_str() + head.size(), "%lf,%lf", &t.x, &t.y) != 2) continue;
    t.rotated = has(tag, "rotate(");
    if (auto f = tag.find("font-size=\""); f != std::string::npos) t.font = std::atof(tag.c_str() + f + 11);
    if (auto a = tag.find("text-anchor=\""); a != std::string::npos)
      t.anchor = tag.substr(a + 13, tag.find('"', a + 13) - a - 13);
    const size_t open = svg.find("<text>", tag_end), close = svg.find("</text>", tag_end);
    if (open == std::string::npos || close == std::string::npos || open > svg.find("</g>", tag_end)) continue;
    t.text = svg.substr(open + 6, close - open - 6);
    out.push_back(t);
  }
  return out;
}
// Tic labels on one line that run into each other: numbers on the same baseline, centred (the x
// tic labels of a panel), closer than half their widths together. Returns "a|b" per such pair.
std::vector<std::string> overlapping_tic_labels(const std::vector<SvgText>& texts) {
  std::map<long, std::vector<SvgText>> by_line;
  for (auto t : texts) {
    t.text.erase(0, t.text.find_first_not_of(' '));  // gnuplot writes " 1000"
    if (!t.rotated && t.anchor == "middle" && !t.text.empty() &&
        t.text.find_first_not_of("0123456789.-e+") == std::string::npos)
      by_line[std::lround(t.y * 10)].push_back(t);
  }
  std::vector<std::string> bad;
  for (auto& [y, line] : by_line) {
    std::sort(line.begin(), line.end(), [](const SvgText& a, const SvgText& b) { return a.x < b.x; });
    for (size_t i = 1; i < line.size(); ++i) {
      // A digit of DejaVu Sans is 0.636 em; the PNG draws the 11 pt font at 96 dpi (14.7 px, 4/3 of
      // the SVG's 11 units; measured: a 94-character subtitle is 719 px wide in the PNG). Half of
      // each label's width, plus a gap of half a digit.
      const double digit_px = 0.636 * line[i].font * 4.0 / 3.0;
      const double need = digit_px * (double(line[i - 1].text.size() + line[i].text.size()) / 2 + 0.5);
      if (line[i].x - line[i - 1].x < need) bad.push_back(line[i - 1].text + "|" + line[i].text);
    }
  }
  return bad;
}
// The SVG's canvas (viewBox="0 0 W H").
std::pair<double, double> svg_size(const std::string& svg) {
  double w = 0, h = 0;
  auto p = svg.find("viewBox=\"0 0 ");
  if (p != std::string::npos) std::sscanf(svg.c_str() + p + 13, "%lf %lf", &w, &h);
  return {w, h};
}
// Records of n methods (made-up names where the registry has fewer) on tasks, grid lrs per method.
std::string many_methods(int n, const std::vector<std::string>& tasks, const std::vector<std::string>& lrs) {
  static const std::vector<std::string> names = {
      "linear", "full",     "synqt",   "bitfit",  "vpt_shallow", "vpt_deep", "adapter", "adaptformer", "lora",
      "ssf",    "convpass", "fact_tt", "fact_tk", "dtl",         "dtl_plus", "vqt",     "lst"};
  std::vector<nlohmann::json> recs;
  for (int i = 0; i < n; ++i)
    for (size_t k = 0; k < tasks.size(); ++k)
      for (auto& lr : (i < 3 ? lrs : std::vector<std::string>{"0.001"})) {
        auto r = make_record(i < int(names.size()) ? names[size_t(i)] : "method_" + std::to_string(i), tasks[k], 42,
                             40 + i + double(k));
        r["settings"]["recipe"]["lr"] = lr;
        r["memory"]["peak_train_mib"] = 200.0 + 80.0 * i + double(k);  // 200 .. 1484 MiB: 4-digit tic labels
        r["trainable_params"] = 1000 * (i + 1);
        if (lrs.size() > 1) {  // 200 epochs, evaluated every 10: gnuplot alone puts 3-digit tics every 20
          r["evals"] = nlohmann::json::array();
          for (int e = 10; e <= 200; e += 10)
            r["evals"].push_back({{"epoch", e}, {"test_acc", 40 + i + e / 10.0}, {"train_loss", 1.0}});
        }
        recs.push_back(r);
      }
  return lines(recs);
}
}  // namespace

TEST(ReportPlots, ShortLabelsAKeyTableAndTheKeyInAStripBelowThePanels) {
  TempDir d;
  auto o = quiet();
  o.out_dir = d.path();
  o.plots = true;
  o.reference = data("reference.csv");
  Table t = build_table(load_records({data("vtab")}), o, load_reference(data("reference.csv")));
  write_plots(t, d.path());  // scripts, data and key.csv are written with or without gnuplot
  // The key table: one line per series (row), its short label, full setting and style.
  const std::string key = read_file(d / "plots/key.csv");
  EXPECT_EQ(data_lines(d / "plots/key.csv"), int(t.rows.size()) + 1) << key;
  EXPECT_TRUE(has(key, "label,method,setting,row,complete,color,point_type,")) << key;
  EXPECT_TRUE(has(key, "\nlinear,linear,,linear,0,#1f77b4,7,")) << key;
  EXPECT_TRUE(has(key, "\nsynqt #1,synqt,lr=0.001,synqt (lr=0.001),0,#ff7f0e,5,")) << key;
  EXPECT_TRUE(has(key, "\nsynqt #2,synqt,lr=0.005,synqt (lr=0.005),0,#2ca02c,9,")) << key;
  for (auto name : {"acc_vs_memory", "acc_vs_memory_per_task", "acc_vs_params", "evals"}) {
    const std::string gp = read_file(d / (std::string("plots/") + name + ".gp"));
    // Short labels only; the full setting is in the key table and the report.
    EXPECT_TRUE(has(gp, "title 'synqt #1*'")) << name;
    EXPECT_FALSE(has(gp, "lr=0.00")) << name;
    // Data plots carry no key of their own; the key is one plot in a strip at the bottom of the figure.
    EXPECT_TRUE(has(gp, "unset key")) << name;
    const size_t strip = gp.find("set origin 0,0\nset size 1,");
    ASSERT_NE(strip, std::string::npos) << name;
    EXPECT_LT(strip, gp.find("set key inside center center horizontal")) << name;
    // Every panel lies above the strip and inside the figure.
    double strip_h = 0;
    std::sscanf(gp.c_str() + strip + 26, "%lf", &strip_h);
    EXPECT_GT(strip_h, 0.0) << name;
    for (size_t p = gp.find("set origin "); p < strip; p = gp.find("set origin ", p + 1)) {
      double x, y, w, h;
      ASSERT_EQ(std::sscanf(gp.c_str() + p, "set origin %lf,%lf\nset size %lf,%lf", &x, &y, &w, &h), 4) << name;
      EXPECT_GE(y, strip_h - 1e-9) << name;
      EXPECT_LE(x + w, 1 + 1e-9) << name;
      EXPECT_LE(y + h, 1 + 1e-9) << name;
    }
  }
  // The report's Plots section maps short labels to rows (a label was shortened) and names key.csv.
  const std::string md = render_markdown(t, {"plots/evals.png"});
  EXPECT_TRUE(has(md, "**Plot key.**")) << md;
  EXPECT_TRUE(has(md, "| synqt #2*  | synqt  | lr=0.005 |")) << md;
  EXPECT_TRUE(has(md, "plots/key.csv")) << md;
}

TEST(ReportPlots, EveryTextFitsTheFrameAt1_3_17And23Rows) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) PETL_SKIP_UNLESS_CI("gnuplot not installed");
  // 23 rows: 17 methods, three of them at three learning rates (labels "linear #1" ...); long task names.
  const std::vector<std::string> tasks = {"fashion_mnist", "objects_count", "objects_dist", "sprites_loc",
                                          "sprites_orientation_long_task_name"};
  for (auto [n, lrs] : std::vector<std::pair<int, std::vector<std::string>>>{
           {1, {"0.001"}}, {3, {"0.001"}}, {17, {"0.001"}}, {17, {"0.001", "0.005", "0.01"}}}) {
    TempDir d;
    write_file(d / "r.jsonl", many_methods(n, tasks, lrs));
    auto o = quiet();
    o.out_dir = d.path();
    o.plots = true;
    auto res = write_report({d / "r.jsonl"}, o);
    ASSERT_TRUE(res.warnings.empty()) << res.warnings[0];
    const size_t rows = size_t(n) + (lrs.size() > 1 ? 3 * (lrs.size() - 1) : 0);
    EXPECT_EQ(size_t(data_lines(d / "plots/key.csv")), rows + 1);
    for (auto name : {"acc_vs_memory", "acc_vs_memory_per_task", "acc_vs_params", "evals"}) {
      const std::string svg = read_file(d / (std::string("plots/") + name + ".svg"));
      const auto [w, h] = svg_size(svg);
      ASSERT_GT(w, 0) << name;
      double lowest_axis_label = 0, highest_key_label = h;
      int key_labels = 0;
      const auto texts = svg_texts(svg);
      const auto crowded = overlapping_tic_labels(texts);
      EXPECT_TRUE(crowded.empty()) << name << " (" << rows << " rows): tic labels run together: " << crowded[0];
      for (auto& t : texts) {
        // DejaVu Sans averages about 0.62 em per character; 0.68 em errs on the wide side.
        const double len = double(t.text.size()) * 0.68 * t.font;
        const double lo = t.anchor == "middle" ? -len / 2 : t.anchor == "end" ? -len : 0;
        const std::string where = std::string(name) + " (" + std::to_string(rows) + " rows): '" + t.text + "'";
        if (t.rotated) {  // the y label, written upwards
          EXPECT_GE(t.y + lo, -1) << where;
          EXPECT_LE(t.y + lo + len, h + 1) << where;
          continue;
        }
        EXPECT_GE(t.x + lo, -1) << where << " starts left of the frame";
        EXPECT_LE(t.x + lo + len, w + 1) << where << " runs off the right edge";
        EXPECT_GE(t.y, 0) << where;
        EXPECT_LE(t.y, h + 1) << where;
        if (has(t.text, "Peak training memory (MiB)") || t.text == "Epoch" || has(t.text, "Trainable parameters ("))
          lowest_axis_label = std::max(lowest_axis_label, t.y);
        if (t.text == "linear" || t.text == "linear #1" || t.text == "linear #3" || t.text == "vqt" ||
            t.text == "lst" || t.text == "Pareto front") {
          if (t.font < 11) continue;  // a point's own label (9 pt) beside it in the plot
          ++key_labels;
          highest_key_label = std::min(highest_key_label, t.y);
        }
      }
      EXPECT_GT(key_labels, 0) << name;
      EXPECT_GT(highest_key_label, lowest_axis_label) << name << ": the key is below every panel";
    }
  }
}

// ------------------------------------------------------------------ few-shot FGVC

namespace {
// Few-shot records (benchmark "fewshot"): linear and lora on fgvc_aircraft and food101 at 1, 2 and
// 4 shots, split seeds 0, 1, 2, training seed 42. accuracy = base + 10·log2(shots) + offset[split]:
// linear: base 20 (fgvc_aircraft) / 50 (food101), offsets {0, 1, 3} / {3, 0, 1} (each mean 4/3,
// sample std sqrt(7/3) = 1.5275; per split seed the mean over the datasets is 36.5, 35.5, 37 at 1
// shot: std 0.7638); lora: base 30 / 60, offsets {0, 2, 4} on both (mean 2, std 2; per split
// 45, 47, 49: std 2). Parameters: linear 76900 / 77669, lora 1.2 M / 1.3 M; peak training memory:
// linear 350 / 360 MiB, lora 900 / 910 MiB. `keep` leaves records out.
using FewShotKeep = std::function<bool(const std::string& method, const std::string& dataset, int shots, int split)>;
std::vector<nlohmann::json> fewshot_records(const FewShotKeep& keep = nullptr) {
  std::vector<nlohmann::json> out;
  for (std::string m : {"linear", "lora"})
    for (std::string d : {"fgvc_aircraft", "food101"})
      for (int shots : {1, 2, 4})
        for (int split : {0, 1, 2}) {
          if (keep && !keep(m, d, shots, split)) continue;
          const bool lin = m == "linear", food = d == "food101";
          const int offsets_lin_air[] = {0, 1, 3}, offsets_lin_food[] = {3, 0, 1}, offsets_lora[] = {0, 2, 4};
          const double offset = lin ? (food ? offsets_lin_food : offsets_lin_air)[split] : offsets_lora[split];
          const double acc = (lin ? 20 : 30) + (food ? 30 : 0) + 10 * std::log2(double(shots)) + offset;
          auto r = make_record(m, d, 42, acc);
          r["benchmark"] = "fewshot";
          r["shots"] = shots;
          r["split_seed"] = split;
          r["trainable_params"] = lin ? (food ? 77669 : 76900) : (food ? 1300000 : 1200000);
          r["memory"]["peak_train_mib"] = (lin ? 350.0 : 900.0) + (food ? 10 : 0);
          out.push_back(r);
        }
  return out;
}

// The markdown table after the line `marker`: its lines' cells, trimmed (the separator row left out).
std::vector<std::vector<std::string>> md_table_after(const std::string& md, const std::string& marker) {
  std::vector<std::vector<std::string>> rows;
  size_t p = md.find("\n" + marker + "\n");
  if (p == std::string::npos) return rows;
  std::istringstream is(md.substr(p + marker.size() + 2));
  std::string line;
  while (std::getline(is, line) && (line.empty() || line[0] == '|' || rows.empty())) {
    if (line.empty() || line[0] != '|') {
      if (!rows.empty()) break;
      continue;
    }
    if (line.find(":--") != std::string::npos || line.find("-:") != std::string::npos) continue;
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream ls(line.substr(1));
    while (std::getline(ls, cell, '|')) {
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      cells.push_back(cell);
    }
    rows.push_back(cells);
  }
  return rows;
}

using Cells = std::vector<std::string>;
}  // namespace

TEST(ReportFewShot, OneTablePerDatasetAndTheMeanOverTheDatasets) {
  TempDir d;
  auto recs = fewshot_records();
  nlohmann::json failed = {{"schema", "petl.result"}, {"schema_version", 1}, {"status", "failed"},
                           {"method", "lora"},        {"task", "food101"},   {"seed", 43},
                           {"error", "out of memory"}};
  write_file(d / "fs.jsonl", lines(recs) + failed.dump() + "\n");
  auto o = quiet();
  o.reference = "default";  // the VTAB-1k numbers are not shown: a note
  o.out_dir = d / "out";
  auto res = write_report({d / "fs.jsonl"}, o);
  EXPECT_EQ(res.n_ok, 36);
  EXPECT_EQ(res.n_failed, 1);
  const std::string md = read_file(d / "out/report.md");
  const Cells header{"Method", "1-shot", "2-shot", "4-shot", "Params", "Peak train (MiB)"};
  auto air = md_table_after(md, "*fgvc_aircraft*");
  ASSERT_EQ(air.size(), 3u) << md;
  EXPECT_EQ(air[0], header);
  EXPECT_EQ(air[1], (Cells{"linear", "21.33 ± 1.53", "31.33 ± 1.53", "41.33 ± 1.53", "76.9 K", "350.0"}));
  EXPECT_EQ(air[2], (Cells{"lora", "32.00 ± 2.00", "42.00 ± 2.00", "52.00 ± 2.00", "1.2 M", "900.0"}));
  auto food = md_table_after(md, "*food101*");
  ASSERT_EQ(food.size(), 3u) << md;
  EXPECT_EQ(food[1], (Cells{"linear", "51.33 ± 1.53", "61.33 ± 1.53", "71.33 ± 1.53", "77.7 K", "360.0"}));
  EXPECT_EQ(food[2], (Cells{"lora", "62.00 ± 2.00", "72.00 ± 2.00", "82.00 ± 2.00", "1.3 M", "910.0"}));
  const size_t mean_at = md.find("**Table 2.** Mean over the datasets (fgvc_aircraft, food101)");
  ASSERT_NE(mean_at, std::string::npos) << md;
  auto mean = md_table_after(md.substr(mean_at - 1), md.substr(mean_at, md.find('\n', mean_at) - mean_at));
  ASSERT_EQ(mean.size(), 3u) << md;
  EXPECT_EQ(mean[0], header);
  EXPECT_EQ(mean[1], (Cells{"linear", "36.33 ± 0.76", "46.33 ± 0.76", "56.33 ± 0.76", "77.3 K", "355.0"}));
  EXPECT_EQ(mean[2], (Cells{"lora", "47.00 ± 2.00", "57.00 ± 2.00", "67.00 ± 2.00", "1.25 M", "905.0"}));
  // The caption: the benchmark, the seeds, the protocol and that best_of_10 selected on the test list.
  EXPECT_TRUE(has(md,
                  "on few-shot FGVC (2 datasets; k-shot: k training images per class from NOAH's train lists; "
                  "split seeds 0, 1, 2, training seeds 42), protocol best_of_10"))
      << md;
  EXPECT_TRUE(has(md, "The test set selected these numbers: best_of_10")) << md;
  EXPECT_TRUE(has(md, "n = 3 runs unless marked (n=k)")) << md;
  EXPECT_TRUE(has(md, "No reference rows: the published numbers (V-PETL Bench")) << md;
  EXPECT_FALSE(has(md, "*published*")) << md;
  EXPECT_TRUE(has(md, "### Failed jobs (not tabulated)\n\n- lora/food101 seed 43")) << md;
  EXPECT_FALSE(has(md, "Mean over the datasets: – for")) << md;  // every row has every dataset
  EXPECT_EQ(res.printed, res.table_markdown);
  EXPECT_TRUE(has(md, res.table_markdown));

  // The same numbers in the table itself.
  FewShotTable t = build_fewshot_table(load_records({d / "fs.jsonl"}), quiet());
  EXPECT_EQ(t.datasets, (std::vector<std::string>{"fgvc_aircraft", "food101"}));
  EXPECT_EQ(t.shots, (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(t.full_n, 3);
  ASSERT_EQ(t.rows.size(), 2u);
  const Cell* c = fewshot_cell(t.rows[0].row, "food101", 4);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->acc.n, 3);
  EXPECT_NEAR(c->acc.mean, 70 + 4.0 / 3, 1e-9);
  EXPECT_NEAR(c->acc.std, std::sqrt(7.0 / 3), 1e-9);
  EXPECT_EQ(c->split_seeds, (std::vector<int>{0, 1, 2}));
  const FewShotMean& m1 = t.rows[0].means.at(1);
  EXPECT_EQ(m1.n_datasets, 2);
  EXPECT_NEAR(m1.mean, 35 + 4.0 / 3, 1e-9);
  EXPECT_EQ(m1.spread.n, 3);
  EXPECT_NEAR(m1.spread.std, std::sqrt((1.0 / 36 + 25.0 / 36 + 16.0 / 36) / 2), 1e-9);  // of 36.5, 35.5, 37
  auto tex = render_fewshot_tex(t);
  EXPECT_TRUE(has(tex, "linear & 21.33 $\\pm$ 1.53 & 31.33 $\\pm$ 1.53 & 41.33 $\\pm$ 1.53 & 76.9 K & 350.0 \\\\"))
      << tex;
  EXPECT_TRUE(has(tex, "\\emph{Mean over the datasets}")) << tex;
}

TEST(ReportFewShot, LongCsvAndMeanCsvRows) {
  TempDir d;
  write_file(d / "fs.jsonl", lines(fewshot_records()));
  auto o = quiet();
  o.out_dir = d / "out";
  o.format = "csv";
  auto res = write_report({d / "fs.jsonl"}, o);
  const std::string csv = read_file(d / "out/report.csv");
  EXPECT_EQ(res.printed, csv);
  std::istringstream is(csv);
  std::vector<std::string> rows;
  for (std::string l; std::getline(is, l);) rows.push_back(l);
  ASSERT_EQ(rows.size(), 1u + 2 * 2 * 3) << csv;  // header + method × dataset × shots
  EXPECT_EQ(rows[0],
            "method,setting,dataset,shots,mean,std,n,n_split_seeds,n_seeds,trainable_params,peak_train_mib,protocol");
  EXPECT_EQ(rows[1], "linear,,fgvc_aircraft,1,21.3333,1.5275,3,3,1,76900,350.000,best_of_10");
  EXPECT_EQ(rows[6], "linear,,food101,4,71.3333,1.5275,3,3,1,77669,360.000,best_of_10");
  EXPECT_EQ(rows[8], "lora,,fgvc_aircraft,2,42.0000,2.0000,3,3,1,1200000,900.000,best_of_10");
  const std::string means = read_file(d / "out/report_mean.csv");
  EXPECT_TRUE(has(means, "method,setting,shots,mean,std,n,n_datasets,complete,trainable_params,peak_train_mib\n"))
      << means;
  EXPECT_TRUE(has(means, "\nlinear,,1,36.3333,0.7638,3,2,1,77284.5,355.000\n")) << means;
  EXPECT_TRUE(has(means, "\nlora,,4,67.0000,2.0000,3,2,1,1250000,905.000\n")) << means;
}

TEST(ReportFewShot, AMissingDatasetIsADashAndFewerSeedsAreMarked) {
  TempDir d;
  // lora has no food101 at 4 shots; linear's food101 at 2 shots lacks split seed 2.
  write_file(d / "fs.jsonl", lines(fewshot_records([](const std::string& m, const std::string& ds, int k, int s) {
               return !(m == "lora" && ds == "food101" && k == 4) &&
                      !(m == "linear" && ds == "food101" && k == 2 && s == 2);
             })));
  auto o = quiet();
  o.out_dir = d / "out";
  write_report({d / "fs.jsonl"}, o);
  const std::string md = read_file(d / "out/report.md");
  auto food = md_table_after(md, "*food101*");
  ASSERT_EQ(food.size(), 3u) << md;
  // 63 and 60: mean 61.5, std 3/sqrt(2).
  EXPECT_EQ(food[1], (Cells{"linear", "51.33 ± 1.53", "61.50 ± 2.12 (n=2)", "71.33 ± 1.53", "77.7 K", "360.0"}));
  EXPECT_EQ(food[2], (Cells{"lora", "62.00 ± 2.00", "72.00 ± 2.00", "–", "1.3 M", "910.0"}));
  const size_t mean_at = md.find("**Table 2.**");
  ASSERT_NE(mean_at, std::string::npos);
  auto mean = md_table_after(md.substr(mean_at - 1), md.substr(mean_at, md.find('\n', mean_at) - mean_at));
  ASSERT_EQ(mean.size(), 3u) << md;
  // linear at 2 shots: (31.33 + 61.5) / 2; split seeds 0 and 1 are common: (30 + 63) / 2, (31 + 60) / 2.
  EXPECT_EQ(mean[1][2], "46.42 ± 0.71 (n=2)");
  EXPECT_EQ(mean[2][3], "–");
  EXPECT_EQ(mean[2][2], "57.00 ± 2.00");
  EXPECT_TRUE(has(md, "- Mean over the datasets: – for lora at 4 shots, which has no record of food101.")) << md;
  const std::string means = read_file(d / "out/report_mean.csv");
  EXPECT_TRUE(has(means, "\nlora,,4,,,,1,0,")) << means;
  EXPECT_FALSE(has(read_file(d / "out/report.csv"), "lora,,food101,4,")) << read_file(d / "out/report.csv");
}

TEST(ReportFewShot, MixingVtabAndFewShotRecordsIsAnError) {
  TempDir d;
  write_file(d / "vtab.jsonl", lines({make_record("linear", "cifar", 42, 60)}));
  write_file(d / "fs.jsonl", lines(fewshot_records()));
  for (bool allow : {false, true}) {
    auto o = quiet();
    o.allow_mixed = allow;
    auto m = error_of([&] { write_report({d / "vtab.jsonl", d / "fs.jsonl"}, o); });
    EXPECT_TRUE(has(m, "records mix benchmarks")) << m;
    EXPECT_TRUE(has(m, "VTAB-1k (no \"benchmark\") in 1 ok record(s) of " + (d / "vtab.jsonl"))) << m;
    EXPECT_TRUE(has(m, "'fewshot' in 36 ok record(s) of " + (d / "fs.jsonl"))) << m;
  }
  // Each table builder refuses the other benchmark's records.
  auto m = error_of([&] { build_table(load_records({d / "fs.jsonl"}), quiet()); });
  EXPECT_TRUE(has(m, "build_fewshot_table")) << m;
  m = error_of([&] { build_fewshot_table(load_records({d / "vtab.jsonl"}), quiet()); });
  EXPECT_TRUE(has(m, "not few-shot")) << m;
}

TEST(ReportFewShot, RecordsWithoutShotsFailAndDuplicatesNameTheShots) {
  TempDir d;
  auto recs = fewshot_records();
  auto bad = recs[0];
  bad.erase("shots");
  write_file(d / "bad.jsonl", lines({recs[1], bad}));
  auto m = error_of([&] { load_records({d / "bad.jsonl"}); });
  EXPECT_TRUE(has(m, d / "bad.jsonl:2: few-shot record (benchmark \"fewshot\") with no shots")) << m;
  // A re-run of one job: the later record is used, the warning names its shots and split seed.
  auto rerun = recs[0];
  rerun["accuracy"] = 99.0;
  recs.push_back(rerun);
  write_file(d / "dup.jsonl", lines(recs));
  FewShotTable t = build_fewshot_table(load_records({d / "dup.jsonl"}), quiet());
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_TRUE(has(t.warnings[0], "duplicate record linear/fgvc_aircraft 1-shot split 0 seed 42")) << t.warnings[0];
  const Cell* c = fewshot_cell(t.rows[0].row, "fgvc_aircraft", 1);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->acc.n, 3);
  EXPECT_NEAR(c->acc.mean, (99.0 + 21 + 23) / 3, 1e-9);
  // A swept setting splits rows as in the VTAB table; the split seed in a recipe does not.
  auto swept = fewshot_records();
  for (auto& r : swept) {
    r["settings"]["recipe"]["split_seed"] = std::to_string(r["split_seed"].get<int>());
    if (r["method"] == "lora") r["settings"]["recipe"]["lr"] = r["task"] == "food101" ? "0.01" : "0.001";
  }
  auto more = fewshot_records([](const std::string& m, const std::string&, int, int) { return m == "lora"; });
  for (auto& r : more) {
    r["settings"]["recipe"]["lr"] = "0.005";
    swept.push_back(r);
  }
  write_file(d / "swept.jsonl", lines(swept));
  t = build_fewshot_table(load_records({d / "swept.jsonl"}), quiet());
  std::vector<std::string> labels;
  for (auto& fr : t.rows) labels.push_back(fr.row.label());
  EXPECT_EQ(labels, (std::vector<std::string>{"linear", "lora (lr=0.001)", "lora (lr=0.005)", "lora (lr=0.01)"}));
}

TEST(ReportFewShot, PlotsHaveALog2ShotsAxisAndOneLinePerRow) {
  TempDir d;
  write_file(d / "fs.jsonl", lines(fewshot_records([](const std::string& m, const std::string& ds, int k, int) {
               return !(m == "lora" && ds == "food101" && k == 4);
             })));
  auto o = quiet();
  o.out_dir = d / "out";
  o.plots = true;
  auto res = write_report({d / "fs.jsonl"}, o);
  for (auto stem : {"fewshot_fgvc_aircraft", "fewshot_food101", "fewshot_mean"}) {
    const std::string gp = read_file(d / (std::string("out/plots/") + stem + ".gp"));
    ASSERT_FALSE(gp.empty()) << stem;
    EXPECT_TRUE(has(gp, "set logscale x 2\n")) << gp;
    EXPECT_TRUE(has(gp, "set xtics ('1' 1, '2' 2, '4' 4)\n")) << gp;
    EXPECT_TRUE(has(gp, "index 1 using 1:2:3 with yerrorlines")) << gp;  // two lines (linear, lora)
    EXPECT_FALSE(has(gp, "index 2 ")) << gp;
    EXPECT_TRUE(has(gp, "set output '" + std::string(stem) + ".png'")) << gp;
  }
  // One data line per point: lora has no food101 at 4 shots, so neither a point there nor in the mean.
  EXPECT_EQ(data_lines(d / "out/plots/fewshot_fgvc_aircraft.dat"), 6);
  EXPECT_EQ(data_lines(d / "out/plots/fewshot_food101.dat"), 5);
  EXPECT_EQ(data_lines(d / "out/plots/fewshot_mean.dat"), 5);
  EXPECT_TRUE(has(read_file(d / "out/plots/fewshot_fgvc_aircraft.dat"), "\n1 21.3333 1.52753 3\n"));
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    ASSERT_EQ(res.warnings.size(), 1u);
    EXPECT_TRUE(has(res.warnings[0], "gnuplot not found"));
    return;
  }
  EXPECT_TRUE(res.warnings.empty()) << res.warnings[0];
  EXPECT_EQ(read_file(d / "out/plots/fewshot_mean.png").substr(1, 3), "PNG");
  const std::string md = read_file(d / "out/report.md");
  EXPECT_TRUE(has(md, "![food101: accuracy vs shots per class](plots/fewshot_food101.png)")) << md;
  EXPECT_TRUE(has(md, "](plots/fewshot_mean.png)")) << md;
}

// ------------------------------------------------------------------ selection without the test set (val_select)

namespace {

// A val_select final record: trained on train800val200 with the chosen lr and epoch count; its
// accuracy (and accuracy_by_protocol.val_select) is the test accuracy after its last epoch.
nlohmann::json final_record(const std::string& method, const std::string& task, int seed, double val_select,
                            const std::string& lr, int epoch) {
  auto r = make_record(method, task, seed, val_select + 0.3);  // the run's own best_of_10 (not used by the section)
  r["protocol"] = "val_select";
  r["stage"] = "final";
  r["accuracy"] = val_select;
  r["accuracy_by_protocol"]["final"] = val_select;
  r["accuracy_by_protocol"]["val_select"] = val_select;
  r["selection"] = {{"search_job_keys", {"s1", "s2"}},
                    {"chosen", {{"sets", {{"lr", lr}}}, {"epochs", epoch}, {"val_acc", 71.0}, {"job_key", "s1"}}},
                    {"rule", "best val200 accuracy, then the fewer epochs"},
                    {"candidates", nlohmann::json::array()}};
  r["job_key"] = method + "_" + task + "_" + std::to_string(seed) + "_final";
  return r;
}
// A val_select search point: its accuracies are val200's (99.99 here, so a tabulated one would show).
nlohmann::json search_record(const std::string& method, const std::string& task, int seed) {
  auto r = make_record(method, task, seed, 99.99);
  r["protocol"] = "val_select";
  r["stage"] = "search";
  r["accuracy_by_protocol"]["val_select"] = 99.99;
  return r;
}
// An ordinary best_of_10 record with the given best_of_10 and final accuracies.
nlohmann::json ordinary_record(const std::string& method, const std::string& task, int seed, double b10, double fin) {
  auto r = make_record(method, task, seed, b10);
  r["accuracy_by_protocol"]["final"] = fin;
  return r;
}

// 2 methods × 3 tasks × 2 seeds: ordinary records, final records (synqt/eurosat has none) and 5
// search records. Per cell (mean over the seeds): best_of_10 / final / val_select / inflation
//   linear cifar 61 / 59.5 / 58.5 / +2.5, dtd 50.5 / 49 / 50 / +0.5, eurosat 91 / 89.5 / 88 / +3
//     → Mean 67.5 / 66 / 65.5 / +2 over all 3 tasks
//   synqt  cifar 70 / 69 / 69.5 / +0.5, dtd 56 / 54.5 / 57 / −1, eurosat 95 / 94 / – / –
//     → Mean 63 / 61.75 / 63.25 / −0.25 over cifar and dtd only (*)
std::vector<nlohmann::json> selection_records() {
  return {ordinary_record("linear", "eurosat", 42, 90, 89),  // eurosat first: the columns follow VTAB's order
          ordinary_record("linear", "eurosat", 43, 92, 90),
          ordinary_record("linear", "cifar", 42, 60, 59),
          ordinary_record("linear", "cifar", 43, 62, 60),
          ordinary_record("linear", "dtd", 42, 50, 49),
          ordinary_record("linear", "dtd", 43, 51, 49),
          ordinary_record("synqt", "cifar", 42, 70, 69),
          ordinary_record("synqt", "cifar", 43, 70, 69),
          ordinary_record("synqt", "dtd", 42, 55, 54),
          ordinary_record("synqt", "dtd", 43, 57, 55),
          ordinary_record("synqt", "eurosat", 42, 95, 94),
          ordinary_record("synqt", "eurosat", 43, 95, 94),
          search_record("linear", "cifar", 42),
          search_record("linear", "cifar", 43),
          search_record("synqt", "dtd", 42),
          search_record("synqt", "eurosat", 42),
          search_record("synqt", "eurosat", 43),
          final_record("linear", "cifar", 43, 59, "0.01", 20),  // seed 43 before 42: chosen is listed by seed
          final_record("linear", "cifar", 42, 58, "0.001", 30),
          final_record("linear", "dtd", 42, 49.5, "0.001", 30),
          final_record("linear", "dtd", 43, 50.5, "0.001", 40),
          final_record("linear", "eurosat", 42, 88, "0.005", 30),
          final_record("linear", "eurosat", 43, 88, "0.005", 30),
          final_record("synqt", "cifar", 42, 69, "0.001", 10),
          final_record("synqt", "cifar", 43, 70, "0.001", 10),
          final_record("synqt", "dtd", 42, 56.5, "0.002", 30),
          final_record("synqt", "dtd", 43, 57.5, "0.002", 30)};
}

// The trimmed cells of the markdown table line whose first two cells are (a, b); empty when none.
std::vector<std::string> md_row(const std::string& md, const std::string& a, const std::string& b) {
  std::istringstream is(md);
  std::string line;
  while (std::getline(is, line)) {
    if (line.empty() || line[0] != '|') continue;
    std::vector<std::string> cells;
    std::string cell;
    for (size_t i = 1; i < line.size(); ++i) {
      if (line[i] != '|') {
        cell += line[i];
        continue;
      }
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      cells.push_back(cell);
      cell.clear();
    }
    if (cells.size() >= 2 && cells[0] == a && cells[1] == b) return {cells.begin() + 2, cells.end()};
  }
  return {};
}

std::string section_of(const std::string& md) {
  auto p = md.find("## Selection without the test set");
  if (p == std::string::npos) return "";
  auto q = md.find("\n## ", p + 1);
  return md.substr(p, q == std::string::npos ? std::string::npos : q - p);
}

}  // namespace

TEST(ReportSelection, TableOfBestOf10FinalValSelectAndInflation) {
  TempDir d;
  write_file(d / "results.jsonl", lines(selection_records()));
  Table t = build_table(load_records({d.path()}), quiet());
  // The main table is the ordinary records' (best_of_10): no mixed-protocol error, no final record in it.
  EXPECT_EQ(t.protocol, "best_of_10");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.records.runs.size(), 12u);
  EXPECT_DOUBLE_EQ(row_named(t, "linear").mean, 67.5);
  EXPECT_FALSE(t.selection.finals_in_main);
  EXPECT_EQ(t.selection.finals.size(), 10u);
  EXPECT_EQ(t.selection.tasks, (std::vector<std::string>{"cifar", "dtd", "eurosat"}));
  ASSERT_EQ(t.selection.rows.size(), 2u);
  const SelectionRow& syn = t.selection.rows[1];
  EXPECT_EQ(syn.method, "synqt");
  EXPECT_EQ(syn.n_common, 2);
  EXPECT_FALSE(syn.complete);
  EXPECT_DOUBLE_EQ(syn.min_inflation, -1.0);
  EXPECT_EQ(syn.min_task, "dtd");
  EXPECT_DOUBLE_EQ(syn.max_inflation, 0.5);
  EXPECT_EQ(syn.max_task, "cifar");

  const std::string md = section_of(render_markdown(t));
  ASSERT_FALSE(md.empty());
  EXPECT_EQ(md_row(md, "Method", "Protocol"), (std::vector<std::string>{"cifar", "dtd", "eurosat", "Mean"}));
  using V = std::vector<std::string>;
  EXPECT_EQ(md_row(md, "linear", "best_of_10"), (V{"61.00", "50.50", "91.00", "67.50"}));
  EXPECT_EQ(md_row(md, "linear", "final"), (V{"59.50", "49.00", "89.50", "66.00"}));
  EXPECT_EQ(md_row(md, "linear", "val_select"), (V{"58.50", "50.00", "88.00", "65.50"}));
  EXPECT_EQ(md_row(md, "linear", "inflation"), (V{"+2.50", "+0.50", "+3.00", "+2.00"}));
  // synqt has no val_select record on eurosat: –, and its Mean covers cifar and dtd only (*).
  EXPECT_EQ(md_row(md, "synqt", "best_of_10"), (V{"70.00", "56.00", "95.00", "63.00*"}));
  EXPECT_EQ(md_row(md, "synqt", "final"), (V{"69.00", "54.50", "94.00", "61.75*"}));
  EXPECT_EQ(md_row(md, "synqt", "val_select"), (V{"69.50", "57.00", "–", "63.25*"}));
  EXPECT_EQ(md_row(md, "synqt", "inflation"), (V{"+0.50", "-1.00", "–", "-0.25*"}));
  // The caption says which numbers used the test set.
  EXPECT_TRUE(has(md, "best_of_10 selects the epoch on the test list")) << md;
  EXPECT_TRUE(has(md, "final uses the test list once (after the last epoch, default settings, no selection)")) << md;
  EXPECT_TRUE(has(md, "val_select selects settings and epoch on val200 and uses the test list once")) << md;
  // The inflation summary: mean, min and max per method.
  EXPECT_TRUE(has(md, "- linear: mean +2.00 over 3 task(s); per task min +0.50 (dtd), max +3.00 (eurosat)")) << md;
  EXPECT_TRUE(has(md, "- synqt: mean -0.25* over 2 of 3 task(s); per task min -1.00 (dtd), max +0.50 (cifar)")) << md;
}

TEST(ReportSelection, SearchRecordsAreCountedNotTabulated) {
  TempDir d;
  write_file(d / "results.jsonl", lines(selection_records()));
  Records recs = load_records({d.path()});
  EXPECT_EQ(recs.val_select_search, 5);
  EXPECT_EQ(recs.runs.size(), 22u);  // 12 ordinary + 10 final
  for (auto& r : recs.runs) EXPECT_NE(r.record.stage, "search") << r.src.where();
  Table t = build_table(std::move(recs), quiet());
  const std::string md = render_markdown(t);
  EXPECT_TRUE(has(md, "- 5 val_select search record(s) (accuracies on val200) not tabulated.")) << md;
  EXPECT_TRUE(has(md, "12 ok record(s) tabulated")) << md;
  EXPECT_TRUE(has(md, "10 val_select final record(s) in \"Selection without the test set\", not in Table 1.")) << md;
  EXPECT_FALSE(has(md, "99.99")) << md;  // the search points' val200 accuracy appears nowhere

  // Search records alone: nothing to tabulate, and the error says what was read.
  TempDir only;
  write_file(only / "results.jsonl", lines({search_record("linear", "cifar", 42), search_record("linear", "dtd", 42)}));
  auto m = error_of([&] { build_table(load_records({only.path()}), quiet()); });
  EXPECT_TRUE(has(m, "2 val_select search record(s) (accuracies on val200, never tabulated)")) << m;
}

TEST(ReportSelection, CsvOneLinePerMethodAndTask) {
  TempDir d;
  write_file(d / "results.jsonl", lines(selection_records()));
  Table t = build_table(load_records({d.path()}), quiet());
  EXPECT_EQ(render_selection_csv(t),
            "method,task,best_of_10,final,val_select,inflation,n_seeds_ordinary,n_seeds_val_select,chosen\n"
            "linear,cifar,61,59.5,58.5,2.5,2,2,lr=0.001 epochs=30;lr=0.01 epochs=20\n"
            "linear,dtd,50.5,49,50,0.5,2,2,lr=0.001 epochs=30;lr=0.001 epochs=40\n"
            "linear,eurosat,91,89.5,88,3,2,2,lr=0.005 epochs=30;lr=0.005 epochs=30\n"
            "synqt,cifar,70,69,69.5,0.5,2,2,lr=0.001 epochs=10;lr=0.001 epochs=10\n"
            "synqt,dtd,56,54.5,57,-1,2,2,lr=0.002 epochs=30;lr=0.002 epochs=30\n"
            "synqt,eurosat,95,94,,,2,0,\n");
}

TEST(ReportSelection, WriteReportWritesTheSectionTheCsvAndThePlot) {
  TempDir d;
  write_file(d / "in/results.jsonl", lines(selection_records()));
  auto o = quiet();
  o.out_dir = d / "out";
  o.plots = true;
  auto res = write_report({d / "in"}, o);
  EXPECT_EQ(res.n_ok, 22);
  EXPECT_TRUE(has(res.table_markdown, "## Selection without the test set")) << res.table_markdown;
  const std::string csv = d / "out/report_selection.csv";
  ASSERT_TRUE(fs::exists(csv));
  EXPECT_NE(std::find(res.files.begin(), res.files.end(), csv), res.files.end());
  EXPECT_EQ(read_file(csv).substr(0, 16), "method,task,best");
  // The plot: 2 bars (one per method) and a point per task with an inflation (5).
  const std::string dat = d / "out/plots/selection_inflation.dat";
  ASSERT_TRUE(fs::exists(d / "out/plots/selection_inflation.gp"));
  ASSERT_TRUE(fs::exists(dat));
  EXPECT_EQ(data_lines(dat), 2 + 5);
  const std::string md = read_file(d / "out/report.md");
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) PETL_SKIP_UNLESS_CI("gnuplot not installed");
  EXPECT_TRUE(res.warnings.empty()) << res.warnings[0];
  ASSERT_TRUE(fs::exists(d / "out/plots/selection_inflation.png"));
  const std::string svg = read_file(d / "out/plots/selection_inflation.svg");
  EXPECT_EQ(count_points(svg), 5 + 1);  // the task points and the key's sample
  EXPECT_TRUE(has(svg, "best_of_10 − val_select (accuracy points)"));
  // Shown in the selection section, not again under Plots.
  EXPECT_TRUE(has(section_of(md), "](plots/selection_inflation.png)")) << md;
  EXPECT_EQ(md.find("](plots/selection_inflation.png)"), md.rfind("](plots/selection_inflation.png)"));
}

TEST(ReportSelection, OnlyFinalRecordsMakeTheMainTable) {
  TempDir d;
  write_file(d / "results.jsonl",
             lines({final_record("linear", "cifar", 42, 58, "0.001", 30),
                    final_record("linear", "dtd", 42, 49.5, "0.001", 30), search_record("linear", "cifar", 42)}));
  Table t = build_table(load_records({d.path()}), quiet());
  EXPECT_TRUE(t.selection.finals_in_main);
  EXPECT_EQ(t.protocol, "val_select");
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_DOUBLE_EQ(t.rows[0].cells.at("cifar").acc.mean, 58);
  EXPECT_DOUBLE_EQ(t.rows[0].cells.at("dtd").acc.mean, 49.5);
  EXPECT_TRUE(has(t.caption, "protocol val_select (settings and epoch count selected on val200")) << t.caption;
  // The section still lists them, with nothing to set them against.
  const std::string md = section_of(render_markdown(t));
  using V = std::vector<std::string>;
  EXPECT_EQ(md_row(md, "linear", "val_select"), (V{"58.00", "49.50", "–"}));
  EXPECT_EQ(md_row(md, "linear", "best_of_10"), (V{"–", "–", "–"}));
  EXPECT_EQ(md_row(md, "linear", "inflation"), (V{"–", "–", "–"}));
}

TEST(ReportSelection, NoFinalRecordsNoSection) {
  TempDir d;
  write_file(d / "in/results.jsonl", lines({make_record("linear", "cifar", 42, 60)}));
  auto o = quiet();
  o.out_dir = d / "out";
  auto res = write_report({d / "in"}, o);
  EXPECT_FALSE(has(read_file(d / "out/report.md"), "Selection without the test set"));
  EXPECT_FALSE(fs::exists(d / "out/report_selection.csv"));
}
