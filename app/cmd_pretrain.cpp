// `petl pretrain` — builds the embedded backbone: a small ViT (petl_vit_mini_p8_32 by default)
// trained from scratch with one classification head per upstream attribute on upstream data that
// is disjoint from every downstream split of the embedded suite (datasets/suite_mini.h:
// Fashion-MNIST training images the suite never uses, procedural scenes from seeds it never
// uses). Only the backbone is saved (timm names, safetensors, config + command in metadata).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/clock.h"
#include "core/progress.h"
#include "core/system.h"
#include "core/threads.h"
#include "datasets/image.h"
#include "datasets/suite_mini.h"
#include "harness/train/job.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "models/checkpoint.h"

namespace petl::cli {
using json = nlohmann::json;

namespace {
struct GenData {
  std::string name;
  std::vector<data::UpstreamAttribute> attrs;
  torch::Tensor images, labels;  // (N,3,S,S), (N, A)
  std::vector<torch::nn::Linear> heads;
};

GenData make_data(const std::string& gen, int64_t n, int size, int threads, bool progress) {
  GenData g;
  g.name = gen;
  g.attrs = data::upstream_attributes(gen);
  const int64_t A = g.attrs.size();
  g.images = torch::empty({n, 3, size, size});
  g.labels = torch::empty({n, A}, torch::kInt64);
  float* px = g.images.data_ptr<float>();
  int64_t* lb = g.labels.data_ptr<int64_t>();
  ProgressBar bar("upstream " + gen, n, progress);
  std::atomic<int64_t> next{0};
  auto work = [&]() {
    for (int64_t i; (i = next++) < n;) {
      auto s = data::upstream_sample(gen, uint64_t(i));
      auto img =
          (s.image.width == size && s.image.height == size) ? s.image : data::resize_bicubic_pil(s.image, size, size);
      data::to_normalised_chw(img, data::Normalisation::imagenet, px + i * 3 * size * size);
      for (int64_t a = 0; a < A; ++a) lb[i * A + a] = s.attributes.at(g.attrs[a].name);
      bar.add(1);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  bar.finish();
  return g;
}
}  // namespace

int cmd_pretrain(const Args& args) {
  std::string out, arch = "petl_vit_mini_p8_32";
  int64_t per_gen = 12000, holdout = 1000;
  int epochs = 10, batch = 128, threads = 0, seed = 0, warmup = 1;
  double lr = 1e-3, wd = 0.05;
  po::options_description d("petl pretrain options");
  d.add_options()("out", po::value(&out)->required(), "output safetensors file (timm names)")(
      "arch", po::value(&arch)->default_value(arch), "architecture to pretrain")(
      "samples-per-generator", po::value(&per_gen)->default_value(per_gen),
      "upstream training images per generator (fashion, sprites, objects)")(
      "holdout", po::value(&holdout)->default_value(holdout),
      "further upstream images per generator for the printed accuracies")(
      "epochs", po::value(&epochs)->default_value(epochs), "passes over the upstream data")(
      "batch-size", po::value(&batch)->default_value(batch), "batch size (each batch from one generator, round-robin)")(
      "lr", po::value(&lr)->default_value(lr), "AdamW peak learning rate (warmup then per-iteration cosine to 0)")(
      "weight-decay", po::value(&wd)->default_value(wd), "AdamW weight decay")(
      "warmup-epochs", po::value(&warmup)->default_value(warmup), "linear warmup epochs")(
      "seed", po::value(&seed)->default_value(seed), "initialisation and shuffling seed")(
      "threads", po::value(&threads)->default_value(0),
      "threads (0 = OMP_NUM_THREADS when set, else the cores free now)")("no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl pretrain --out FILE [--samples-per-generator N] [--epochs E]\n"
                  "Pretrains the embedded backbone on upstream data disjoint from the embedded suite's splits."))
    return 0;
  const bool progress = !vm.count("no-progress");
  const Recipe recipe = upstream_recipe(lr, wd, warmup, epochs, batch, seed);
  const int nt = threads::choose_threads(threads).threads;
  at::set_num_threads(nt);
  torch::manual_seed(seed);
  VitConfig cfg = vit_config_by_name(arch);
  VisionTransformer vit(cfg);
  vit->init_weights(seed);
  std::vector<GenData> gens;
  NamedTensors params = vit->named_parameters().pairs();
  for (auto& g : data::upstream_generators()) {
    gens.push_back(make_data(g, per_gen + holdout, cfg.img_size, nt, progress));
    for (auto& a : gens.back().attrs) {
      torch::nn::Linear h(cfg.embed_dim, a.num_classes);
      gens.back().heads.push_back(h);
      for (auto& p : h->named_parameters().pairs()) params.push_back({g + "." + a.name + "." + p.first, p.second});
    }
  }
  auto opt = make_optimizer(params, recipe);
  const int64_t per_epoch = (per_gen / batch) * int64_t(gens.size());
  const auto t0 = SteadyClock::now();
  for (int e = 0; e < epochs; ++e) {
    vit->train(true);
    std::vector<torch::Tensor> perms;
    for (auto& g : gens) perms.push_back(torch::randperm(per_gen, torch::kInt64));
    ProgressBar bar("pretrain epoch " + std::to_string(e + 1) + "/" + std::to_string(epochs), per_epoch, progress);
    double loss_sum = 0;
    for (int64_t b = 0; b < per_gen / batch; ++b) {
      for (size_t gi = 0; gi < gens.size(); ++gi) {
        auto& g = gens[gi];
        const int64_t iter = b * int64_t(gens.size()) + int64_t(gi);
        set_learning_rate(*opt, learning_rate(recipe, e, int(iter), int(per_epoch)));
        auto idx = perms[gi].narrow(0, b * batch, batch);
        auto feats = vit->forward_cls(g.images.index_select(0, idx));
        auto y = g.labels.index_select(0, idx);
        torch::Tensor loss = torch::zeros({});
        for (size_t a = 0; a < g.heads.size(); ++a)
          loss = loss + torch::nn::functional::cross_entropy(g.heads[a](feats), y.select(1, a));
        loss = loss / double(g.heads.size());
        opt->zero_grad();
        loss.backward();
        opt->step();
        loss_sum += loss.item<double>();
        bar.add(1);
      }
    }
    bar.finish();
    std::fprintf(stderr, "[pretrain] epoch %d: mean loss %.4f (%.0f s)\n", e + 1, loss_sum / per_epoch,
                 seconds_since(t0));
  }
  // Held-out upstream accuracies, per attribute.
  json acc;
  {
    torch::NoGradGuard ng;
    vit->train(false);
    for (auto& g : gens) {
      auto feats = vit->forward_cls(g.images.narrow(0, per_gen, holdout));
      auto y = g.labels.narrow(0, per_gen, holdout);
      for (size_t a = 0; a < g.heads.size(); ++a) {
        double v = 100.0 * g.heads[a](feats).argmax(1).eq(y.select(1, a)).to(torch::kFloat64).mean().item<double>();
        acc[g.name + "." + g.attrs[a].name] = v;
        std::printf("held-out upstream %s.%s: %.2f%% (chance %.2f%%)\n", g.name.c_str(), g.attrs[a].name.c_str(), v,
                    100.0 / g.attrs[a].num_classes);
      }
    }
  }
  std::ostringstream cmd;
  cmd << "petl pretrain";
  for (auto& a : args) cmd << " " << a;
  save_backbone(vit, out,
                {{"petl_pretrain_command", cmd.str()},
                 {"petl_pretrain_upstream",
                  "fashion (Fashion-MNIST train images unused by the mini suite), sprites, objects "
                  "(procedural scenes from seeds disjoint from the suite)"},
                 {"petl_pretrain_heldout_accuracy", acc.dump()}});
  std::printf("embedded backbone written to %s (%lld parameters)\n", out.c_str(), (long long)vit->num_parameters());
  return 0;
}

}  // namespace petl::cli
