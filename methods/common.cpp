// Helpers shared by the method files; see common.h.
#include "methods/common.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "models/arch_registry.h"

namespace petl::methods {

torch::nn::Module& module_at(torch::nn::Module& root, const std::string& path) {
  torch::nn::Module* cur = &root;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) {
    std::shared_ptr<torch::nn::Module> next;
    for (auto& c : cur->named_children())
      if (c.key() == part) next = c.value();
    if (!next) next = cur->register_module(part, Node());
    cur = next.get();
  }
  return *cur;
}

torch::Tensor register_param_under(torch::nn::Module& root, const std::string& path, const std::string& name,
                                   torch::Tensor t) {
  return path.empty() ? root.register_parameter(name, t) : module_at(root, path).register_parameter(name, t);
}

void torch_default_init(torch::nn::Linear& lin) {
  torch::NoGradGuard ng;
  torch::nn::init::kaiming_uniform_(lin->weight, std::sqrt(5.0));
  if (lin->bias.defined()) {
    const double b = 1.0 / std::sqrt(double(lin->weight.size(1)));
    lin->bias.uniform_(-b, b);
  }
}

void xavier_uniform(torch::Tensor w) {
  torch::NoGradGuard ng;
  torch::nn::init::xavier_uniform_(w);
}

void trunc_normal(torch::Tensor t, double std) {
  torch::NoGradGuard ng;
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double a = -2.0, b = 2.0, l = cdf(a / std), u = cdf(b / std);
  t.uniform_(2 * l - 1, 2 * u - 1).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
}

void init_head(torch::nn::Linear& head, HeadInit how) {
  torch::NoGradGuard ng;
  switch (how) {
    case HeadInit::torch_default:
      torch_default_init(head);
      break;
    case HeadInit::trunc_normal:
      trunc_normal(head->weight, 0.02);
      head->bias.zero_();
      break;
    case HeadInit::vpt:
      torch::nn::init::kaiming_normal_(head->weight, 0.0, torch::kFanOut);
      head->bias.fill_(-std::log((1.0 - 0.01) / 0.01));
      break;
  }
}

HookedMethod::HookedMethod(const MethodContext& ctx, HeadInit head_init) : Method(ctx) {
  head = register_module("head", torch::nn::Linear(backbone_->config().embed_dim, ctx.num_classes));
  init_head(head, head_init);
}

BackboneNeeds HookedMethod::needs() const {
  BackboneNeeds n;
  n.grad_through_backbone = true;
  n.backbone_stochastic = ctx_.backbone_drop_path > 0 && !backbone_always_eval_;
  n.memory_class = MemoryClass::kHeavy;
  return n;
}

torch::Tensor HookedMethod::forward(const torch::Tensor& images) { return head(backbone_->forward_cls(images, this)); }

namespace {

const torch::Tensor& authors_tensor(const std::map<std::string, torch::Tensor>& a, const std::string& name) {
  auto it = a.find(name);
  PETL_CHECK(it != a.end(), "authors' checkpoint: no tensor '", name,
             "' (expected the state_dict of the authors' code)");
  return it->second;
}

void drop_unused(const std::map<std::string, torch::Tensor>& a, const std::set<std::string>& used,
                 std::vector<std::string>& dropped) {
  for (auto& [k, v] : a)
    if (!used.count(k)) dropped.push_back(k);
}

}  // namespace

AuthorsImport rename_import(std::vector<std::pair<std::string, std::string>> renames, bool vpt_head) {
  if (vpt_head) {
    renames.emplace_back("head.last_layer.weight", "head.weight");
    renames.emplace_back("head.last_layer.bias", "head.bias");
  }
  return [renames](const std::map<std::string, torch::Tensor>& a, std::vector<std::string>& dropped) {
    std::map<std::string, torch::Tensor> out;
    std::set<std::string> used;
    for (auto& [from, to] : renames) {
      out[to] = authors_tensor(a, from);
      used.insert(from);
    }
    drop_unused(a, used, dropped);
    return out;
  };
}

std::map<std::string, torch::Tensor> import_vpt_vit_biases(const std::map<std::string, torch::Tensor>& a,
                                                           std::vector<std::string>& dropped) {
  std::map<std::string, torch::Tensor> out;
  std::set<std::string> used;
  auto take = [&](const std::string& from, const std::string& to) {
    out[to] = authors_tensor(a, from);
    used.insert(from);
  };
  const std::string enc = "enc.transformer.";
  take(enc + "embeddings.patch_embeddings.bias", "patch_embed.proj.bias");
  take(enc + "encoder.encoder_norm.bias", "norm.bias");
  for (int i = 0;; ++i) {
    const std::string l = enc + "encoder.layer." + std::to_string(i) + ".", b = "blocks." + std::to_string(i) + ".";
    if (!a.count(l + "attn.query.bias")) {
      PETL_CHECK(i > 0, "authors' checkpoint: no tensor '", l, "attn.query.bias' (expected VPT's ViT)");
      break;
    }
    std::vector<torch::Tensor> qkv;
    for (const char* p : {"query", "key", "value"}) {
      qkv.push_back(authors_tensor(a, l + "attn." + p + ".bias"));
      used.insert(l + "attn." + p + ".bias");
    }
    out[b + "attn.qkv.bias"] = torch::cat(qkv);
    take(l + "attn.out.bias", b + "attn.proj.bias");
    take(l + "attention_norm.bias", b + "norm1.bias");
    take(l + "ffn_norm.bias", b + "norm2.bias");
    take(l + "ffn.fc1.bias", b + "mlp.fc1.bias");
    take(l + "ffn.fc2.bias", b + "mlp.fc2.bias");
  }
  take("head.last_layer.weight", "head.weight");
  take("head.last_layer.bias", "head.bias");
  drop_unused(a, used, dropped);
  return out;
}

namespace {
// Copies each chunk's K/V into rows row0.. of whole-batch tensors allocated at the first chunk.
struct ChunkKvTap : BlockHooks {
  std::vector<torch::Tensor> k, v;
  int64_t batch = 0, row0 = 0;
  bool wants_kv() const override { return true; }
  void on_kv(int layer, const torch::Tensor& kk, const torch::Tensor& vv) override {
    auto put = [&](torch::Tensor& whole, const torch::Tensor& part) {
      if (!whole.defined()) {
        auto shape = part.sizes().vec();
        shape[0] = batch;
        whole = torch::empty(shape, part.options());
      }
      whole.narrow(0, row0, part.size(0)).copy_(part);
    };
    put(k[layer], kk);
    put(v[layer], vv);
  }
};
}  // namespace

FrozenPass frozen_pass(Backbone& backbone, const torch::Tensor& images, int64_t chunk, bool kv, bool cls) {
  torch::NoGradGuard ng;
  const int64_t B = images.size(0), m = chunk > 0 && chunk < B ? chunk : B;
  ChunkKvTap tap;
  tap.batch = B;
  tap.k.resize(backbone.depth());
  tap.v.resize(backbone.depth());
  std::vector<torch::Tensor> cls_parts;
  for (tap.row0 = 0; tap.row0 < B; tap.row0 += m) {
    auto x = backbone.forward_blocks(backbone.embed(images.narrow(0, tap.row0, std::min(m, B - tap.row0))),
                                     kv ? &tap : nullptr);
    if (cls) cls_parts.push_back(backbone.pool(x));
  }
  FrozenPass out;
  if (kv) {
    out.k = std::move(tap.k);
    out.v = std::move(tap.v);
  }
  if (cls) out.cls = cls_parts.size() == 1 ? cls_parts[0] : torch::cat(cls_parts);
  return out;
}

namespace {
// The first registry architecture of the family of `cfg` for which `fits` holds; "" when there is
// none (a custom or test configuration has no family).
template <typename Fits>
std::string same_family_arch(const VitConfig& cfg, Fits fits) {
  if (const ArchEntry* entry = find_arch(cfg.arch))
    for (const auto& e : arch_registry())
      if (e.family == entry->family && fits(e.config)) return e.name;
  return "";
}
}  // namespace

void refuse_register_tokens(const Backbone& backbone, const std::string& method, const std::string& why) {
  const VitConfig& cfg = backbone.config();
  if (cfg.reg_tokens == 0) return;
  const std::string alt = same_family_arch(cfg, [](const VitConfig& c) { return c.reg_tokens == 0; });
  throw ArgumentError(str_cat(method, ": ", why, "; backbone ", cfg.arch, " has ", cfg.reg_tokens,
                              " register tokens between the cls token and the patch tokens — use ",
                              alt.empty() ? "a backbone without register tokens" : alt));
}

void refuse_mean_pooling(const Backbone& backbone, const std::string& method, const std::string& why) {
  const VitConfig& cfg = backbone.config();
  if (cfg.pool != Pooling::kMeanPatchesFcNorm) return;
  const std::string alt = same_family_arch(cfg, [](const VitConfig& c) { return c.pool == Pooling::kClsAfterNorm; });
  throw ArgumentError(str_cat(
      method, ": ", why, "; backbone ", cfg.arch, " pools the mean of its patch tokens (", to_string(cfg.pool),
      ") — use ",
      alt.empty() ? "a backbone that pools the cls token (cls_after_norm)" : alt + ", which pools the cls token"));
}

}  // namespace petl::methods
