// Writes the petl-written feature-cache seeds of the fuzz tests with petl's own writer:
//   build/tests/petl_fuzz_seeds tests/fuzz/seeds/feature_store
// HDF5 object headers carry times, so the files are committed rather than written per run (every
// fuzz run then feeds the same bytes). The other seeds: tests/fuzz/seeds/make_seeds.py.
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/feature_store.h"

namespace {

void write(const std::string& file, int64_t n, const std::vector<petl::io::FeatureSpec>& specs) {
  petl::io::FeatureStoreWriter w(file, n, specs, {{"task", "dtd"}, {"taps", "cls"}});
  for (const petl::io::FeatureSpec& s : specs) {
    std::vector<float> rows(static_cast<size_t>(n * s.row_elements()));
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i) * 0.25f - 1.0f;
    w.write_rows(s.name, 0, n, rows.data());
  }
  std::vector<int64_t> labels;
  std::vector<std::string> paths;
  for (int64_t i = 0; i < n; ++i) {
    labels.push_back(i % 3);
    paths.push_back("images/" + std::to_string(i) + ".png");
  }
  w.write_labels(0, n, labels.data());
  w.write_paths(0, paths);
  w.finish();
  std::printf("wrote %s\n", file.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: petl_fuzz_seeds DIR   (DIR: tests/fuzz/seeds/feature_store)\n");
    return 2;
  }
  const std::string dir = argv[1];
  try {
    write(dir + "/petl_f16_f32.h5", 5, {{"cls", {4}, "float16"}, {"kv", {2, 3}, "float32"}});
    write(dir + "/petl_one_row.h5", 1, {{"cls", {2}, "float32"}});
  } catch (const petl::Error& e) {
    std::fprintf(stderr, "petl_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
