#include "harness/train/recipe.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/paths.h"
#include "core/text.h"

namespace petl {
namespace fs = std::filesystem;

std::map<std::string, std::string> Recipe::to_map() const {
  auto d = format_double;  // exact: distinct values never share a job key
  return {{"recipe", name},
          {"optimizer", optimizer},
          {"lr", d(lr)},
          {"weight_decay", d(weight_decay)},
          {"min_lr", d(min_lr)},
          {"warmup_lr_init", d(warmup_lr_init)},
          {"no_decay_1d", no_decay_1d ? "true" : "false"},
          {"schedule", schedule},
          {"warmup_epochs", std::to_string(warmup_epochs)},
          {"epochs", std::to_string(epochs)},
          {"cooldown_epochs", std::to_string(cooldown_epochs)},
          {"batch_size", std::to_string(batch_size)},
          {"drop_last", drop_last ? "true" : "false"},
          {"drop_path_rate", d(drop_path_rate)},
          {"eval_every", std::to_string(eval_every)},
          {"eval_batch_size", std::to_string(eval_batch_size)},
          {"seed", std::to_string(seed)},
          {"train_split", train_split},
          {"test_split", test_split},
          {"normalisation", normalisation},
          {"adam_betas", d(adam_beta1) + "," + d(adam_beta2)},
          {"adam_eps", d(adam_eps)}};
}

Recipe load_recipe(const std::string& name, const std::string& file_in, const std::string& method) {
  std::string file = file_in.empty() ? config_dir() + "/recipes.yaml" : file_in;
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    PETL_FAIL("recipes file ", file, ": ", e.what());
  }
  auto node = root[name];
  if (!node) {
    std::string known;
    for (auto it : root) known += " " + it.first.as<std::string>();
    PETL_FAIL(file, ": no recipe '", name, "'; known:", known);
  }
  Recipe r;
  r.name = name;
  Settings s;
  YAML::Node overrides;
  for (auto it : node) {
    auto key = it.first.as<std::string>();
    if (key == "method_overrides") {
      overrides = it.second;
      continue;
    }
    PETL_CHECK(it.second.IsScalar(), file, ": recipe '", name, "': key '", key, "' must be a scalar");
    s.set(key, it.second.as<std::string>());
  }
  if (!method.empty() && overrides && overrides[method]) {
    for (auto it : overrides[method]) s.set(it.first.as<std::string>(), it.second.as<std::string>());
    r.name = name + "+" + method;
  }
  r.source = s.get_string("source", "");
  try {
    apply_overrides(r, s);
  } catch (const Error& e) {
    PETL_FAIL(file, ": recipe '", name, "': ", e.what());
  }
  auto unused = s.unused();
  if (!unused.empty()) PETL_FAIL(file, ": recipe '", name, "': unknown key '", unused[0], "'");
  return r;
}

void apply_overrides(Recipe& r, const Settings& s) {
  r.optimizer = s.get_string("optimizer", r.optimizer);
  PETL_CHECK(r.optimizer == "adamw", "optimizer '", r.optimizer, "' is not supported (adamw)");
  r.lr = s.get_double("lr", r.lr);
  r.weight_decay = s.get_double("weight_decay", r.weight_decay);
  r.min_lr = s.get_double("min_lr", r.min_lr);
  r.warmup_lr_init = s.get_double("warmup_lr_init", r.warmup_lr_init);
  r.no_decay_1d = s.get_bool("no_decay_1d", r.no_decay_1d);
  r.schedule = s.get_string("schedule", r.schedule);
  PETL_CHECK(
      r.schedule == "iter_warmup_cosine" || r.schedule == "timm_epoch_cosine" || r.schedule == "timm_train_cosine",
      "schedule '", r.schedule, "': expected iter_warmup_cosine, timm_epoch_cosine or timm_train_cosine");
  r.warmup_epochs = s.get_int("warmup_epochs", r.warmup_epochs);
  r.epochs = s.get_int("epochs", r.epochs);
  r.cooldown_epochs = s.get_int("cooldown_epochs", r.cooldown_epochs);
  PETL_CHECK(r.cooldown_epochs >= 0, "cooldown_epochs must be >= 0, got ", r.cooldown_epochs);
  r.batch_size = s.get_int("batch_size", r.batch_size);
  r.drop_last = s.get_bool("drop_last", r.drop_last);
  r.drop_path_rate = s.get_double("drop_path_rate", r.drop_path_rate);
  r.eval_every = s.get_int("eval_every", r.eval_every);
  r.eval_batch_size = s.get_int("eval_batch_size", r.eval_batch_size);
  r.seed = s.get_int("seed", r.seed);
  r.train_split = s.get_string("train_split", r.train_split);
  r.test_split = s.get_string("test_split", r.test_split);
  r.normalisation = s.get_string("normalisation", r.normalisation);
  r.adam_eps = s.get_double("adam_eps", r.adam_eps);
  auto at_least = [](double v, double lo, bool open, const char* key) {
    PETL_CHECK(std::isfinite(v) && (open ? v > lo : v >= lo), "setting '", key, "': expected a number ",
               open ? "> " : ">= ", lo, ", got ", v);
  };
  at_least(r.lr, 0, true, "lr");
  at_least(r.weight_decay, 0, false, "weight_decay");
  at_least(r.min_lr, 0, false, "min_lr");
  at_least(r.warmup_lr_init, 0, false, "warmup_lr_init");
  at_least(r.adam_eps, 0, true, "adam_eps");
  PETL_CHECK(r.drop_path_rate >= 0 && r.drop_path_rate < 1,
             "setting 'drop_path_rate': expected a number in [0, 1), got ", r.drop_path_rate);
  PETL_CHECK(r.eval_batch_size > 0, "eval_batch_size must be positive, got ", r.eval_batch_size);
  PETL_CHECK(r.seed >= 0, "seed must be >= 0, got ", r.seed);
  PETL_CHECK(r.epochs > 0, "epochs must be positive, got ", r.epochs);
  PETL_CHECK(r.batch_size > 0, "batch_size must be positive, got ", r.batch_size);
  PETL_CHECK(r.eval_every > 0, "eval_every must be positive, got ", r.eval_every);
  PETL_CHECK(r.warmup_epochs >= 0 && r.warmup_epochs <= r.epochs, "warmup_epochs ", r.warmup_epochs,
             " must lie in [0, epochs=", r.epochs, "]");
}

Recipe upstream_recipe(double lr, double weight_decay, int warmup_epochs, int epochs, int batch_size, int seed) {
  Recipe r;
  r.name = "upstream";
  r.source = "petl pretrain";
  r.lr = lr;
  r.weight_decay = weight_decay;
  r.min_lr = 0;
  r.schedule = "iter_warmup_cosine";
  r.warmup_epochs = warmup_epochs;
  r.epochs = epochs;
  r.batch_size = batch_size;
  r.seed = seed;
  Settings none;
  apply_overrides(r, none);  // the recipe checks (lr > 0, warmup within the epochs, ...)
  return r;
}

double timm_cosine_lr(const Recipe& r, double t) {
  if (t < r.warmup_epochs) {
    double step = (r.lr - r.warmup_lr_init) / r.warmup_epochs;
    return r.warmup_lr_init + t * step;
  }
  if (t >= r.epochs) return r.min_lr;  // past the single cycle
  return r.min_lr + 0.5 * (r.lr - r.min_lr) * (1.0 + std::cos(M_PI * t / r.epochs));
}

double learning_rate(const Recipe& r, int epoch, int iter, int iters_per_epoch) {
  if (r.schedule == "iter_warmup_cosine") {
    double t = epoch + double(iter) / iters_per_epoch;
    if (t < r.warmup_epochs) return r.lr * t / r.warmup_epochs;
    double span = r.epochs - r.warmup_epochs;
    return r.min_lr + (r.lr - r.min_lr) * 0.5 * (1.0 + std::cos(M_PI * (t - r.warmup_epochs) / span));
  }
  // timm_train_cosine: timm train.py calls scheduler.step(epoch + 1) after each epoch, so epoch e
  // trains with f(e); the cooldown epochs after the cycle run at min_lr.
  if (r.schedule == "timm_train_cosine") return timm_cosine_lr(r, epoch);
  // timm_epoch_cosine: scheduler.step(ep) runs after epoch ep, the initial lr is f(0).
  return timm_cosine_lr(r, std::max(epoch - 1, 0));
}

}  // namespace petl
