// synqt — Synthesized Query Tuning (Zhang et al., "Parameter-Efficient and Memory-Efficient Tuning
// for Vision Transformer: A Disentangled Approach", ECCV 2024).
// Follows the authors' code (taolinzhang/SynQT synqt.py, train.py) module for module, with its
// parameter names (synqt.q, synqt.prompt_ffn.{i}.mlp.fc1, synqt.qsm_block.{i}..., head) so
// checkpoints interoperate; see docs/spec/synqt.md. Generalised from ViT-B (768, 12 layers)
// to any width/depth/heads; the bottleneck sizes stay 48 and 8 as in the reference.
// Deviations, all documented:
//  * The frozen backbone path runs first under no-grad for all blocks, collecting each block's K/V
//    (contiguous copies, so only K and V — not the whole qkv buffer — are kept for backward);
//    the query path then runs block by block. The maths is identical; only the order of random
//    draws differs from the interleaved reference.
//  * The no-grad backbone pass runs in chunks of `backbone_micro_batch` (4) images whose K/V are
//    copied into whole-batch tensors: the same K/V up to BLAS round-off; with the backbone's
//    stochastic depth on, the per-sample masks are drawn chunk by chunk (another random order).
//  * With live K/V (and from resident features where T is large enough that the kept activations
//    would outgrow a live step's K/V) the query path's layers are recomputed in backward
//    (`query_recompute`, default live): only each layer's input is kept, the recomputation replays
//    the generator, so values are identical and gradients agree to the summation order of tensors
//    shared across layers.
//  * `backbone_drop_path=off` (setting) makes the backbone token path deterministic (cacheable
//    features), a documented variant; the reference keeps it on. The query branches' own
//    stochastic depth (`kem_drop_path`, reference on) is separate.
//  * Backbones: the query tokens read every block's keys (registers included) and never join the
//    backbone's token sequence, and the head reads the query path, not the backbone's cls token, so
//    every layout and pooling works; head_norm starts as the backbone's final norm (fc_norm on a
//    mean-pooling backbone, which petl keeps as `norm`).
//  * Per-task token_nums / attn_scale / ffn_scale / feat_scale come from
//    config/synqt_task_configs.csv; tasks not in it (e.g. the embedded suite) use T=4 and
//    0.1/0.1/0.1 unless overridden with --set.
// Settings: see kOptions below (per-task values apply below --set values).
#include <array>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "methods/common.h"
#include "methods/method.h"
#include "methods/options.h"
#include "methods/task_config.h"

namespace petl {
namespace {

using torch::Tensor;

torch::nn::LayerNorm new_ln(int d) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)); }

// Mlp of the reference: fc1 → GELU → Drop → fc2 → Drop.
struct MlpDImpl : torch::nn::Module {
  MlpDImpl(int d, int hidden, double drop) : drop_(drop) {
    fc1 = register_module("fc1", torch::nn::Linear(d, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, d));
  }
  Tensor forward(const Tensor& x) {
    auto h = torch::dropout(torch::gelu(fc1(x)), drop_, is_training());
    return torch::dropout(fc2(h), drop_, is_training());
  }
  double drop_;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(MlpD);

// Adapter of the reference: u + Mlp(u).
struct ResAdapterImpl : torch::nn::Module {
  ResAdapterImpl(int d, int hidden, double drop) { mlp = register_module("mlp", MlpD(d, hidden, drop)); }
  Tensor forward(const Tensor& u) { return u + mlp(u); }
  MlpD mlp{nullptr};
};
TORCH_MODULE(ResAdapter);

// Single-head self-attention among the T query tokens, every projection an 8-dim adapter.
struct QSMAttentionImpl : torch::nn::Module {
  explicit QSMAttentionImpl(int d, double drop) : drop_(drop), scale_(std::pow(double(d), -0.5)) {
    q_proj = register_module("q_proj", ResAdapter(d, 8, 0.0));
    k_proj = register_module("k_proj", ResAdapter(d, 8, 0.0));
    v_proj = register_module("v_proj", ResAdapter(d, 8, 0.0));
    proj = register_module("proj", ResAdapter(d, 8, 0.0));
    q_norm = register_module("q_norm", new_ln(d));
    kv_norm = register_module("kv_norm", new_ln(d));
  }
  Tensor forward(const Tensor& p) {
    auto q = q_proj(q_norm(p));
    auto kvn = kv_norm(p);
    auto k = k_proj(kvn), v = v_proj(kvn);
    auto a = (torch::matmul(q, k.transpose(-2, -1)) * scale_).softmax(-1);
    a = torch::dropout(a, drop_, is_training());
    return torch::dropout(proj(torch::matmul(a, v)), drop_, is_training());
  }
  double drop_, scale_;
  ResAdapter q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, proj{nullptr};
  torch::nn::LayerNorm q_norm{nullptr}, kv_norm{nullptr};
};
TORCH_MODULE(QSMAttention);

struct QSMBlockImpl : torch::nn::Module {
  QSMBlockImpl(int d, double attn_scale0, double ffn_scale0, double drop) {
    attn = register_module("attn", QSMAttention(d, drop));
    mlp = register_module("mlp", ResAdapter(d, 48, drop));
    norm1 = register_module("norm1", new_ln(d));
    norm2 = register_module("norm2", new_ln(d));
    attn_scale = register_parameter("attn_scale", torch::full({1}, attn_scale0));
    ffn_scale = register_parameter("ffn_scale", torch::full({1}, ffn_scale0));
  }
  Tensor forward(Tensor x) {
    x = x + attn(norm1(x)) * attn_scale;
    return x + mlp(norm2(x)) * ffn_scale;
  }
  QSMAttention attn{nullptr};
  ResAdapter mlp{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Tensor attn_scale, ffn_scale;
};
TORCH_MODULE(QSMBlock);

// ConditionCombineBlock: weights = [1, tanh(Drop(GELU(fc1(g_0))))]; `weight` is unused but trainable.
struct GetWeightImpl : torch::nn::Module {
  GetWeightImpl(int d, int out, double drop) : drop_(drop) { fc1 = register_module("fc1", torch::nn::Linear(d, out)); }
  Tensor forward(const Tensor& x) { return torch::dropout(torch::gelu(fc1(x)), drop_, is_training()); }
  double drop_;
  torch::nn::Linear fc1{nullptr};
};
TORCH_MODULE(GetWeight);

struct OutCombineImpl : torch::nn::Module {
  OutCombineImpl(int d, int dim, double drop) {
    get_weight = register_module("get_weight", GetWeight(d, dim - 1, drop));
    weight = register_parameter("weight", torch::ones({dim}));
  }
  Tensor forward(const Tensor& feat) {  // (B, J, D) → (B, D)
    auto w = torch::tanh(get_weight(feat.select(1, 0)));
    auto ones = torch::ones({feat.size(0), 1}, feat.options());
    return (torch::cat({ones, w}, 1).unsqueeze(-1) * feat).mean(1);
  }
  GetWeight get_weight{nullptr};
  Tensor weight;
};
TORCH_MODULE(OutCombine);

// When the query path keeps only each layer's input for backward (see query_recompute below).
enum class QueryRecompute { kLive, kOn, kOff };
}  // namespace
template <>
struct EnumText<QueryRecompute> {
  static constexpr const char* kWhat = "query_recompute setting";
  static constexpr std::array<EnumName<QueryRecompute>, 3> kNames{
      {{QueryRecompute::kLive, "live"}, {QueryRecompute::kOn, "on"}, {QueryRecompute::kOff, "off"}}};
  static constexpr std::array<EnumName<QueryRecompute>, 0> kAliases{};
};
namespace {

struct SynQTOptions {
  int token_nums{};
  double attn_scale{}, ffn_scale{}, feat_scale{};
  bool backbone_drop_path{}, kem_drop_path{};
  int backbone_micro_batch{};
  double dropout{}, combine_drop_path{};
  QueryRecompute query_recompute{};
};

const methods::OptionTable<SynQTOptions> kOptions =
    methods::OptionTable<SynQTOptions>()
        .add("token_nums", &SynQTOptions::token_nums, 4, methods::Range::at_least(1),
             "query tokens T per layer (per task: config/synqt_task_configs.csv)")
        .add("attn_scale", &SynQTOptions::attn_scale, 0.1, methods::Range::any(),
             "initial attention-branch scale of the QSM blocks (per task)")
        .add("ffn_scale", &SynQTOptions::ffn_scale, 0.1, methods::Range::any(),
             "initial MLP-branch scale of the QSM blocks (per task)")
        .add("feat_scale", &SynQTOptions::feat_scale, 0.1, methods::Range::any(),
             "initial scale of the previous layer's query output fed forward (per task)")
        .add("backbone_drop_path", &SynQTOptions::backbone_drop_path, true, methods::BoolText::on_off,
             "stochastic depth on the frozen backbone path (off: deterministic, cacheable features)")
        .add("kem_drop_path", &SynQTOptions::kem_drop_path, true, methods::BoolText::on_off,
             "stochastic depth on the query branches")
        .add("backbone_micro_batch", &SynQTOptions::backbone_micro_batch, methods::kBackboneMicroBatch,
             methods::Range::at_least(0), methods::backbone_micro_batch_help())
        .add("dropout", &SynQTOptions::dropout, 0.1, methods::Range::probability(),
             "dropout of the query-synthesis modules (the reference's fixed 0.1 everywhere)")
        .add("combine_drop_path", &SynQTOptions::combine_drop_path, 0.3, methods::Range::probability(),
             "drop path on the combined layer outputs j >= 1 (the reference's fixed 0.3)")
        .add("query_recompute", &SynQTOptions::query_recompute, QueryRecompute::kLive,
             "live|on|off: keep only each layer's query input for backward and recompute the layer's query "
             "path there (same random draws), so training holds the K/V floor plus one layer's activations; "
             "live: when K/V come from the live backbone pass, and from resident features only where the kept "
             "activations would exceed a live step's fp32 K/V (T*(27*D + H*N) > 2*N*D: T >= 14 at ViT-B/L), "
             "elsewhere they fit under live's peak and recomputing would cost throughput");

// The per-task row of config/synqt_task_configs.csv over the defaults; *source says where from.
SynQTOptions task_config(const std::string& task, std::string* source_out) {
  SynQTOptions c = kOptions.defaults();
  *source_out = "default (task not in synqt_task_configs.csv)";
  std::string source;
  auto row = methods::task_row("synqt_task_configs.csv", task, &source);
  if (row.empty()) return c;
  auto num = [&](const std::string& col, double& v) {
    auto it = row.find(col);
    PETL_CHECK(it != row.end(), source, ": synqt_task_configs.csv has no column '", col, "'");
    char* end = nullptr;
    v = std::strtod(it->second.c_str(), &end);
    PETL_CHECK(!it->second.empty() && end && *end == 0, source, ": column '", col, "': expected a number, got '",
               it->second, "'");
  };
  double t = 0;
  num("token_nums", t);
  c.token_nums = int(t);
  num("attn_scale", c.attn_scale);
  num("ffn_scale", c.ffn_scale);
  num("feat_scale", c.feat_scale);
  *source_out = source;
  return c;
}

struct SynQTModuleImpl : torch::nn::Module {
  SynQTModuleImpl(int d, int depth, const SynQTOptions& c) : depth_(depth) {
    q = register_parameter("q", torch::empty({depth, c.token_nums, d}).uniform_(-1, 1));
    pre_norm = register_module("pre_norm", torch::nn::ModuleList());
    qsm_block = register_module("qsm_block", torch::nn::ModuleList());
    prompt_ffn = register_module("prompt_ffn", torch::nn::ModuleList());
    for (int i = 0; i < depth; ++i) {
      pre_norm->push_back(new_ln(d));
      auto b = QSMBlock(d, c.attn_scale, c.ffn_scale, c.dropout);
      qsm_block->push_back(b);
      qsm_.push_back(b);
      auto f = ResAdapter(d, 48, c.dropout);
      prompt_ffn->push_back(f);
      ffn_.push_back(f);
    }
    feat_scale = register_parameter("feat_scale", torch::full({1}, c.feat_scale));
    mlp = register_module("mlp", ResAdapter(d, 48, c.dropout));
    out_combine = register_module("out_combine", OutCombine(d, 3 * depth + 1, c.dropout));
    combine_drop_path_ = c.combine_drop_path;
    out_norm = register_module("out_norm", new_ln(d));
    head_norm = register_module("head_norm", new_ln(d));
  }
  // feat: (B, 3L+1, D) → (B, D). g_j = S_j + Ad48(LN(S_j)); DropPath(combine_drop_path, 0.3) on j ≥ 1.
  Tensor combine(const Tensor& feat) {
    auto g = feat + mlp(out_norm(feat));
    if (is_training() && combine_drop_path_ > 0) {
      auto rest = g.narrow(1, 1, g.size(1) - 1);
      const double keep = 1.0 - combine_drop_path_;
      auto mask = (torch::rand({g.size(0), rest.size(1), 1}, g.options()) + keep).floor_();
      g = torch::cat({g.narrow(1, 0, 1), rest.div(keep) * mask}, 1);
    }
    return out_combine(g);
  }
  int depth_;
  double combine_drop_path_ = 0.3;
  Tensor q, feat_scale;
  torch::nn::ModuleList pre_norm{nullptr}, qsm_block{nullptr}, prompt_ffn{nullptr};
  std::vector<QSMBlock> qsm_;
  std::vector<ResAdapter> ffn_;
  ResAdapter mlp{nullptr};
  OutCombine out_combine{nullptr};
  torch::nn::LayerNorm out_norm{nullptr}, head_norm{nullptr};
};
TORCH_MODULE(SynQTModule);

// One layer of the query path: (previous layer's pooled output, K_i, V_i) → (p_i, h_i, hh_i).
// rows: CachedFeatures::rows (undefined: K_i, V_i hold the batch's images themselves).
struct QueryLayers {
  virtual ~QueryLayers() = default;
  virtual std::array<Tensor, 3> layer(int i, const Tensor& prev, const Tensor& k, const Tensor& v,
                                      const Tensor& rows) = 0;
};

// A query-path layer whose activations are not kept for backward (reentrant recomputation, as
// torch.utils.checkpoint): forward runs the layer without recording and saves its inputs (the
// previous layer's pooled output, and the K/V that stay alive anyway) and the generator's state;
// backward restores that state, runs the layer again recording, back-propagates through it (the
// trainable tensors' gradients accumulate there) and puts the generator back. The recomputation
// draws the same dropout/drop-path masks and computes the same values, so the gradients are those
// of the kept-activation path up to the summation order of tensors used by several layers.
struct RecomputedLayer : torch::autograd::Function<RecomputedLayer> {
  // prev: the previous layer's output, or an empty tensor for layer 0 (inputs must be defined);
  // rows: the batch's resident rows, or an empty tensor.
  // anchor: a trainable tensor of the layer, so that the outputs require gradients even where no
  // other input does (layer 0); its gradient comes from the recomputation, not from here.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const Tensor& prev,
                                                const Tensor& k, const Tensor& v, const Tensor& rows,
                                                const Tensor& anchor, QueryLayers* self, int64_t i) {
    (void)anchor;
    auto gen = at::globalContext().defaultGenerator(k.device());
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      ctx->saved_data["rng"] = gen.get_state();
    }
    ctx->saved_data["self"] = int64_t(reinterpret_cast<intptr_t>(self));
    ctx->saved_data["i"] = i;
    ctx->save_for_backward({prev, k, v, rows});
    auto out = self->layer(int(i), prev.numel() ? prev : Tensor(), k, v, rows.numel() ? rows : Tensor());
    return {out[0], out[1], out[2]};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto* self = reinterpret_cast<QueryLayers*>(intptr_t(ctx->saved_data["self"].toInt()));
    Tensor prev;
    if (saved[0].numel()) prev = saved[0].detach().requires_grad_(true);
    auto gen = at::globalContext().defaultGenerator(saved[1].device());
    Tensor now;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      now = gen.get_state();
      gen.set_state(ctx->saved_data["rng"].toTensor());
    }
    std::array<Tensor, 3> out;
    {
      torch::AutoGradMode grad(true);
      out = self->layer(int(ctx->saved_data["i"].toInt()), prev, saved[1], saved[2],
                        saved[3].numel() ? saved[3] : Tensor());
    }
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(now);
    }
    torch::autograd::variable_list outs, gs;
    for (size_t j = 0; j < out.size(); ++j)
      if (grads[j].defined() && out[j].requires_grad()) {
        outs.push_back(out[j]);
        gs.push_back(grads[j]);
      }
    if (!outs.empty()) torch::autograd::backward(outs, gs);
    return {prev.defined() ? prev.grad() : Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

class SynQT : public Method, QueryLayers {
 public:
  explicit SynQT(const MethodContext& ctx) : Method(ctx) {
    const auto& cfg = backbone_->config();
    const SynQTOptions base = task_config(ctx.task, &source_);
    const auto& s = ctx.settings;
    if (s.has("token_nums") || s.has("attn_scale") || s.has("ffn_scale") || s.has("feat_scale"))
      source_ += " + --set overrides";
    o_ = kOptions.parse(s, base);
    synqt = register_module("synqt", SynQTModule(cfg.embed_dim, cfg.depth, o_));
    head = register_module("head", torch::nn::Linear(cfg.embed_dim, ctx.num_classes));
    {  // head_norm starts as the backbone's final norm (set_synqt in the reference)
      torch::NoGradGuard ng;
      const auto [weight, bias] = backbone_->final_norm_affine();
      synqt->head_norm->weight.copy_(weight);
      synqt->head_norm->bias.copy_(bias);
    }
    for (int i = 0; i < cfg.depth; ++i)
      kem_rate_.push_back(cfg.depth > 1 ? ctx.backbone_drop_path * i / (cfg.depth - 1) : 0.0);
    backbone_->set_drop_path_enabled(o_.backbone_drop_path);
  }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.block_kv = true;
    n.backbone_stochastic = o_.backbone_drop_path && ctx_.backbone_drop_path > 0;
    n.memory_class = MemoryClass::kLight;
    n.frozen_chunk = o_.backbone_micro_batch;
    return n;
  }
  std::map<std::string, std::string> effective_settings() const override {
    auto m = kOptions.effective(o_);
    m["_task_config_source"] = source_;
    return m;
  }

  // Backbone pass (no grad): K_i, V_i of every block, backbone_micro_batch images at a time.
  void backbone_kv(const Tensor& images, std::vector<Tensor>& k, std::vector<Tensor>& v) {
    auto f = methods::frozen_pass(*backbone_, images, o_.backbone_micro_batch, true, false);
    k = std::move(f.k);
    v = std::move(f.v);
  }

  // Layer i of the query path: the synthesised queries read block i's K/V (query-only) and pass its
  // frozen MLP; returns the pooled p_i, h_i, hh_i (mean over the T tokens when T > 1).
  std::array<Tensor, 3> layer(int i, const Tensor& prev, const Tensor& k, const Tensor& v,
                              const Tensor& rows) override {
    const int64_t B = rows.defined() ? rows.size(0) : k.size(0);
    const bool training = is_training();
    auto& blk = backbone_->block(i);
    auto p = synqt->q[i].unsqueeze(0).expand({B, -1, -1});
    p = i == 0 ? synqt->ffn_[i](p) : synqt->ffn_[i](p + prev * synqt->feat_scale);
    p = synqt->qsm_[i](p);
    p = torch::dropout(p, o_.dropout, training);
    const double rate = o_.kem_drop_path ? kem_rate_[i] : 0.0;
    auto h = drop_path(blk.attend_with(blk.apply_norm1(p), k, v, rows), rate, training);
    p = p + h;
    auto hh = drop_path(blk.mlp_branch(p), rate, training);
    p = p + hh;
    if (p.size(1) > 1) return {p.mean(1, true), h.mean(1, true), hh.mean(1, true)};
    return {p, h, hh};
  }

  // The trainable query path given every block's K/V (live, or resident features in their stored
  // dtype). `recompute`: each layer through RecomputedLayer (only while gradients are recorded and
  // autocast is off — the recomputation runs outside the forward's autocast scope).
  // rows: CachedFeatures::rows (undefined for a live pass).
  Tensor forward_from_kv(const std::vector<Tensor>& k, const std::vector<Tensor>& v, bool recompute,
                         const Tensor& rows = {}) {
    const int L = backbone_->depth();
    recompute = recompute && torch::GradMode::is_enabled() &&
                !c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::AutocastCPU) &&
                !c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::AutocastCUDA);
    std::vector<Tensor> z, hs, hhs;
    for (int i = 0; i < L; ++i) {
      const Tensor prev = i == 0 ? Tensor() : z.back();
      std::array<Tensor, 3> out;
      if (recompute) {
        auto r = RecomputedLayer::apply(prev.defined() ? prev : torch::empty({0}, k[i].device()), k[i], v[i],
                                        rows.defined() ? rows : torch::empty({0}, torch::kInt64), synqt->q,
                                        static_cast<QueryLayers*>(this), int64_t(i));
        out = {r[0], r[1], r[2]};
      } else {
        out = layer(i, prev, k[i], v[i], rows);
      }
      z.push_back(out[0]);
      hs.push_back(out[1]);
      hhs.push_back(out[2]);
    }
    std::vector<Tensor> all{z.back()};
    all.insert(all.end(), z.begin(), z.end());
    all.insert(all.end(), hs.begin(), hs.end());
    all.insert(all.end(), hhs.begin(), hhs.end());
    auto feat = synqt->combine(torch::cat(all, 1));  // (B, D)
    return head(synqt->head_norm(feat));
  }

  // From resident features, `query_recompute=live` still recomputes when the query path's kept
  // activations would outgrow the fp32 K/V a live step holds: T·(27·D + H·N) > 2·N·D floats per image
  // and layer (27·D + H·N: what one query token keeps per layer — adapters, layer norms, the frozen
  // MLP's hidden, attention probabilities — measured at ViT-B/16 as 66.8 MiB per token at batch 64).
  // At ViT-B/L that is T ≥ 14 (VTAB's T = 16 tasks), so training from stored features never peaks
  // above the live run; smaller T keep their activations (recomputing would cost throughput).
  bool resident_recompute() const {
    if (o_.query_recompute != QueryRecompute::kLive) return o_.query_recompute == QueryRecompute::kOn;
    const auto& cfg = backbone_->config();
    const int64_t T = o_.token_nums, D = cfg.embed_dim, H = cfg.num_heads, N = cfg.num_tokens();
    return T * (27 * D + H * N) > 2 * N * D;
  }
  Tensor forward_cached(const CachedFeatures& f) override {
    return forward_from_kv(f.k, f.v, resident_recompute(), f.rows);
  }
  Tensor forward(const Tensor& images) override {
    std::vector<Tensor> k, v;
    backbone_kv(images, k, v);
    return forward_from_kv(k, v, o_.query_recompute != QueryRecompute::kOff);
  }

  SynQTOptions o_;
  std::string source_;
  std::vector<double> kem_rate_;
  SynQTModule synqt{nullptr};
  torch::nn::Linear head{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("synqt")
                         .describe("Synthesized Query Tuning (ECCV 2024), query-only use of the frozen ViT")
                         .recipe("synqt")
                         .options(kOptions.describe())
                         .make<SynQT>());

}  // namespace
}  // namespace petl
