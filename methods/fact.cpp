// fact_tt / fact_tk — FacT: Factor-Tuning (Jie & Deng, AAAI 2023), following JieShibo/PETL-ViT
// FacT/fact_tt.py and FacT/fact_tk.py. Every weight update of the ViT is factorised through one
// shared U: D→r (FacTu, no bias, PyTorch default init) and V: r→D (FacTv, no bias, zero init), with dropout 0.1
// on the r-dimensional core output and scale s:
//   attention (u = LN1 x):  Δq = s·V(Drop(Σ_q(U u))), same for k and v, added to the qkv output;
//                           Δproj = s·V(Drop(Σ_o(U a))), a = the proj input (attention output);
//   MLP: Δfc1 = s·V(Drop(Σ_fc1(U h)) reshaped (4, r)) reshaped 4D  (h = LN2 x);
//        Δfc2 = s·V(Drop(Σ_fc2(U(g reshaped (4, D)) reshaped 4r)))  (g = GELU(fc1) output).
// TT: the cores Σ are per-block nn.Linear without bias (q,k,v,o: r×r; fc1: r→4r; fc2: 4r→r),
//     PyTorch default init → 1536r + 144r² at ViT-B/16 (12 blocks).
//     Names: FacTu, FacTv, blocks.{i}.attn.{q,k,v,proj}_FacTs, blocks.{i}.mlp.{fc1,fc2}_FacTs (weight).
// TK: one core tensor FacTc (r, r, r) and factor matrix FacTp (r, 12L), both xavier_uniform; block b
//     uses C = FacTc @ FacTp[:, 12b : 12b+12] (r, r, 12): slices 0..3 are the q, k, v, proj cores
//     (applied as (U u) @ C_q), slices 4..7 reshaped (r, 4r) the fc1 core, 8..11 reshaped (r, 4r)
//     and transposed the fc2 core → 1536r + 144r + r³ at ViT-B/16.
// Head: timm 0.4.12 reset_classifier (nn.Linear default init). Recipe petl_vit (no weight-decay filter).
// Per-task rank (dim) and scale (s): config/baselines/fact_{tt,tk}_task_configs.csv (PETL-ViT's
// FacT/configs); tasks not listed use the median reference setting (TT: rank 8, scale 1; TK: rank 32,
// scale 10) unless --set fact_dim / fact_scale. Settings: see kFacT*Options below.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

struct FacTOptions {
  int fact_dim{};
  double fact_scale{}, fact_dropout{};
};

// TT and TK differ only in the median defaults of rank and scale.
methods::OptionTable<FacTOptions> fact_options(int rank0, double scale0) {
  return methods::OptionTable<FacTOptions>()
      .add("fact_dim", &FacTOptions::fact_dim, rank0, methods::Range::at_least(1),
           "rank r of U: D→r, V: r→D (per task: config/baselines/fact_*_task_configs.csv)")
      .add("fact_scale", &FacTOptions::fact_scale, scale0, methods::Range::any(), "scale s of every update (per task)")
      .add("fact_dropout", &FacTOptions::fact_dropout, 0.1, methods::Range::probability(),
           "dropout on the r-dimensional core output");
}
const methods::OptionTable<FacTOptions> kFacTTTOptions = fact_options(8, 1.0);
const methods::OptionTable<FacTOptions> kFacTTKOptions = fact_options(32, 10.0);

using torch::Tensor;
using torch::nn::Linear;
using torch::nn::LinearOptions;

Linear no_bias(int in, int out) { return Linear(LinearOptions(in, out).bias(false)); }

class FacTBase : public methods::HookedMethod {
 public:
  FacTBase(const MethodContext& ctx, const std::string& table, const methods::OptionTable<FacTOptions>& options)
      : HookedMethod(ctx, methods::HeadInit::torch_default), options_(options) {
    const auto& cfg = backbone_->config();
    auto row = methods::task_row(table, ctx.task, &source_);
    if (source_.empty()) source_ = "default (task not in " + table + ")";
    FacTOptions base = options.defaults();
    if (row.count("rank")) base.fact_dim = std::stoi(row["rank"]);
    if (row.count("scale")) base.fact_scale = std::stod(row["scale"]);
    const auto& st = ctx.settings;
    if (st.has("fact_dim") || st.has("fact_scale")) source_ += " + --set overrides";
    o_ = options.parse(st, base);
    r_ = o_.fact_dim;
    s_ = o_.fact_scale;
    drop_ = o_.fact_dropout;
    D_ = cfg.embed_dim;
    PETL_CHECK(cfg.mlp_hidden() == 4 * D_, "FacT needs an MLP ratio of 4 (hidden ", cfg.mlp_hidden(), ", width ", D_,
               ")");
    U = register_module("FacTu", no_bias(D_, r_));
    V = register_module("FacTv", no_bias(r_, D_));
    torch::NoGradGuard ng;
    V->weight.zero_();
  }
  std::map<std::string, std::string> effective_settings() const override {
    auto m = options_.effective(o_);
    m["_task_config_source"] = source_;
    return m;
  }
  Tensor dp(const Tensor& t) { return torch::dropout(t, drop_, is_training()); }

  const methods::OptionTable<FacTOptions>& options_;
  FacTOptions o_;
  int r_ = 8, D_ = 768;          // o_.fact_dim and the width, short for the factor shapes below
  double s_ = 1.0, drop_ = 0.1;  // o_.fact_scale, o_.fact_dropout
  std::string source_;
  Linear U{nullptr}, V{nullptr};
};

class FacTTT : public FacTBase {
 public:
  explicit FacTTT(const MethodContext& ctx) : FacTBase(ctx, "baselines/fact_tt_task_configs.csv", kFacTTTOptions) {
    for (int i = 0; i < backbone_->depth(); ++i) {
      const std::string b = "blocks." + std::to_string(i);
      Per p;
      p.q = methods::register_under(*this, b + ".attn", "q_FacTs", no_bias(r_, r_));
      p.k = methods::register_under(*this, b + ".attn", "k_FacTs", no_bias(r_, r_));
      p.v = methods::register_under(*this, b + ".attn", "v_FacTs", no_bias(r_, r_));
      p.o = methods::register_under(*this, b + ".attn", "proj_FacTs", no_bias(r_, r_));
      p.fc1 = methods::register_under(*this, b + ".mlp", "fc1_FacTs", no_bias(r_, 4 * r_));
      p.fc2 = methods::register_under(*this, b + ".mlp", "fc2_FacTs", no_bias(4 * r_, r_));
      per_.push_back(p);
    }
  }
  Tensor qkv_delta(int l, const Tensor& u) override {
    auto uu = U(u);
    auto& p = per_[l];
    return torch::cat({V(dp(p.q(uu))), V(dp(p.k(uu))), V(dp(p.v(uu)))}, -1) * s_;
  }
  Tensor proj_delta(int l, const Tensor& a) override { return V(dp(per_[l].o(U(a)))) * s_; }
  Tensor fc1_delta(int l, const Tensor& h) override {
    const int64_t B = h.size(0), N = h.size(1);
    return V(dp(per_[l].fc1(U(h))).reshape({B, N, 4, r_})).reshape({B, N, 4 * D_}) * s_;
  }
  Tensor fc2_delta(int l, const Tensor& g) override {
    const int64_t B = g.size(0), N = g.size(1);
    return V(dp(per_[l].fc2(U(g.reshape({B, N, 4, D_})).reshape({B, N, 4 * r_})))) * s_;
  }

 private:
  struct Per {
    Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr}, fc1{nullptr}, fc2{nullptr};
  };
  std::vector<Per> per_;
};

class FacTTK : public FacTBase {
 public:
  explicit FacTTK(const MethodContext& ctx) : FacTBase(ctx, "baselines/fact_tk_task_configs.csv", kFacTTKOptions) {
    const int L = backbone_->depth();
    P = register_parameter("FacTp", torch::empty({r_, 12 * L}));
    C = register_parameter("FacTc", torch::empty({r_, r_, r_}));
    methods::xavier_uniform(P);
    methods::xavier_uniform(C);
  }
  // (r, r, n) cores of columns [idx, idx + n).
  Tensor cores(int idx, int n) { return torch::matmul(C, P.narrow(1, idx, n)); }
  Tensor qkv_delta(int l, const Tensor& u) override {
    auto c = cores(12 * l, 3);
    auto uu = U(u);
    auto one = [&](int j) { return V(dp(torch::matmul(uu, c.select(2, j)))); };
    return torch::cat({one(0), one(1), one(2)}, -1) * s_;
  }
  Tensor proj_delta(int l, const Tensor& a) override {
    auto c = cores(12 * l + 3, 1).select(2, 0);
    return V(dp(torch::matmul(U(a), c))) * s_;
  }
  Tensor fc1_delta(int l, const Tensor& h) override {
    const int64_t B = h.size(0), N = h.size(1);
    auto c = cores(12 * l + 4, 4).reshape({r_, 4 * r_});
    return V(dp(torch::matmul(U(h), c)).reshape({B, N, 4, r_})).reshape({B, N, 4 * D_}) * s_;
  }
  Tensor fc2_delta(int l, const Tensor& g) override {
    const int64_t B = g.size(0), N = g.size(1);
    auto c = cores(12 * l + 8, 4).reshape({r_, 4 * r_});
    auto ug = U(g.reshape({B, N, 4, D_})).reshape({B, N, 4 * r_});
    return V(dp(torch::matmul(ug, c.t()))) * s_;
  }
  Tensor P, C;
};

PETL_REGISTER_METHOD(MethodSpec("fact_tk")
                         .describe("FacT-TK: Tucker factorised weight updates")
                         .recipe("petl_vit")
                         .options(kFacTTKOptions.describe())
                         .make<FacTTK>());
PETL_REGISTER_METHOD(MethodSpec("fact_tt")
                         .describe("FacT-TT: tensor-train factorised weight updates")
                         .recipe("petl_vit")
                         .options(kFacTTTOptions.describe())
                         .make<FacTTT>());

}  // namespace
}  // namespace petl
