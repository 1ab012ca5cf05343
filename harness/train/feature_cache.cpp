// Frozen-backbone feature caches for training; see feature_cache.h.
#include "harness/train/feature_cache.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>

#include "core/build_info.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/hashing.h"
#include "core/progress.h"
#include "core/stop.h"
#include "core/system.h"
#include "datasets/image.h"
#include "harness/train/precision.h"
#include "harness/train/task_data.h"

namespace fs = std::filesystem;

namespace petl {

CacheTaps cache_taps_for(const BackboneNeeds& needs) {
  CacheTaps t;
  if (!needs.cacheable()) return t;
  if (needs.block_tokens) return t;  // no cache holds every block's output tokens
  t.cls = needs.final_cls;
  t.kv = needs.block_kv;
  return t;
}

CacheTaps eval_taps_for(const BackboneNeeds& needs) {
  BackboneNeeds n = needs;
  n.backbone_stochastic = false;
  return cache_taps_for(n);
}

io::AttributeMap cache_identity(const std::string& backbone_sha256, const VitConfig& cfg, const data::TaskInfo& task,
                                const std::string& split, const std::string& normalisation, const CacheTaps& taps,
                                CacheDtype dtype) {
  io::AttributeMap id = {{"backbone_sha256", backbone_sha256},
                         {"arch_img_patch_dim_depth_heads", str_cat(cfg.img_size, "/", cfg.patch_size, "/",
                                                                    cfg.embed_dim, "/", cfg.depth, "/", cfg.num_heads)},
                         {"task", task.name},
                         {"data_dir", fs::absolute(task.dir).string()},
                         {"split", split},
                         {"list_sha256", data::split_list_sha256(task, split)},
                         {"normalisation", normalisation},
                         {"image_size", std::to_string(cfg.img_size)},
                         {"taps", taps.str()},
                         {"dtype", to_string(dtype)}};
  // Features computed under bf16 autocast are other features; fp32 caches carry no such attribute
  // (so caches built before petl had --precision stay valid).
  if (current_precision() != Precision::kFp32) id["precision"] = to_string(current_precision());
  // The cls tap is the pooled feature: a backbone pooling otherwise says so (older caches: cls).
  if (cfg.pool != Pooling::kClsAfterNorm) id["pooling"] = to_string(cfg.pool);
  // A resampled pos_embed (DINOv2 at 224 px) resampled otherwise than timm's way gives other features.
  if (cfg.pos_resample != PosResample::kTimm) id["pos_resample"] = to_string(cfg.pos_resample);
  return id;
}

namespace {

struct KvCollect : BlockHooks {
  std::vector<torch::Tensor> k, v;
  bool wants_kv() const override { return true; }
  void on_kv(int layer, const torch::Tensor& kk, const torch::Tensor& vv) override {
    k[layer] = kk;
    v[layer] = vv;
  }
};

}  // namespace

CachedFeatures backbone_features(VisionTransformer backbone, const torch::Tensor& images, const CacheTaps& taps) {
  const bool was_training = backbone->is_training();
  backbone->eval();
  torch::NoGradGuard ng;
  Autocast amp(images.device());  // bf16 jobs: the frozen pass in bfloat16 (features stored as the cache's dtype)
  KvCollect tap;
  tap.k.resize(backbone->cfg_.depth);
  tap.v.resize(backbone->cfg_.depth);
  auto x = backbone->forward_blocks(backbone->embed(images), taps.kv ? &tap : nullptr);
  CachedFeatures f;
  if (taps.cls) f.cls = backbone->pool(x).contiguous();
  if (taps.kv) {  // contiguous, as a cache serves them, so live and cached features give the same logits
    for (auto& t : tap.k) f.k.push_back(t.contiguous());
    for (auto& t : tap.v) f.v.push_back(t.contiguous());
  }
  backbone->train(was_training);
  return f;
}

namespace {

void build(const CacheBuildOptions& o, VisionTransformer backbone, const data::TaskInfo& task, const std::string& split,
           const std::string& path, const io::AttributeMap& identity) {
  const auto& cfg = backbone->cfg_;
  const int64_t n = data::count_samples(task, split);
  const int L = cfg.depth, H = cfg.num_heads, T = cfg.num_tokens(), dh = cfg.embed_dim / cfg.num_heads;
  std::vector<io::FeatureSpec> specs;
  if (o.taps.cls) specs.push_back({"cls", {cfg.embed_dim}, to_string(o.dtype)});
  if (o.taps.kv) specs.push_back({"kv", {L, 2, H, T, dh}, to_string(o.dtype)});
  auto attrs = identity;
  attrs["petl_commit"] = git_commit();
  attrs["created_utc"] = now_utc();
  attrs["backbone_file"] = o.backbone_file;
  attrs["layout"] = "cls: (N, D) final-norm cls token; kv: (N, L, 2, H, T, D/H) every block's K (0) and V (1)";
  io::FeatureStoreWriter w(path, n, specs, attrs);
  const bool was_training = backbone->is_training();
  backbone->eval();
  torch::NoGradGuard ng;
  ProgressBar bar("cache " + task.name + "/" + split + " (" + o.taps.str() + ")", n, o.load.progress);
  data::LoadOptions lo = o.load;
  lo.progress = false;
  lo.skip_bad = false;  // rows must be the list's samples
  for (int64_t row0 = 0; row0 < n; row0 += o.chunk_images) {
    lo.offset = row0;
    lo.limit = std::min(o.chunk_images, n - row0);
    auto part = load_split_tensors(task, split, lo);
    const int64_t b = part.labels.size(0);
    auto f = backbone_features(backbone, part.images, o.taps);
    if (o.taps.cls) w.write_rows("cls", row0, b, f.cls.data_ptr<float>());
    if (o.taps.kv) {
      std::vector<torch::Tensor> per_layer;
      for (int l = 0; l < L; ++l) per_layer.push_back(torch::stack({f.k[l], f.v[l]}, 1));  // (B, 2, H, T, dh)
      auto kv = torch::stack(per_layer, 1).contiguous();                                   // (B, L, 2, H, T, dh)
      w.write_rows("kv", row0, b, kv.data_ptr<float>());
    }
    w.write_labels(row0, b, part.labels.data_ptr<int64_t>());
    w.write_paths(row0, part.meta.rel_paths);
    bar.add(b);
  }
  bar.finish();
  w.finish();
  backbone->train(was_training);
}

}  // namespace

std::string ensure_feature_cache(const CacheBuildOptions& o, VisionTransformer backbone,
                                 const std::string& backbone_sha256, const data::TaskInfo& task,
                                 const std::string& split, bool* built) {
  PETL_CHECK(o.taps.any(), "feature cache: no taps requested");
  auto identity =
      cache_identity(backbone_sha256, backbone->cfg_, task, split, data::to_string(o.load.norm), o.taps, o.dtype);
  const std::string path = io::cache_path(o.root, io::cache_key(identity));
  if (built) *built = false;
  if (fs::exists(path)) {
    std::string problem;
    try {
      io::FeatureStoreReader r(path, identity);
      auto v = io::verify(path);
      if (!v.ok) problem = v.message;
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (problem.empty()) return path;
    std::fprintf(stderr, "[petl] feature cache %s is unusable (%s): rebuilding it\n", path.c_str(), problem.c_str());
    fs::remove(path);
  }
  const auto t0 = SteadyClock::now();
  build(o, backbone, task, split, path, identity);
  const double s = seconds_since(t0);
  std::fprintf(stderr, "[petl] built feature cache %s (%s/%s, %s, %s) in %.1f s\n", path.c_str(), task.name.c_str(),
               split.c_str(), o.taps.str().c_str(), to_string(o.dtype), s);
  if (built) *built = true;
  return path;
}

namespace {
torch::Tensor read_all(io::FeatureStoreReader& r, const std::string& name, bool half) {
  const auto& spec = r.spec(name);
  std::vector<int64_t> shape{r.n_rows()};
  shape.insert(shape.end(), spec.row_shape.begin(), spec.row_shape.end());
  auto out = torch::empty(shape, half ? torch::kHalf : torch::kFloat32);
  const int64_t step = std::max<int64_t>(1, r.chunk_rows(name));
  auto buf = torch::empty({step, spec.row_elements()}, torch::kFloat32);
  for (int64_t row0 = 0; row0 < r.n_rows(); row0 += step) {
    const int64_t c = std::min(step, r.n_rows() - row0);
    r.read_rows(name, row0, c, buf.data_ptr<float>());
    out.narrow(0, row0, c).copy_(buf.narrow(0, 0, c).view(out.narrow(0, row0, c).sizes()));
  }
  return out;
}

// Rows `rows` of a dataset (any order, repeats allowed), read one distinct row at a time.
torch::Tensor read_selected(io::FeatureStoreReader& r, const std::string& name, bool half,
                            const std::vector<int64_t>& rows) {
  const auto& spec = r.spec(name);
  std::vector<int64_t> shape{int64_t(rows.size())};
  shape.insert(shape.end(), spec.row_shape.begin(), spec.row_shape.end());
  auto out = torch::empty(shape, half ? torch::kHalf : torch::kFloat32);
  auto buf = torch::empty({spec.row_elements()}, torch::kFloat32);
  std::map<int64_t, std::vector<int64_t>> where;  // row → positions in `out`, rows ascending
  for (size_t i = 0; i < rows.size(); ++i) {
    PETL_CHECK(rows[i] >= 0 && rows[i] < r.n_rows(), r.path(), ": row ", rows[i], " out of range [0, ", r.n_rows(),
               ")");
    where[rows[i]].push_back(int64_t(i));
  }
  for (const auto& [row, positions] : where) {
    r.read_rows(name, row, 1, buf.data_ptr<float>());
    for (int64_t p : positions) out[p].copy_(buf.view(out[p].sizes()));
  }
  return out;
}

CachedFeatures features_from(const torch::Tensor& cls, const torch::Tensor& kv, torch::Device device) {
  CachedFeatures f;
  if (cls.defined()) f.cls = cls.to(device, torch::kFloat32);
  if (kv.defined()) {
    auto t = kv.to(device, torch::kFloat32);  // (B, L, 2, H, T, dh)
    for (int64_t l = 0; l < t.size(1); ++l) {
      f.k.push_back(t.select(1, l).select(1, 0).contiguous());
      f.v.push_back(t.select(1, l).select(1, 1).contiguous());
    }
  }
  return f;
}
}  // namespace

CachedSplit::CachedSplit(const std::string& path, const io::AttributeMap& expected, const CacheTaps& taps) {
  io::FeatureStoreReader r(path, expected);
  attrs_ = r.attributes();
  const bool half = attrs_.count("dtype") && attrs_.at("dtype") == "float16";
  if (taps.cls) cls_ = read_all(r, "cls", half);
  if (taps.kv) kv_ = read_all(r, "kv", half);
  labels_ = torch::empty({r.n_rows()}, torch::kInt64);
  r.read_labels(0, r.n_rows(), labels_.data_ptr<int64_t>());
}

CachedSplit::CachedSplit(const std::string& path, const io::AttributeMap& expected, const CacheTaps& taps,
                         const std::vector<int64_t>& rows) {
  io::FeatureStoreReader r(path, expected);
  attrs_ = r.attributes();
  const bool half = attrs_.count("dtype") && attrs_.at("dtype") == "float16";
  if (taps.cls) cls_ = read_selected(r, "cls", half, rows);
  if (taps.kv) kv_ = read_selected(r, "kv", half, rows);
  auto all = torch::empty({r.n_rows()}, torch::kInt64);
  r.read_labels(0, r.n_rows(), all.data_ptr<int64_t>());
  labels_ = all.index_select(0, torch::tensor(rows, torch::kInt64));
}

CachedSplit::CachedSplit(torch::Tensor cls, torch::Tensor kv, torch::Tensor labels)
    : cls_(std::move(cls)), kv_(std::move(kv)), labels_(std::move(labels)) {}

CachedFeatures CachedSplit::batch(const torch::Tensor& index, torch::Device device, bool in_place) const {
  // K/V in their stored dtype: the query path converts each block's K/V when it uses them
  // (models/kv_attention.h), so the batch never holds a float32 copy of its K/V (at ViT-B/16, batch
  // 64: 886 MiB). In host memory they are not even gathered (a float16 copy, 443 MiB, and a
  // memory-bound tenth of a resident SynQT step at T = 1): views of the store plus the index.
  CachedFeatures f;
  // The rows may live in host or device memory; the index goes where they are.
  if (cls_.defined()) f.cls = cls_.index_select(0, index.to(cls_.device())).to(device, torch::kFloat32);
  if (kv_.defined() && in_place && kv_.device().is_cpu() && device.is_cpu()) {
    f.rows = index.to(torch::kInt64).contiguous();
    PETL_CHECK(f.rows.dim() == 1, "CachedSplit::batch: expected a 1-d row index, got shape ", f.rows.sizes());
    if (f.rows.numel())
      PETL_CHECK(f.rows.min().item<int64_t>() >= 0 && f.rows.max().item<int64_t>() < kv_.size(0),
                 "CachedSplit::batch: row index out of range [0, ", kv_.size(0), ")");
    for (int64_t l = 0; l < kv_.size(1); ++l) {
      auto layer = kv_.select(1, l);  // (R, 2, H, T, dh): views, no copy
      f.k.push_back(layer.select(1, 0));
      f.v.push_back(layer.select(1, 1));
    }
  } else if (kv_.defined()) {
    const auto idx = index.to(kv_.device());
    for (int64_t l = 0; l < kv_.size(1); ++l) {
      auto layer = kv_.select(1, l);  // (N, 2, H, T, dh)
      f.k.push_back(layer.select(1, 0).index_select(0, idx).to(device).contiguous());
      f.v.push_back(layer.select(1, 1).index_select(0, idx).to(device).contiguous());
    }
  }
  return f;
}

void for_each_cached_batch(const std::string& path, const io::AttributeMap& expected, const CacheTaps& taps,
                           int64_t batch, torch::Device device,
                           const std::function<void(const CachedFeatures&, const torch::Tensor&)>& fn) {
  io::FeatureStoreReader r(path, expected);
  auto read = [&](const std::string& name, int64_t row0, int64_t c) {
    const auto& spec = r.spec(name);
    std::vector<int64_t> shape{c};
    shape.insert(shape.end(), spec.row_shape.begin(), spec.row_shape.end());
    auto t = torch::empty(shape, torch::kFloat32);
    r.read_rows(name, row0, c, t.data_ptr<float>());
    return t;
  };
  for (int64_t row0 = 0; row0 < r.n_rows(); row0 += batch) {
    stop::check();
    const int64_t c = std::min(batch, r.n_rows() - row0);
    auto labels = torch::empty({c}, torch::kInt64);
    r.read_labels(row0, c, labels.data_ptr<int64_t>());
    fn(features_from(taps.cls ? read("cls", row0, c) : torch::Tensor(), taps.kv ? read("kv", row0, c) : torch::Tensor(),
                     device),
       labels);
  }
}

}  // namespace petl
