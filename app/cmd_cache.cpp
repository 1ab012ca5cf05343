// `petl cache ls | verify | rm | build`: inspect, check and delete feature caches
// (io/feature_store.h). Torch-free; `build` is forwarded to cmd_cache_build (app/cache_build.h),
// which computes the features with the backbone.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "app/cache_build.h"
#include "app/cli_util.h"
#include "app/commands.h"
#include "core/progress.h"
#include "io/feature_store.h"

namespace petl::cli {

namespace {

namespace fs = std::filesystem;

const char* kCacheUsage =
    "usage: petl cache <ls|verify|rm|build> [options]      (petl cache <sub> --help for every flag)\n"
    "Feature caches hold frozen-backbone features (e.g. the final cls token, every block's K/V) per\n"
    "(backbone hash, task, split, preprocessing, taps, dtype), as HDF5 files <root>/<key>.h5 where key\n"
    "is the first 16 hex digits of the SHA-256 of the sorted identity (layout: io/feature_store.h;\n"
    "readable with h5py). A file being written is <key>.h5.tmp.<pid> until it is complete.\n"
    "  ls [DIR...]                 table of the caches in each DIR (a cache root, or a sweep out dir\n"
    "                              holding cache/); default: the current directory\n"
    "  verify PATH|DIR...          read every chunk of every dataset and check its checksum; exit 1 if\n"
    "                              any cache is damaged or incomplete\n"
    "  rm KEY|PATH... [--root DIR] [--all] [--incomplete] [--dry-run]\n"
    "                              delete caches; also removes stale tmp files (writer no longer running)\n"
    "  build ...                   compute and store the features of a task/split (see its --help)";

const char* kLsUsage =
    "usage: petl cache ls [DIR...] [--long]\n"
    "Lists the feature caches in each DIR: key, task, split, taps, dtype, rows, size (MiB), complete,\n"
    "backbone (first 12 hex digits of its SHA-256). DIR is a cache root (holding <key>.h5 files) or a\n"
    "sweep out dir holding cache/ (then DIR/cache is listed); default: the current directory. Only the\n"
    "attributes are read (fast); `petl cache verify` checks the data. Files that are not readable\n"
    "caches are listed with the reason, and tmp files with the state of their writer (running, or\n"
    "stale: removed by `petl cache rm --root DIR`). Error: a DIR that does not exist.";

const char* kVerifyUsage =
    "usage: petl cache verify PATH|DIR...\n"
    "Reads every chunk of every dataset of each cache (streaming: memory stays at about one chunk) so\n"
    "HDF5 checks its fletcher32 checksum, and checks the attributes (schema, version, complete) and the\n"
    "dataset shapes. A DIR (cache root, or a sweep out dir holding cache/) means every *.h5 in it.\n"
    "Prints one line per cache, 'ok' or 'BAD' with the first problem, and exits 1 when any is bad.";

const char* kRmUsage =
    "usage: petl cache rm KEY|PATH... [--root DIR] [--all] [--incomplete] [--dry-run]\n"
    "Deletes feature caches: a PATH (a <key>.h5 file, or a tmp file <key>.h5.tmp.<pid>), or a KEY\n"
    "(16 hex digits: --root DIR/<KEY>.h5). --all deletes every cache in --root, --incomplete those\n"
    "that are incomplete or unreadable (damaged ones with complete=1 are found by `petl cache verify`\n"
    "and removed by PATH). Whenever --root is given, stale tmp files in it are removed too: those whose\n"
    "writer pid is no longer running on this host (run it on the host that built them; tmp files of a\n"
    "running writer are never removed). DIR may be a sweep out dir holding cache/. Every target is\n"
    "checked before anything is deleted: a missing PATH or KEY, or a file that is not a cache file, is\n"
    "an error naming it and nothing is removed.";

// A cache root given directly, or a sweep out dir holding cache/.
std::string resolve_root(const std::string& dir) {
  std::error_code ec;
  PETL_CHECK(fs::exists(dir, ec), "cache directory ", dir, " does not exist");
  PETL_CHECK(fs::is_directory(dir, ec), dir,
             " is not a directory (expected a cache root or a sweep out dir holding cache/)");
  fs::path sub = fs::path(dir) / "cache";
  return fs::is_directory(sub, ec) ? sub.string() : dir;
}

// A cache root and its direct subdirectories: a sweep keeps one directory per cache job
// (<out>/cache/<job key>/<identity key>.h5).
std::vector<std::string> expand_roots(const std::string& root) {
  std::vector<std::string> out{root};
  std::error_code ec;
  std::vector<std::string> subs;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec)) subs.push_back(e.path().string());
  std::sort(subs.begin(), subs.end());
  out.insert(out.end(), subs.begin(), subs.end());
  return out;
}

bool writer_running(int64_t pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

std::string attr_or(const io::AttributeMap& m, const std::string& key, const std::string& fallback = "-") {
  auto it = m.find(key);
  return it == m.end() || it->second.empty() ? fallback : it->second;
}

// Parses `args` with positional arguments collected into `positional`; false when --help was shown.
bool parse_with_positional(const Args& args, po::options_description& d, const std::string& positional_name,
                           po::variables_map& vm, const char* usage) {
  d.add_options()("help,h", "show this help and exit");
  po::positional_options_description pos;
  pos.add(positional_name.c_str(), -1);
  try {
    po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << d << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    fail_parse(e, d, "see --help");
  }
  return true;
}

// Every tmp file in root, with its writer's state.
struct TmpFile {
  std::string path;
  int64_t pid = 0;
  bool stale = false;
  uint64_t bytes = 0;
};
std::vector<TmpFile> tmp_files(const std::string& root) {
  std::vector<TmpFile> out;
  auto stale = io::stale_tmp_files(root);
  std::set<std::string> stale_set(stale.begin(), stale.end());
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    TmpFile t;
    if (!e.is_regular_file(ec) || !io::is_tmp_file(e.path().string(), &t.pid)) continue;
    t.path = e.path().string();
    t.stale = stale_set.count(t.path) > 0;
    t.bytes = static_cast<uint64_t>(e.file_size(ec));
    out.push_back(t);
  }
  std::sort(out.begin(), out.end(), [](const TmpFile& a, const TmpFile& b) { return a.path < b.path; });
  return out;
}

int cache_ls(const Args& args) {
  std::vector<std::string> dirs;
  po::options_description d("petl cache ls options");
  d.add_options()("dir", po::value(&dirs)->composing(), "cache roots or sweep out dirs (also positional: DIR...)")(
      "long", "also print every attribute of each cache (identity and provenance)");
  po::variables_map vm;
  if (!parse_with_positional(args, d, "dir", vm, kLsUsage)) return 0;
  if (dirs.empty()) dirs.push_back(".");
  std::vector<std::string> roots;
  for (const std::string& dir : dirs)  // all checked first
    for (auto& r : expand_roots(resolve_root(dir))) roots.push_back(r);

  for (const std::string& root : roots) {
    auto entries = io::list_caches(root);
    auto tmps = tmp_files(root);
    uint64_t total = 0;
    for (const auto& e : entries) total += e.size_bytes;
    std::printf("%s: %zu cache(s), %.1f MiB\n", root.c_str(), entries.size(), mib(total));
    if (!entries.empty()) {
      std::vector<std::vector<std::string>> rows = {
          {"key", "task", "split", "taps", "dtype", "rows", "MiB", "complete", "backbone"}};
      for (const auto& e : entries) {
        char size[32];
        std::snprintf(size, sizeof size, "%.1f", mib(e.size_bytes));
        if (!e.error.empty()) {
          rows.push_back({e.key, "-", "-", "-", "-", "-", size, "unreadable", "-"});
          continue;
        }
        rows.push_back({e.key, attr_or(e.attributes, "task"), attr_or(e.attributes, "split"),
                        attr_or(e.attributes, "taps"), attr_or(e.attributes, "dtype"), std::to_string(e.rows), size,
                        e.complete ? "yes" : "no", attr_or(e.attributes, "backbone_sha256").substr(0, 12)});
      }
      print_table(rows, {false, false, false, false, false, true, true, false, false});
    }
    for (const auto& e : entries)
      if (!e.error.empty()) std::printf("  unreadable %s: %s\n", e.path.c_str(), e.error.c_str());
    for (const auto& t : tmps) {
      if (t.stale)
        std::printf("  stale tmp file (writer pid %lld is not running): %s, %.1f MiB — petl cache rm --root %s\n",
                    static_cast<long long>(t.pid), t.path.c_str(), mib(t.bytes), root.c_str());
      else
        std::printf("  being written (pid %lld): %s, %.1f MiB so far\n", static_cast<long long>(t.pid), t.path.c_str(),
                    mib(t.bytes));
    }
    if (vm.count("long")) {
      for (const auto& e : entries) {
        std::printf("\n%s\n", e.path.c_str());
        for (const auto& [k, v] : e.attributes) std::printf("  %-18s %s\n", k.c_str(), v.c_str());
      }
    }
  }
  return 0;
}

int cache_verify(const Args& args) {
  std::vector<std::string> targets;
  po::options_description d("petl cache verify options");
  d.add_options()("path", po::value(&targets)->composing(),
                  "cache files or directories (also positional: PATH|DIR...)");
  po::variables_map vm;
  if (!parse_with_positional(args, d, "path", vm, kVerifyUsage)) return 0;
  PETL_CHECK(!targets.empty(), "no PATH or DIR given (see petl cache verify --help)");
  std::vector<std::string> files;
  std::error_code ec;
  for (const std::string& t : targets) {
    if (fs::is_directory(t, ec)) {
      std::string root = resolve_root(t);
      size_t before = files.size();
      for (auto& r : expand_roots(root))
        for (const auto& e : io::list_caches(r)) files.push_back(e.path);
      if (files.size() == before) std::printf("no caches (*.h5) in %s\n", root.c_str());
    } else {
      files.push_back(t);  // a missing file is reported by verify() as BAD
    }
  }
  int bad = 0;
  for (const std::string& f : files) {
    uint64_t size = fs::is_regular_file(f, ec) ? static_cast<uint64_t>(fs::file_size(f, ec)) : 0;
    std::unique_ptr<ProgressBar> bar;
    int64_t shown = 0;
    if (size > (64u << 20)) bar = std::make_unique<ProgressBar>("verify " + fs::path(f).filename().string(), 1000);
    auto r = io::verify(f, [&](double frac) {
      if (!bar) return;
      int64_t now = static_cast<int64_t>(frac * 1000);
      if (now > shown) bar->add(now - shown);
      shown = std::max(shown, now);
    });
    if (bar) bar->finish();
    if (r.ok) {
      std::printf("ok   %s (%lld rows, %.1f MiB)\n", f.c_str(), static_cast<long long>(r.rows), mib(r.bytes));
    } else {
      ++bad;
      std::printf("BAD  %s\n", r.message.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("%zu cache(s) verified: %zu ok, %d bad\n", files.size(), files.size() - static_cast<size_t>(bad), bad);
  return bad ? 1 : 0;
}

int cache_rm(const Args& args) {
  std::vector<std::string> targets;
  std::string root_arg;
  po::options_description d("petl cache rm options");
  d.add_options()("target", po::value(&targets)->composing(),
                  "cache files (PATH) or keys (KEY, with --root) to delete (also positional: KEY|PATH...)")(
      "root", po::value(&root_arg),
      "cache root (or a sweep out dir holding cache/) for KEYs, --all and --incomplete; "
      "its stale tmp files are removed too")("all", "delete every cache in --root")(
      "incomplete", "delete the caches in --root that are incomplete (complete != 1) or unreadable")(
      "dry-run", "print what would be deleted, delete nothing");
  po::variables_map vm;
  if (!parse_with_positional(args, d, "target", vm, kRmUsage)) return 0;
  const bool all = vm.count("all") > 0, incomplete = vm.count("incomplete") > 0, dry = vm.count("dry-run") > 0;
  PETL_CHECK(!targets.empty() || !root_arg.empty(),
             "nothing to remove: give KEY|PATH..., or --root DIR with --all / --incomplete (see petl cache rm --help)");
  PETL_CHECK(root_arg.empty() ? !(all || incomplete) : true, "--all and --incomplete need --root DIR");
  std::string root = root_arg.empty() ? "" : resolve_root(root_arg);

  // Collect and check everything first; delete afterwards.
  std::vector<std::pair<std::string, std::string>> doomed;  // path, why
  std::set<std::string> seen;
  auto add = [&](const std::string& p, const std::string& why) {
    if (seen.insert(fs::weakly_canonical(p).string()).second) doomed.emplace_back(p, why);
  };
  std::error_code ec;
  for (const std::string& t : targets) {
    const bool is_key =
        t.size() == 16 && t.find_first_not_of("0123456789abcdef") == std::string::npos && !fs::exists(t, ec);
    if (is_key) {
      PETL_CHECK(!root.empty(), "cache key ", t, " given without --root DIR (or pass the file's path)");
      std::string p = io::cache_path(root, t);
      PETL_CHECK(fs::is_regular_file(p, ec), "no cache with key ", t, " in ", root, " (expected ", p, ")");
      add(p, "key " + t);
      continue;
    }
    PETL_CHECK(fs::exists(t, ec), "cache file ", t, " does not exist");
    PETL_CHECK(fs::is_regular_file(t, ec) && (fs::path(t).extension() == ".h5" || io::is_tmp_file(t)),
               "refusing to remove ", t, ": not a cache file (expected <key>.h5 or <key>.h5.tmp.<pid>)");
    int64_t pid = 0;
    PETL_CHECK(!io::is_tmp_file(t, &pid) || !writer_running(pid), "refusing to remove ", t, ": its writer (pid ", pid,
               ") is still running on this host");
    add(t, "path");
  }
  if (!root.empty()) {
    for (const auto& e : io::list_caches(root)) {
      if (all)
        add(e.path, "--all");
      else if (incomplete && !e.error.empty())
        add(e.path, "--incomplete (unreadable: " + e.error + ")");
      else if (incomplete && !e.complete)
        add(e.path, "--incomplete (complete != 1)");
    }
    for (const std::string& t : io::stale_tmp_files(root)) add(t, "stale tmp file (writer not running)");
  }

  uint64_t freed = 0;
  for (const auto& [p, why] : doomed) {
    uint64_t size = static_cast<uint64_t>(fs::file_size(p, ec));
    if (ec) size = 0;
    if (!dry) {
      fs::remove(p, ec);
      PETL_CHECK(!ec, "cannot remove ", p, ": ", ec.message());
    }
    freed += size;
    std::printf("%s %s (%.1f MiB; %s)\n", dry ? "would remove" : "removed", p.c_str(), mib(size), why.c_str());
  }
  std::printf("%s %zu file(s), %.1f MiB\n", dry ? "would remove" : "removed", doomed.size(), mib(freed));
  return 0;
}

}  // namespace

int cmd_cache(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kCacheUsage << "\n";
    return args.empty() ? 1 : 0;
  }
  const std::string sub = args[0];
  const Args rest(args.begin() + 1, args.end());
  if (sub == "build") return cmd_cache_build(rest);
  if (sub == "ls") return cache_ls(rest);
  if (sub == "verify") return cache_verify(rest);
  if (sub == "rm") return cache_rm(rest);
  PETL_FAIL("unknown cache subcommand '", sub, "' (expected ls, verify, rm or build; see petl cache --help)");
}

}  // namespace petl::cli
