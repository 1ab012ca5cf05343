// Real Fashion-MNIST for the embedded suite: the gzip idx reader (checked against the expected
// sizes), the per-directory cache and the fixed permutations (see fashion_mnist.h).
#include "datasets/fashion_mnist.h"

#include <zlib.h>

#include <array>
#include <map>
#include <mutex>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "datasets/suite_random.h"

namespace petl::data::suite {

namespace {

std::vector<uint8_t> read_gzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  PETL_CHECK(f != nullptr, "Fashion-MNIST: cannot open ", path,
             " (expected Debian's dataset-fashion-mnist files; set SuiteOptions::fashion_mnist_dir)");
  std::vector<uint8_t> data;
  std::array<uint8_t, 1 << 16> buf{};
  for (;;) {
    const int n = gzread(f, buf.data(), unsigned(buf.size()));
    if (n < 0) {
      int errnum = 0;
      const std::string msg = gzerror(f, &errnum);
      gzclose(f);
      PETL_FAIL("Fashion-MNIST: cannot decompress ", path, ": ", msg);
    }
    if (n == 0) break;
    data.insert(data.end(), buf.begin(), buf.begin() + n);
  }
  gzclose(f);
  return data;
}

uint32_t read_be32(const std::vector<uint8_t>& d, size_t at) {
  return uint32_t(d[at]) << 24 | uint32_t(d[at + 1]) << 16 | uint32_t(d[at + 2]) << 8 | d[at + 3];
}

FashionSet read_fashion_set(const std::string& dir, const std::string& prefix, int expected) {
  FashionSet set;
  const std::string image_path = dir + "/" + prefix + "-images-idx3-ubyte.gz";
  const std::string label_path = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  std::vector<uint8_t> images = read_gzip_file(image_path);
  PETL_CHECK(images.size() >= 16 && read_be32(images, 0) == 0x00000803, image_path,
             ": not an idx3 ubyte file (magic 0x00000803 expected)");
  const uint32_t n = read_be32(images, 4), rows = read_be32(images, 8), cols = read_be32(images, 12);
  PETL_CHECK(n == uint32_t(expected) && rows == kFashionSide && cols == kFashionSide, image_path, ": expected ",
             expected, " images of 28x28, found ", n, " of ", rows, "x", cols);
  PETL_CHECK(images.size() == 16 + size_t(n) * rows * cols, image_path, ": expected ", 16 + size_t(n) * rows * cols,
             " bytes, found ", images.size());
  set.images.assign(images.begin() + 16, images.end());
  std::vector<uint8_t> labels = read_gzip_file(label_path);
  PETL_CHECK(labels.size() >= 8 && read_be32(labels, 0) == 0x00000801, label_path,
             ": not an idx1 ubyte file (magic 0x00000801 expected)");
  PETL_CHECK(read_be32(labels, 4) == n && labels.size() == 8 + size_t(n), label_path, ": expected ", n,
             " labels, found header ", read_be32(labels, 4), " and ", labels.size() - 8, " bytes");
  set.labels.assign(labels.begin() + 8, labels.end());
  for (size_t i = 0; i < set.labels.size(); ++i)
    PETL_CHECK(set.labels[i] < 10, label_path, ": label ", int(set.labels[i]), " at ", i, " is outside [0, 10)");
  return set;
}

const std::vector<int>& fixed_permutation(int n, uint64_t stream) {
  static std::mutex mu;
  static std::map<std::pair<int, uint64_t>, std::vector<int>> perms;
  std::lock_guard<std::mutex> lock(mu);
  auto& perm = perms[{n, stream}];
  if (perm.empty()) {
    perm.resize(n);
    std::iota(perm.begin(), perm.end(), 0);
    Rng rng(stream_key(stream, 0));
    shuffle_in_place(perm, rng);
  }
  return perm;
}

}  // namespace

std::shared_ptr<const FashionData> load_fashion(const std::string& dir) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const FashionData>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dir);
  if (it != cache.end()) return it->second;
  auto data = std::make_shared<FashionData>();
  data->train = read_fashion_set(dir, "train", kFashionTrain);
  data->test = read_fashion_set(dir, "t10k", kFashionTest);
  cache[dir] = data;
  return data;
}

const std::vector<int>& fashion_train_permutation() {
  return fixed_permutation(kFashionTrain, kStreamFashionTrainPerm);
}
const std::vector<int>& fashion_test_permutation() { return fixed_permutation(kFashionTest, kStreamFashionTestPerm); }

Image8 fashion_image(const FashionSet& set, int index, int channels) {
  Image8 img;
  img.width = img.height = kFashionSide;
  img.channels = channels;
  const uint8_t* src = &set.images[size_t(index) * kFashionSide * kFashionSide];
  img.pixels.resize(size_t(kFashionSide) * kFashionSide * channels);
  for (int i = 0; i < kFashionSide * kFashionSide; ++i)
    for (int c = 0; c < channels; ++c) img.pixels[size_t(i) * channels + c] = src[i];
  return img;
}

}  // namespace petl::data::suite
