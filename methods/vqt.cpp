// vqt — Visual Query Tuning (Tu et al., CVPR 2023), following andytu28/VQT
// src/models/vit_backbones/h2t_vit.py and build_h2t_model.py. At every layer l, T learnable query
// tokens Drop0.1(Q_l) join the frozen layer's input; they attend to the layer's own tokens
// (keys/values from the image tokens only, so the image tokens follow the frozen ViT exactly),
// then LayerNorm, MLP and residuals apply to them; their outputs z_l are collected and dropped.
// Features: [final-norm cls, z_1 … z_L], each chunk (the D-vector and each T·D vector)
// L2-normalised separately, concatenated (D + L·T·D) → Linear head (VPT head: kaiming_normal
// fan_out, bias −log 99). Q init U(±v), v = sqrt(6/(3·patch² + D)). The encoder stays in eval mode.
// Nothing flows back through the N-token path: the method declares the final cls token and every
// block's K/V, which the feature cache can serve (forward_from_kv).
// Backbones: the query tokens read every key (registers included) and never join the backbone's
// token sequence, so any layout works; the first feature is the backbone's pool() — the final-norm
// cls token, or on a mean-pooling backbone the final-norm mean of the patch tokens, as VQT's MAE
// model (its Head2Toe ViT for MAE: x[:, 1:].mean(1) → fc_norm) does.
// ViT-B/16: L·T·D = 9,216·T trainable without the head. Names: query_prompt_embeddings (L, T, D), head;
// the authors' checkpoints: enc.transformer.encoder.query_prompt_embeddings, head.last_layer.*.
// Per-task T: config/baselines/vqt_task_configs.csv (run_demo_exp.sh; T=1 elsewhere).
// Settings: see kOptions below.
// Deviation: the reference picks lr and weight decay per task by a validation sweep with Adam
// (lr ∈ {1, .5, .25, .1, .05}·batch/256); recipe "vqt" uses AdamW at lr 0.05·128/256 with the
// reference's batch 128, cosine with 10 warmup epochs over 100.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

using torch::Tensor;

struct VqtOptions {
  int token_nums{};
  double query_dropout{};
  int backbone_micro_batch{};
};

const methods::OptionTable<VqtOptions> kOptions =
    methods::OptionTable<VqtOptions>()
        .add("token_nums", &VqtOptions::token_nums, 1, methods::Range::at_least(1),
             "query tokens T per layer (per task: config/baselines/vqt_task_configs.csv)")
        .add("query_dropout", &VqtOptions::query_dropout, 0.1, methods::Range::probability(),
             "dropout on the query tokens")
        .add("backbone_micro_batch", &VqtOptions::backbone_micro_batch, methods::kBackboneMicroBatch,
             methods::Range::at_least(0), methods::backbone_micro_batch_help());

class Vqt : public Method {
 public:
  explicit Vqt(const MethodContext& ctx) : Method(ctx) {
    const auto& cfg = backbone_->config();
    auto row = methods::task_row("baselines/vqt_task_configs.csv", ctx.task, &source_);
    VqtOptions base = kOptions.defaults();
    if (row.count("token_nums")) base.token_nums = std::stoi(row["token_nums"]);
    if (source_.empty()) source_ = "default (task not in vqt_task_configs.csv)";
    if (ctx.settings.has("token_nums")) source_ += " + --set token_nums";
    o_ = kOptions.parse(ctx.settings, base);
    const int T = o_.token_nums;
    backbone_always_eval_ = true;
    const double v = std::sqrt(6.0 / double(3 * cfg.patch_size * cfg.patch_size + cfg.embed_dim));
    q = register_parameter("query_prompt_embeddings", torch::empty({cfg.depth, T, cfg.embed_dim}).uniform_(-v, v));
    head = register_module("head", torch::nn::Linear(cfg.embed_dim * (1 + cfg.depth * T), ctx.num_classes));
    methods::init_head(head, methods::HeadInit::vpt);
  }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.final_cls = true;
    n.block_kv = true;
    n.memory_class = MemoryClass::kLight;
    n.frozen_chunk = o_.backbone_micro_batch;
    return n;
  }
  std::map<std::string, std::string> effective_settings() const override {
    auto m = kOptions.effective(o_);
    m["_task_config_source"] = source_;
    return m;
  }
  // Logits from the frozen backbone's per-block K/V and final-norm cls token (live or cached).
  // rows: CachedFeatures::rows (undefined for a live pass).
  Tensor forward_from_kv(const std::vector<Tensor>& k, const std::vector<Tensor>& v, const Tensor& cls,
                         const Tensor& rows = {}) {
    const int64_t B = cls.size(0);
    std::vector<Tensor> feats{
        torch::nn::functional::normalize(cls, torch::nn::functional::NormalizeFuncOptions().dim(-1))};
    for (int l = 0; l < backbone_->depth(); ++l) {
      auto& blk = backbone_->block(l);
      auto p = torch::dropout(q[l].unsqueeze(0).expand({B, -1, -1}), o_.query_dropout, is_training());
      p = p + blk.attend_with(blk.apply_norm1(p), k[l], v[l], rows);
      p = p + blk.mlp_branch(p);
      feats.push_back(
          torch::nn::functional::normalize(p.reshape({B, -1}), torch::nn::functional::NormalizeFuncOptions().dim(-1)));
    }
    return head(torch::cat(feats, 1));
  }
  Tensor forward_cached(const CachedFeatures& f) override { return forward_from_kv(f.k, f.v, f.cls, f.rows); }
  Tensor forward(const Tensor& images) override {
    auto f = methods::frozen_pass(*backbone_, images, o_.backbone_micro_batch, true, true);
    return forward_from_kv(f.k, f.v, f.cls);
  }

  VqtOptions o_;
  std::string source_;
  Tensor q;
  torch::nn::Linear head{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("vqt")
                         .describe("VQT: per-layer query tokens reading the frozen ViT query-only")
                         .recipe("vqt")
                         .options(kOptions.describe())
                         .import_authors(methods::rename_import(
                             {{"enc.transformer.encoder.query_prompt_embeddings", "query_prompt_embeddings"}}, true))
                         .make<Vqt>());

}  // namespace
}  // namespace petl
