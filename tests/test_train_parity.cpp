// Training-step parity with an independent reference loop: for every method, three optimizer
// steps of petl's own Trainer with the method's recipe — AdamW with its betas/eps and weight decay,
// no decay on 1-D tensors where the recipe says so, its learning-rate schedule with any per-epoch
// step lag (one batch per epoch), the third step in cooldown where the recipe has one; dropout
// and drop path off — against tests/py/ref_train_steps.py, which rebuilds each forward from the
// reference formulas (ref_baselines.py, ref_models.py), computes the learning rates from the recipe
// with the reference codes' schedule formulas (it is given the recipe, never petl's rates) and
// trains with python3-torch's AdamW, all in float64. Losses and the updated tensors must agree to
// 1e-9 relative; the elements left out as round-off are exactly those whose gradient is
// mathematically zero (see the script).
#include <cstdlib>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/train/data_parallel.h"
#include "harness/train/feature_source.h"
#include "harness/train/recipe.h"
#include "harness/train/trainer.h"
#include "models/checkpoint.h"
#include "test_util.h"

using namespace petl;

TEST(TrainParity, ThreeStepsOfEveryMethodMatchAReferenceLoop) {
  const std::vector<std::string> methods = {
      "linear", "full",     "synqt",   "bitfit",  "vpt_shallow", "vpt_deep", "adapter", "adaptformer", "lora",
      "ssf",    "convpass", "fact_tt", "fact_tk", "dtl",         "dtl_plus", "vqt",     "lst",         "mae_linprobe"};
  auto dir = test::scratch_dir("train_parity");
  auto cfg = test::tiny_config(32, 8, 48, 4, 4);
  cfg.drop_path_rate = 0.0;
  for (const auto& name : methods) {
    VisionTransformer vit(cfg);
    vit->init_weights(11);
    vit->set_trainable(false);
    // Dropout off: every double option whose key names a dropout rate.
    std::vector<std::string> sets;
    for (auto& o : MethodRegistry::instance().get(name).options) {
      if (o.type == OptionType::kDouble && o.key.find("drop") != std::string::npos) sets.push_back(o.key + "=0");
      if (o.type == OptionType::kBool && o.key.find("drop_path") != std::string::npos) sets.push_back(o.key + "=off");
    }
    torch::manual_seed(5);
    auto m = test::make_method(name, vit, 5, "test_task", Settings::parse(sets), 0.0);
    Recipe r = load_recipe(MethodRegistry::instance().get(name).default_recipe, "", name);
    r.batch_size = 12;  // one batch per epoch: three epochs = three optimizer steps
    // SSF's and DTL's timm loops add cooldown epochs at min_lr: the third step is one of them.
    r.epochs = r.cooldown_epochs > 0 ? 2 : 3;
    r.cooldown_epochs = r.cooldown_epochs > 0 ? 1 : 0;
    r.warmup_epochs = 1;
    r.warmup_lr_init = r.lr * 0.1;  // a non-zero first step
    // In float64, so that elements whose gradient is mathematically zero (round-off in either
    // implementation, which Adam would blow up to a ±lr step) are told apart from real ones.
    vit->to(torch::kFloat64);
    m->to(torch::kFloat64);
    torch::manual_seed(7);
    SplitTensors st;
    st.images = torch::randn({12, 3, 32, 32}, torch::kFloat64);
    st.labels = torch::randint(0, 5, {12}, torch::kInt64);
    LiveImages train(st);
    std::vector<std::pair<std::string, torch::Tensor>> all;
    for (auto& item : vit->named_parameters()) all.emplace_back("backbone." + item.key(), item.value().clone());
    auto backbone_named = vit->named_parameters();
    std::vector<std::string> trainable_names;
    for (auto& [k, v] : m->checkpoint_tensors()) {
      trainable_names.push_back(k);
      if (!backbone_named.find(k)) all.emplace_back("method." + k, v.clone());
    }
    DataParallel dp(1, torch::kCPU);
    Trainer trainer(*m, r, dp, torch::kCPU, name, false);
    nlohmann::json losses = nlohmann::json::array();
    for (int e = 0; e < 3; ++e) losses.push_back(trainer.train_one_epoch(train, e).mean_loss);
    for (auto& [k, v] : m->checkpoint_tensors()) all.emplace_back("final." + k, v.clone());
    all.emplace_back("input", st.images);
    all.emplace_back("labels", st.labels.to(torch::kFloat64));
    nlohmann::json meta_settings = m->effective_settings();
    save_named_tensors(dir + "/" + name + ".safetensors", all,
                       {{"method", name},
                        {"heads", std::to_string(cfg.num_heads)},
                        {"depth", std::to_string(cfg.depth)},
                        {"patch", std::to_string(cfg.patch_size)},
                        {"settings", meta_settings.dump()},
                        {"trainable", nlohmann::json(trainable_names).dump()},
                        {"losses", losses.dump()},
                        // The recipe, not petl's learning rates: the script computes those itself.
                        {"recipe", nlohmann::json(r.to_map()).dump()},
                        {"weight_decay", std::to_string(r.weight_decay)},
                        {"no_decay_1d", r.no_decay_1d ? "1" : "0"},
                        {"betas", nlohmann::json({r.adam_beta1, r.adam_beta2}).dump()},
                        {"eps", nlohmann::json(r.adam_eps).dump()}});
  }
  std::string cmd = std::string(PETL_PYTHON) + " " + PETL_TEST_DIR + "/py/ref_train_steps.py --dir " + dir;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}
