// The readers under fuzz and their seeds (see targets.h).
#include "targets.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "app/job_args.h"
#include "core/error.h"
#include "datasets/vtab.h"
#include "harness/sweep/sweep_config.h"
#include "harness/sweep/sweep_journal.h"
#include "io/feature_store.h"
#include "io/journal.h"
#include "io/tensor_file.h"
#include "results/report.h"

namespace petl::fuzz {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kJsonTokens = {
    "{",    "}",        "[",       "]",        "\"",      ":",     ",",
    "null", "true",     "false",   "\\u0000",  "\\ud800", "\\\"",  "\"\":",
    "{}",   "[]",       "\xff",    "\xc3\x28", "-",       "1e999", "18446744073709551616",
    "0.5",  "[[[[[[[[", "]]]]]]]]"};

// ---------------------------------------------------------------------------------- lists

data::TaskInfo list_task(const std::string& dir, const std::string& format, int num_classes) {
  data::TaskInfo t;
  t.name = "fuzz_task";
  t.dir = dir;
  t.format = format;
  t.num_classes = num_classes;
  return t;
}

// Reads the split both with a declared class count and without one (labels unchecked above).
void read_list(const std::string& dir, const std::string& format, const std::string& bytes) {
  write_bytes(dir + "/test." + format, bytes);
  for (int classes : {10, -1}) {
    for (const data::Sample& s : data::read_split(list_task(dir, format, classes), "test"))
      if (s.rel_path.empty() || s.label < 0 || (classes > 0 && s.label >= classes))
        throw std::logic_error("read_split returned an invalid sample at " + s.list_file + ":" +
                               std::to_string(s.line));
  }
}

// ---------------------------------------------------------------------------------- tensor files

io::RawTensor raw(io::DType dtype, std::vector<int64_t> shape, uint8_t fill) {
  io::RawTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.resize(size_t(t.numel()) * io::dtype_size(dtype));
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = uint8_t(fill + 7 * i);
  return t;
}

void check_tensor(const io::RawTensor& t, const std::string& what) {
  uint64_t n = io::dtype_size(t.dtype);
  for (int64_t d : t.shape) {
    if (d < 0) throw std::logic_error(what + ": negative dimension accepted");
    n *= uint64_t(d);
  }
  if (n != t.data.size()) throw std::logic_error(what + ": data size does not match dtype and shape");
}

// ---------------------------------------------------------------------------------- feature store

// Reads every row of every dataset in pieces, the way the trainer streams a cache.
void read_whole_cache(io::FeatureStoreReader& r) {
  const int64_t n = r.n_rows();
  constexpr int64_t kPiece = 64;
  for (const io::FeatureSpec& s : r.specs()) {
    const int64_t elems = s.row_elements();
    std::vector<float> buf(size_t(std::min(n, kPiece) * elems));
    for (int64_t r0 = 0; r0 < n; r0 += kPiece) r.read_rows(s.name, r0, std::min(kPiece, n - r0), buf.data());
  }
  std::vector<int64_t> labels(size_t(std::min(n, kPiece)));
  for (int64_t r0 = 0; r0 < n; r0 += kPiece) {
    r.read_labels(r0, std::min(kPiece, n - r0), labels.data());
    r.read_paths(r0, std::min(kPiece, n - r0));
  }
}

void read_feature_store(const std::string& dir, const std::string& bytes) {
  const std::string root = dir + "/cache";
  const std::string path = root + "/0123456789abcdef.h5";
  fs::create_directories(root);
  write_bytes(path, bytes);
  // verify() and list_caches() never throw for a bad file: they report it.
  io::VerifyResult v;
  try {
    v = io::verify(path);
    io::list_caches(root);
  } catch (const Error& e) {
    throw std::logic_error(std::string("verify()/list_caches() threw petl::Error instead of reporting: ") + e.what());
  }
  bool read_ok = false;
  try {
    io::FeatureStoreReader r(path);
    read_whole_cache(r);
    read_ok = true;
  } catch (const Error& e) {
    if (v.ok) throw std::logic_error(std::string("verify() says ok but reading fails: ") + e.what());
    throw;
  }
  if (!v.ok) throw std::logic_error("the whole cache reads but verify() says: " + v.message);
  (void)read_ok;
}

// ---------------------------------------------------------------------------------- sweep config

void read_sweep_config(const std::string& dir, const std::string& bytes) {
  SweepConfig cfg = parse_sweep_config(bytes, dir + "/fuzz.yaml");
  PlanOptions o;
  o.out = dir + "/out";
  o.cache_need = [](const std::string& method, const std::string&, const std::string&,
                    const std::map<std::string, std::string>&, Benchmark) -> std::optional<CacheNeed> {
    if (method == "linear") return CacheNeed{CacheTaps::parse("cls"), {"train800val200", "test"}, ""};
    return std::nullopt;
  };
  SweepPlan plan = plan_sweep(cfg, o);
  std::ostringstream os;
  print_plan(os, plan, plan.jobs, {});
  // Whatever the config held, every planned child's command line reads back as its spec.
  for (const auto& j : plan.jobs) {
    if (j.run && *cli::parse_run_args(cli::run_args(*j.run)) != *j.run)
      throw std::logic_error("a planned job's petl run arguments do not read back as its spec");
    if (j.build && *cli::parse_cache_build_args(cli::cache_build_args(*j.build)) != *j.build)
      throw std::logic_error("a planned cache build's arguments do not read back as its spec");
  }
  shard_jobs(plan.jobs, Shard{1, 3});
}

// ---------------------------------------------------------------------------------- journal

void read_journals(const std::string& dir, const std::string& bytes) {
  const std::string path = dir + "/results.jsonl";
  write_bytes(path, bytes);
  io::JsonLines jl = io::read_json_lines(path, "results file");
  for (const auto& o : jl.objects) (void)o.dump();
  Journal j = read_journal(path);
  merged_status({path});
  report::Records recs = report::load_records({path});
  report::ReportOptions opts;
  opts.reference = "none";
  opts.plots = false;
  opts.allow_mixed = true;
  opts.warn_to_stderr = false;
  if (!recs.runs.empty()) {
    report::Table t = report::build_table(std::move(recs), opts);
    render_markdown(t);
    render_csv(t);
    render_cells_csv(t);
  }
}

}  // namespace

const std::vector<std::string>& target_names() {
  static const std::vector<std::string> names = {"txt_list", "json_list",     "petl_task_json", "safetensors", "npy",
                                                 "npz",      "feature_store", "sweep_yaml",     "journal"};
  return names;
}

Target make_target(const std::string& name, const std::string& work_dir) {
  const std::string d = work_dir;
  Target t;
  t.name = name;
  if (name == "txt_list") {
    t.text = true;
    t.tokens = {
        " ",   "  ", "\n",  "\r\n", "\t", "-", "+", "0", " 99999999999999999999", "\xef\xbb\xbf", std::string(1, '\0'),
        "../", "/",  " -1", " 10",  " 9"};
    t.read = [d](const std::string& b) { read_list(d, "txt", b); };
  } else if (name == "json_list") {
    t.text = true;
    t.tokens = kJsonTokens;
    t.read = [d](const std::string& b) { read_list(d, "json", b); };
  } else if (name == "petl_task_json") {
    t.text = true;
    t.tokens = kJsonTokens;
    t.tokens.insert(t.tokens.end(), {"\"num_classes\"", "\"description\"", "47", "0", "-5", "2147483648"});
    t.read = [d](const std::string& b) {
      const std::string root = d + "/root";
      for (const char* task : {"mytask", "dtd"}) {
        fs::create_directories(root + "/" + task);
        write_bytes(root + "/" + task + "/test.txt", "a.png 0\n");
        write_bytes(root + "/" + task + "/petl_task.json", b);
      }
      data::find_task(root, "mytask");
      data::list_tasks(root);
      data::find_task(root, "dtd");
    };
  } else if (name == "safetensors") {
    t.text = true;  // the header is JSON
    t.tokens = kJsonTokens;
    t.tokens.insert(t.tokens.end(), {"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F32\"",
                                     "\"BF16\"", "\"BOOL\"", "\"F8\""});
    t.read = [d](const std::string& b) {
      write_bytes(d + "/x.safetensors", b);
      std::map<std::string, std::string> meta;
      for (const auto& [k, v] : io::read_safetensors(d + "/x.safetensors", &meta)) check_tensor(v, k);
    };
  } else if (name == "npy") {
    t.text = true;  // the header is a python dict literal
    t.tokens = {"'descr'", "'fortran_order'", "'shape'", "True", "False", "None", "(",        ")", ",",
                "'<f4'",   "'>f8'",           "'|b1'",   "{",    "}",     "L",    "((((((((", "'", "\\"};
    t.read = [d](const std::string& b) {
      write_bytes(d + "/x.npy", b);
      check_tensor(io::read_npy(d + "/x.npy"), "npy");
    };
  } else if (name == "npz") {
    t.read = [d](const std::string& b) {
      write_bytes(d + "/x.npz", b);
      for (const auto& [k, v] : io::read_npz(d + "/x.npz")) check_tensor(v, k);
    };
  } else if (name == "feature_store") {
    t.read = [d](const std::string& b) { read_feature_store(d, b); };
  } else if (name == "sweep_yaml") {
    t.text = true;
    t.tokens = {
        ":",   ": ",      "- ",        "-",           "[",        "]",    "{",    "}",     ",",     "&a ",
        "*a",  "<<: *a",  "!!binary ", "!!str ",      "? ",       "|\n",  ">\n",  "---\n", "...\n", "\t",
        "  ",  "\n",      "\"",        "'",           "#",        "~",    "null", "grid",  "seeds", "method_overrides",
        "set", "methods", "tasks",     "%YAML 1.2\n", "\xff\xfe", "\\x00"};
    t.read = [d](const std::string& b) { read_sweep_config(d, b); };
  } else if (name == "journal") {
    t.text = true;
    t.tokens = kJsonTokens;
    t.tokens.insert(t.tokens.end(), {"\"status\"", "\"ok\"", "\"failed\"", "\"sweep_key\"", "\"schema\"",
                                     "\"petl.result\"", "\"schema_version\"", "\"accuracy\"", "\"seed\""});
    t.read = [d](const std::string& b) { read_journals(d, b); };
  } else {
    throw std::invalid_argument("fuzz: unknown target " + name);
  }
  return t;
}

std::vector<std::string> seeds_for(const std::string& name, const std::string& work_dir) {
  std::vector<std::string> seeds;
  if (name == "txt_list") {
    seeds = {"images/a.png 0\nimages/b.png 9\n", "x/with_underscore.jpg 3\r\ny/2.jpg 4\r\n\r\nz/3.jpg 5",
             "0001.png 1\n  \n0002.png +2\n0003.png 07   \n"};
  } else if (name == "json_list") {
    seeds = {"[{\"a.png\": 0}, {\"dir/b.png\": 9}]",
             "[\n  {\"images/x y.jpg\": 3},\n  {\"images/\\u00e9.jpg\": 1}\n]\n"};
  } else if (name == "petl_task_json") {
    seeds = {"{\"num_classes\": 47, \"description\": \"textures\"}", "{\"num_classes\": 47}",
             "{\"description\": \"d\"}"};
  } else if (name == "safetensors") {
    using io::DType;
    std::vector<io::TensorMap> maps = {
        {{"weight", raw(DType::f32, {2, 3}, 1)}, {"bias", raw(DType::f32, {3}, 2)}},
        {{"a", raw(DType::f16, {2, 2}, 3)},
         {"b", raw(DType::bf16, {3}, 4)},
         {"c", raw(DType::i64, {2}, 5)},
         {"d", raw(DType::u8, {0}, 6)},
         {"e", raw(DType::boolean, {}, 7)},
         {"f", raw(DType::i8, {1, 1, 2}, 8)}},
        {{"patch_embed.proj.weight", raw(DType::f32, {4, 3, 2, 2}, 9)}},
    };
    std::vector<std::map<std::string, std::string>> metas = {
        {{"format", "pt"}},
        {},
        {{"petl_vit_config", "{\"arch\": \"tiny\", \"img_size\": 4, \"patch_size\": 2, \"embed_dim\": 4}"}}};
    for (size_t i = 0; i < maps.size(); ++i) {
      const std::string p = work_dir + "/seed.safetensors";
      io::write_safetensors(p, maps[i], metas[i]);
      seeds.push_back(read_bytes(p));
    }
  } else if (name == "npy") {
    using io::DType;
    for (const io::RawTensor& t :
         {raw(DType::f32, {2, 3}, 1), raw(DType::i64, {4}, 2), raw(DType::u8, {}, 3), raw(DType::boolean, {2, 2}, 0)}) {
      const std::string p = work_dir + "/seed.npy";
      io::write_npy(p, t);
      seeds.push_back(read_bytes(p));
    }
  }
  for (std::string& s : files_in("seeds", name)) seeds.push_back(std::move(s));
  return seeds;
}

}  // namespace petl::fuzz
