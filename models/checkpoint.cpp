// Backbone checkpoint loading and saving (see checkpoint.h).
#include "models/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/hashing.h"
#include "models/arch_registry.h"

namespace petl {
namespace fs = std::filesystem;

namespace {
torch::ScalarType scalar_type(io::DType d) {
  switch (d) {
    case io::DType::f64:
      return torch::kFloat64;
    case io::DType::f32:
      return torch::kFloat32;
    case io::DType::f16:
      return torch::kFloat16;
    case io::DType::bf16:
      return torch::kBFloat16;
    case io::DType::i64:
      return torch::kInt64;
    case io::DType::i32:
      return torch::kInt32;
    case io::DType::i16:
      return torch::kInt16;
    case io::DType::i8:
      return torch::kInt8;
    case io::DType::u8:
      return torch::kUInt8;
    case io::DType::boolean:
      return torch::kBool;
  }
  return torch::kFloat32;
}
io::DType dtype_of(torch::ScalarType s) {
  switch (s) {
    case torch::kFloat64:
      return io::DType::f64;
    case torch::kFloat32:
      return io::DType::f32;
    case torch::kFloat16:
      return io::DType::f16;
    case torch::kBFloat16:
      return io::DType::bf16;
    case torch::kInt64:
      return io::DType::i64;
    case torch::kInt32:
      return io::DType::i32;
    case torch::kInt16:
      return io::DType::i16;
    case torch::kInt8:
      return io::DType::i8;
    case torch::kUInt8:
      return io::DType::u8;
    case torch::kBool:
      return io::DType::boolean;
    default:
      PETL_FAIL("cannot store tensors of type ", c10::toString(s));
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Google ViT .npz → timm names (timm 0.4.12 vision_transformer._load_weights).
std::map<std::string, torch::Tensor> map_npz(const std::string& path) {
  auto raw = io::read_npz(path);
  std::map<std::string, torch::Tensor> in;
  for (auto& [k, v] : raw) {
    std::string key = k;
    if (key.rfind("opt/target/", 0) == 0) key = key.substr(11);
    in[key] = to_torch(v).to(torch::kFloat32);
  }
  std::map<std::string, torch::Tensor> out;
  std::set<std::string> used;
  auto take = [&](const std::string& key) -> torch::Tensor {
    auto it = in.find(key);
    if (it == in.end()) PETL_FAIL(path, ": missing tensor '", key, "' (Google ViT .npz layout expected)");
    used.insert(key);
    return it->second;
  };
  auto k = take("embedding/kernel");
  PETL_CHECK(k.dim() == 4, path, ": 'embedding/kernel' should be HWIO (4-D), got ", k.sizes());
  out["patch_embed.proj.weight"] = k.permute({3, 2, 0, 1}).contiguous();
  out["patch_embed.proj.bias"] = take("embedding/bias");
  out["cls_token"] = take("cls");
  out["pos_embed"] = take("Transformer/posembed_input/pos_embedding");
  out["norm.weight"] = take("Transformer/encoder_norm/scale");
  out["norm.bias"] = take("Transformer/encoder_norm/bias");
  for (int i = 0;; ++i) {
    std::string p = "Transformer/encoderblock_" + std::to_string(i) + "/";
    if (!in.count(p + "LayerNorm_0/scale")) break;
    std::string b = "blocks." + std::to_string(i) + ".";
    std::string mha = p + "MultiHeadDotProductAttention_1/";
    out[b + "norm1.weight"] = take(p + "LayerNorm_0/scale");
    out[b + "norm1.bias"] = take(p + "LayerNorm_0/bias");
    std::vector<torch::Tensor> w, bias;
    for (auto n : {"query", "key", "value"}) {
      w.push_back(take(mha + n + "/kernel").flatten(1).t());
      bias.push_back(take(mha + n + "/bias").reshape(-1));
    }
    out[b + "attn.qkv.weight"] = torch::cat(w, 0).contiguous();
    out[b + "attn.qkv.bias"] = torch::cat(bias, 0).contiguous();
    out[b + "attn.proj.weight"] = take(mha + "out/kernel").flatten(0, 1).t().contiguous();
    out[b + "attn.proj.bias"] = take(mha + "out/bias");
    out[b + "norm2.weight"] = take(p + "LayerNorm_2/scale");
    out[b + "norm2.bias"] = take(p + "LayerNorm_2/bias");
    out[b + "mlp.fc1.weight"] = take(p + "MlpBlock_3/Dense_0/kernel").t().contiguous();
    out[b + "mlp.fc1.bias"] = take(p + "MlpBlock_3/Dense_0/bias");
    out[b + "mlp.fc2.weight"] = take(p + "MlpBlock_3/Dense_1/kernel").t().contiguous();
    out[b + "mlp.fc2.bias"] = take(p + "MlpBlock_3/Dense_1/bias");
  }
  for (auto& [key, v] : in) {
    if (used.count(key) || key.rfind("head/", 0) == 0 || key.rfind("pre_logits/", 0) == 0) continue;
    PETL_FAIL(path, ": unexpected tensor '", key, "' ", shape_str(v.sizes().vec()),
              " (not part of a Google ViT checkpoint's backbone)");
  }
  return out;
}
}  // namespace

torch::Tensor to_torch(const io::RawTensor& t) {
  auto out = torch::empty(t.shape, torch::TensorOptions().dtype(scalar_type(t.dtype)));
  PETL_CHECK(size_t(out.nbytes()) == t.data.size(), "tensor byte size mismatch: ", out.nbytes(), " vs ", t.data.size());
  if (!t.data.empty()) std::memcpy(out.data_ptr(), t.data.data(), t.data.size());
  return out;
}

io::RawTensor from_torch(const torch::Tensor& t_in) {
  auto t = t_in.detach().to(torch::kCPU).contiguous();
  io::RawTensor r;
  r.dtype = dtype_of(t.scalar_type());
  r.shape = t.sizes().vec();
  r.data.resize(t.nbytes());
  if (t.nbytes()) std::memcpy(r.data.data(), t.data_ptr(), t.nbytes());
  return r;
}

namespace {
// A safetensors file's tensors as float32, the leading "module." of a DataParallel wrapper removed.
std::map<std::string, torch::Tensor> read_file_tensors(const std::string& path,
                                                       std::map<std::string, std::string>* metadata) {
  std::map<std::string, std::string> meta;
  auto raw = io::read_safetensors(path, &meta);
  if (metadata) *metadata = meta;
  std::map<std::string, torch::Tensor> out;
  for (auto& [k, v] : raw) out[k.rfind("module.", 0) == 0 ? k.substr(7) : k] = to_torch(v).to(torch::kFloat32);
  return out;
}

// The layout a file's tensors are read with: the entry's (by marker) when the architecture is
// registered, else any entry's marker layout, else timm's.
const CheckpointLayout& layout_for(const std::string& arch, const std::map<std::string, torch::Tensor>& tensors,
                                   const std::string& path) {
  if (const ArchEntry* e = arch.empty() ? nullptr : find_arch(arch)) return detect_layout(*e, tensors, path);
  if (const CheckpointLayout* l = detect_marked_layout(tensors)) return *l;
  return timm_layout();
}
}  // namespace

std::map<std::string, torch::Tensor> read_backbone_tensors(const std::string& path,
                                                           std::map<std::string, std::string>* metadata,
                                                           const std::string& arch, std::string* layout) {
  PETL_CHECK(fs::exists(path), "backbone file not found: ", path);
  if (ends_with(path, ".npz")) {
    if (layout) *layout = "google_npz";
    return map_npz(path);
  }
  if (ends_with(path, ".safetensors")) {
    std::map<std::string, std::string> meta;
    auto tensors = read_file_tensors(path, &meta);
    if (metadata) *metadata = meta;
    // petl's own backbone files (save_backbone) hold petl's names whatever the architecture.
    const CheckpointLayout& l = meta.count("petl_vit_config") ? timm_layout() : layout_for(arch, tensors, path);
    if (layout) *layout = l.name;
    return apply_layout(l, std::move(tensors), path);
  }
  PETL_FAIL("backbone file ", path,
            ": unsupported format (expected a Google ViT .npz or a timm state dict in "
            ".safetensors; convert .pth files with tools/pth_to_safetensors.py)");
}

std::string vit_config_to_json(const VitConfig& c) {
  nlohmann::json j = {{"arch", c.arch},           {"img_size", c.img_size},   {"patch_size", c.patch_size},
                      {"in_chans", c.in_chans},   {"embed_dim", c.embed_dim}, {"depth", c.depth},
                      {"num_heads", c.num_heads}, {"mlp_ratio", c.mlp_ratio}, {"ln_eps", c.ln_eps}};
  if (c.pool != Pooling::kClsAfterNorm) j["pool"] = to_string(c.pool);  // absent: cls (older files)
  // The families' variants, only when set (older files and the supervised ViTs' keys unchanged).
  if (c.act != Activation::kGelu) j["act"] = to_string(c.act);
  if (c.pre_norm) j["pre_norm"] = true;
  if (!c.patch_bias) j["patch_bias"] = false;
  if (c.init_values > 0) j["init_values"] = c.init_values;
  if (c.reg_tokens > 0) j["reg_tokens"] = c.reg_tokens;
  if (c.pos_resample != PosResample::kTimm) j["pos_resample"] = to_string(c.pos_resample);
  return j.dump();
}

VitConfig vit_config_from_json(const std::string& text, const std::string& where) {
  try {
    auto j = nlohmann::json::parse(text);
    VitConfig c;
    c.arch = j.at("arch").get<std::string>();
    c.img_size = j.at("img_size");
    c.patch_size = j.at("patch_size");
    c.in_chans = j.value("in_chans", 3);
    c.embed_dim = j.at("embed_dim");
    c.depth = j.at("depth");
    c.num_heads = j.at("num_heads");
    c.mlp_ratio = j.value("mlp_ratio", 4.0);
    c.ln_eps = j.value("ln_eps", 1e-6);
    if (j.contains("pool")) c.pool = parse_pooling(j.at("pool").get<std::string>());
    if (j.contains("act")) c.act = parse_activation(j.at("act").get<std::string>());
    c.pre_norm = j.value("pre_norm", false);
    c.patch_bias = j.value("patch_bias", true);
    c.init_values = j.value("init_values", 0.0);
    c.reg_tokens = j.value("reg_tokens", 0);
    if (j.contains("pos_resample"))
      c.pos_resample = parse_enum<PosResample>(j.at("pos_resample").get<std::string>(), where);
    return c;
  } catch (const nlohmann::json::exception& e) {
    PETL_FAIL(where, ": bad ViT config metadata: ", e.what());
  }
}

namespace {
// Width, patch, image size, depth and MLP ratio from tensor shapes (timm names).
VitConfig shapes_config(const std::map<std::string, torch::Tensor>& t, const std::string& path) {
  auto need = [&](const std::string& k) -> torch::Tensor {
    auto it = t.find(k);
    if (it == t.end()) PETL_FAIL(path, ": missing tensor '", k, "' (cannot infer the architecture)");
    return it->second;
  };
  VitConfig c;
  auto pw = need("patch_embed.proj.weight");
  c.embed_dim = pw.size(0);
  c.in_chans = pw.size(1);
  c.patch_size = pw.size(2);
  int64_t n = need("pos_embed").size(1) - 1;
  int64_t side = std::llround(std::sqrt(double(n)));
  PETL_CHECK(side * side == n, path, ": pos_embed has ", n, " patch positions, not a square grid");
  c.img_size = side * c.patch_size;
  c.depth = 0;
  while (t.count("blocks." + std::to_string(c.depth) + ".norm1.weight")) ++c.depth;
  c.mlp_ratio = double(need("blocks.0.mlp.fc1.weight").size(0)) / c.embed_dim;
  return c;
}
bool same_shape(const VitConfig& a, const VitConfig& b) {
  return a.embed_dim == b.embed_dim && a.depth == b.depth && a.patch_size == b.patch_size && a.img_size == b.img_size;
}
}  // namespace

VitConfig infer_vit_config(const std::string& path) {
  std::map<std::string, std::string> meta;
  std::string layout;
  auto t = read_backbone_tensors(path, &meta, "", &layout);
  if (meta.count("petl_vit_config")) return vit_config_from_json(meta["petl_vit_config"], path);
  VitConfig c = shapes_config(t, path);
  // Heads: the registry's count for this width (the first entry of that width).
  int heads = 0;
  for (const auto& e : arch_registry())
    if (!heads && e.config.embed_dim == c.embed_dim) heads = e.config.num_heads;
  PETL_CHECK(heads > 0, path, ": cannot infer num_heads for width ", c.embed_dim, "; pass --arch");
  c.num_heads = heads;
  c.arch = "inferred_d" + std::to_string(c.embed_dim) + "_l" + std::to_string(c.depth) + "_p" +
           std::to_string(c.patch_size) + "_" + std::to_string(c.img_size);
  // A layout with a marker names its entry (whose config is the run's: DINOv2's 518-px file runs at
  // the entry's 224 px, its pos_embed resampled); timm names: the first inferable entry of these shapes.
  for (const auto& e : arch_registry()) {
    bool has_layout = false;
    for (const auto& l : e.layouts) has_layout |= l.name == layout && !l.marker.empty();
    if (has_layout && e.config.embed_dim == c.embed_dim && e.config.depth == c.depth &&
        e.config.patch_size == c.patch_size)
      return e.config;
    if (((e.inferable && layout == "timm") || (e.inferable && layout == "google_npz")) && same_shape(e.config, c)) {
      c.arch = e.name;
      c.pool = e.config.pool;
      c.num_heads = e.config.num_heads;
      break;
    }
  }
  return c;
}

torch::Tensor resample_pos_embed(const torch::Tensor& pos, int new_grid, PosResample mode) {
  PETL_CHECK(pos.dim() == 3 && pos.size(0) == 1, "pos_embed: expected (1, 1 + G*G, D), got ", pos.sizes());
  const int64_t old_grid = std::llround(std::sqrt(double(pos.size(1) - 1))), D = pos.size(2);
  PETL_CHECK(old_grid * old_grid == pos.size(1) - 1, "pos_embed: ", pos.size(1) - 1,
             " patch positions are not a square grid");
  if (old_grid == new_grid) return pos;
  namespace F = torch::nn::functional;
  auto grid = pos.narrow(1, 1, old_grid * old_grid).reshape({1, old_grid, old_grid, D}).permute({0, 3, 1, 2});
  auto opts = F::InterpolateFuncOptions().mode(torch::kBicubic).align_corners(false);
  if (mode == PosResample::kTimm) {
    opts.size(std::vector<int64_t>{new_grid, new_grid}).antialias(true);
  } else {  // DINOv2: scale factor (new + 0.1) / old, computed in double as Python does; no antialias
    const double s = (new_grid + 0.1) / double(old_grid);
    opts.scale_factor(std::vector<double>{s, s}).antialias(false);
  }
  auto out = F::interpolate(grid.to(torch::kFloat32), opts);
  PETL_CHECK(out.size(2) == new_grid && out.size(3) == new_grid, "pos_embed resampling gave a ", out.size(2), "x",
             out.size(3), " grid, expected ", new_grid, "x", new_grid);
  return torch::cat({pos.narrow(1, 0, 1), out.permute({0, 2, 3, 1}).reshape({1, new_grid * new_grid, D})}, 1);
}

LoadedBackbone load_backbone(VisionTransformer& model, const std::string& path) {
  std::string layout;
  auto tensors = read_backbone_tensors(path, nullptr, model->cfg_.arch, &layout);
  LoadedBackbone lb;
  // A checkpoint trained on another grid (DINOv2: 518 px, 37×37) is resampled to the run's grid.
  if (auto it = tensors.find("pos_embed"); it != tensors.end() && it->second.dim() == 3 &&
                                           it->second.size(1) != model->pos_embed.size(1) &&
                                           it->second.size(2) == model->pos_embed.size(2)) {
    const int64_t old_grid = std::llround(std::sqrt(double(it->second.size(1) - 1)));
    if (old_grid * old_grid == it->second.size(1) - 1) {
      it->second = resample_pos_embed(it->second, model->cfg_.grid(), model->cfg_.pos_resample);
      lb.pos_embed_resampled_from = int(old_grid);
    }
  }
  auto params = model->named_parameters(/*recurse=*/true);
  torch::NoGradGuard ng;
  std::set<std::string> seen;
  for (auto& item : params) {
    auto it = tensors.find(item.key());
    if (it == tensors.end())
      PETL_FAIL(path, ": missing tensor '", item.key(), "' expected shape ", shape_str(item.value().sizes().vec()));
    if (it->second.sizes() != item.value().sizes())
      PETL_FAIL(path, ": tensor '", item.key(), "' has shape ", shape_str(it->second.sizes().vec()),
                ", the model expects ", shape_str(item.value().sizes().vec()));
    item.value().copy_(it->second);
    seen.insert(item.key());
  }
  for (auto& [k, v] : tensors)
    if (!seen.count(k))
      PETL_FAIL(path, ": unexpected tensor '", k, "' ", shape_str(v.sizes().vec()), " (not a parameter of ",
                model->cfg_.arch, ")");
  lb.path = fs::absolute(path).string();
  lb.format = ends_with(path, ".npz") ? "npz" : "safetensors";
  lb.layout = layout;
  lb.sha256 = sha256_file(path);
  return lb;
}

void save_backbone(const VisionTransformer& model, const std::string& path,
                   std::map<std::string, std::string> extra_metadata) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (auto& item : model->named_parameters(true)) named.emplace_back(item.key(), item.value());
  extra_metadata["petl_vit_config"] = vit_config_to_json(model->cfg_);
  extra_metadata["format"] = "pt";
  save_named_tensors(path, named, extra_metadata);
}

void save_named_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  io::TensorMap m;
  for (auto& [k, v] : tensors) {
    PETL_CHECK(!m.count(k), "duplicate tensor name '", k, "' while saving ", path);
    m[k] = from_torch(v);
  }
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
  io::write_safetensors(path, m, metadata);
}

std::map<std::string, torch::Tensor> load_named_tensors(const std::string& path,
                                                        std::map<std::string, std::string>* metadata) {
  auto raw = io::read_safetensors(path, metadata);
  std::map<std::string, torch::Tensor> out;
  for (auto& [k, v] : raw) out[k] = to_torch(v);
  return out;
}

}  // namespace petl
