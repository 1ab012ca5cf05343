// Training recipes (config/recipes.yaml) and their learning-rate schedules, evaluated exactly as
// the reference training loops do (see the comments in recipes.yaml).
#pragma once
#include <map>
#include <string>

#include "core/settings.h"

namespace petl {

struct Recipe {
  std::string name, source;
  std::string optimizer = "adamw";
  double lr = 1e-3, weight_decay = 1e-2, min_lr = 1e-6, warmup_lr_init = 0.0;
  bool no_decay_1d = false;  // no weight decay on 1-D tensors (biases, norms, scales)
  std::string schedule = "iter_warmup_cosine";
  int warmup_epochs = 10, epochs = 50, batch_size = 64;
  // timm train.py's cooldown: epochs trained at min_lr after the cosine cycle of `epochs`
  // (timm's default --cooldown-epochs 10). The loop runs epochs + cooldown_epochs epochs.
  int cooldown_epochs = 0;
  int total_epochs() const { return epochs + cooldown_epochs; }
  bool drop_last = false;
  double drop_path_rate = 0.1;  // backbone stochastic depth (linear ramp)
  int eval_every = 10;          // test accuracy after every eval_every-th epoch (and the last)
  int eval_batch_size = 512;
  int seed = 42;
  std::string train_split = "train800val200", test_split = "test";
  std::string normalisation = "imagenet";
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;

  std::map<std::string, std::string> to_map() const;  // every field, for records and --dry-run
};

// Loads recipe `name`; when `method` is given and the recipe has `method_overrides: {method: {...}}`,
// those keys are applied on top (e.g. a per-method learning rate). Errors name file + key.
Recipe load_recipe(const std::string& name, const std::string& file = "", const std::string& method = "");
// Applies the recipe keys present in `s` (lr, weight_decay, epochs, ...) and marks them used.
void apply_overrides(Recipe& r, const Settings& s);

// The recipe of `petl pretrain` (the embedded backbone's upstream training): AdamW with weight
// decay `weight_decay` on every tensor, a linear warmup over `warmup_epochs` from 0, then a
// per-iteration cosine from `lr` to 0 at the end of `epochs`.
Recipe upstream_recipe(double lr, double weight_decay, int warmup_epochs, int epochs, int batch_size, int seed);

// Learning rate for iteration `iter` (0-based) of epoch `epoch` (0-based).
double learning_rate(const Recipe& r, int epoch, int iter, int iters_per_epoch);
// timm 0.4.12 CosineLRScheduler._get_lr(t) with cycle_limit 1, warmup_prefix False.
double timm_cosine_lr(const Recipe& r, double t);

}  // namespace petl
