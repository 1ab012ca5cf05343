// Registry-parametrised checks (as timm's test_models.py): every registered method gets them by
// being registered. Each builds on a tiny ViT under its registered name; gives (B, C) logits,
// trains a few steps with a lower loss, and its checkpoint (reference names) reloads into a fresh
// instance with identical logits; its effective settings, fed back as --set values, rebuild the
// same settings; every option rejects an out-of-range value naming the key; double options keep
// their exact value in the effective settings (1e-7 is not 0: job keys); a method the feature cache
// can serve gives from the backbone's cached features the logits of its live forward.
#include <cstdlib>
#include <gtest/gtest.h>
#include <set>

#include "core/error.h"
#include "core/text.h"
#include "datasets/vtab.h"
#include "harness/train/feature_cache.h"
#include "harness/train/job.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "models/checkpoint.h"
#include "test_util.h"

using namespace petl;

namespace {

// A method on a fresh tiny backbone (seeded), for the task "test_task" (in no per-task config).
std::shared_ptr<Method> build_tiny(const std::string& name, const Settings& s = {}, double drop_path = 0.1) {
  VisionTransformer vit(test::tiny_config());
  vit->init_weights(1);
  vit->set_trainable(false);
  torch::manual_seed(0);
  return test::make_method(name, vit, 4, "test_task", s, drop_path);
}

Settings one(const std::string& key, const std::string& value) {
  Settings s;
  s.set(key, value);
  return s;
}

const std::vector<OptionInfo>& options_of(const std::string& name) {
  return MethodRegistry::instance().get(name).options;
}

// Effective settings without the provenance entries ("_task_config_source").
std::map<std::string, std::string> without_sources(std::map<std::string, std::string> m) {
  for (auto it = m.begin(); it != m.end();) it = !it->first.empty() && it->first[0] == '_' ? m.erase(it) : ++it;
  return m;
}

// Values an option must refuse: below / above its range for numbers, words that are no number or
// no bool otherwise.
std::vector<std::string> invalid_values(const OptionInfo& o) {
  std::vector<std::string> out;
  if (o.type == OptionType::kBool) return {"maybe"};
  if (o.type == OptionType::kChoice) return {"not_a_choice"};
  if (o.type != OptionType::kInt && o.type != OptionType::kDouble) return {};
  const double step = o.type == OptionType::kInt ? 1.0 : 0.5;
  auto text = [&](double v) { return o.type == OptionType::kInt ? std::to_string(int64_t(v)) : format_double(v); };
  if (o.range.has_min()) out.push_back(text(o.range.min_open ? o.range.min : o.range.min - step));
  if (o.range.has_max()) out.push_back(text(o.range.max_open ? o.range.max : o.range.max + step));
  out.push_back("not_a_number");
  return out;
}

}  // namespace

TEST(Registry, ExpectedMethodsRegistered) {
  const std::vector<std::string> expected = {"linear",  "full",        "synqt",    "bitfit", "vpt_shallow", "vpt_deep",
                                             "adapter", "adaptformer", "lora",     "ssf",    "convpass",    "fact_tt",
                                             "fact_tk", "dtl",         "dtl_plus", "vqt",    "lst"};
  for (auto& n : expected) EXPECT_TRUE(MethodRegistry::instance().has(n)) << n;
  EXPECT_GE(MethodRegistry::instance().names().size(), expected.size());
  EXPECT_THROW(MethodRegistry::instance().get("no_such_method"), petl::Error);
}

TEST(Registry, FeatureCacheServesTheQueryMethods) {
  // The registry-driven CachedEqualsLive test below must not pass by skipping everything.
  for (auto n : {"linear", "vqt", "synqt"}) EXPECT_TRUE(cache_taps_for(build_tiny(n, {}, 0.0)->needs()).any()) << n;
  auto lst = probe_needs("lst");
  EXPECT_TRUE(lst.block_tokens);
  EXPECT_FALSE(cache_taps_for(lst).any());
  EXPECT_FALSE(cache_taps_for(probe_needs("synqt", Settings(), 0.1)).any());  // stochastic backbone path
  EXPECT_TRUE(cache_taps_for(probe_needs("synqt", one("backbone_drop_path", "off"), 0.1)).any());
}

class EveryMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryMethod, IsBuiltUnderItsRegisteredName) {
  const auto name = GetParam();
  auto m = build_tiny(name);
  EXPECT_EQ(m->name(), name);
  const auto needs = m->needs(), probed = probe_needs(name, {}, 0.1);
  EXPECT_EQ(probed.grad_through_backbone, needs.grad_through_backbone) << name;
  EXPECT_EQ(probed.backbone_stochastic, needs.backbone_stochastic) << name;
  EXPECT_EQ(probed.memory_class, needs.memory_class) << name;
}

TEST_P(EveryMethod, EffectiveSettingsRoundTrip) {
  const auto name = GetParam();
  const auto first = build_tiny(name)->effective_settings();
  Settings again;
  for (auto& o : options_of(name)) {
    ASSERT_TRUE(first.count(o.key)) << name << ": option " << o.key << " missing from the effective settings";
    again.set(o.key, first.at(o.key));
  }
  auto m = build_tiny(name, again);
  EXPECT_TRUE(m->unused_settings().empty()) << name;
  EXPECT_EQ(without_sources(m->effective_settings()), without_sources(first)) << name;
}

TEST_P(EveryMethod, OptionsRejectInvalidValuesNamingTheKey) {
  const auto name = GetParam();
  for (auto& o : options_of(name)) {
    for (auto& bad : invalid_values(o)) {
      try {
        build_tiny(name, one(o.key, bad));
        ADD_FAILURE() << name << ": " << o.key << "=" << bad << " was accepted";
      } catch (const petl::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("'" + o.key + "'"), std::string::npos) << msg;
        EXPECT_NE(msg.find(bad), std::string::npos) << msg;
        const bool number = o.type == OptionType::kInt || o.type == OptionType::kDouble;
        if (bad != "not_a_number" && number) EXPECT_NE(msg.find(o.range.str()), std::string::npos) << msg;
        for (auto& c : o.choices) EXPECT_NE(msg.find(c), std::string::npos) << msg;  // a choice names every choice
      }
    }
  }
}

TEST_P(EveryMethod, DoubleSettingsKeepTheirExactValue) {
  const auto name = GetParam();
  for (auto& o : options_of(name)) {
    if (o.type != OptionType::kDouble) continue;
    const double a = o.range.contains(0.0) ? 0.0 : 2e-7, b = 1e-7;
    ASSERT_TRUE(o.range.contains(a) && o.range.contains(b)) << o.key;
    auto ea = build_tiny(name, one(o.key, format_double(a)))->effective_settings();
    auto eb = build_tiny(name, one(o.key, "1e-7"))->effective_settings();
    EXPECT_NE(ea.at(o.key), eb.at(o.key)) << name << ": " << o.key;
    EXPECT_EQ(eb.at(o.key), "1e-07") << name << ": " << o.key;
    EXPECT_NE(ea, eb) << name;
  }
}

// Every method whose declared needs a feature cache can serve (and only those: the others are not
// run, and there must be some of each) gives the live forward's logits from backbone features.
TEST(Registry, CachedForwardEqualsLiveForEveryCacheableMethod) {
  int cacheable = 0, not_cacheable = 0;
  for (const auto& name : MethodRegistry::instance().names()) {
    auto m = build_tiny(name, {}, 0.0);  // a deterministic backbone path
    const auto taps = cache_taps_for(m->needs());
    if (!taps.any()) {
      ++not_cacheable;
      continue;
    }
    ++cacheable;
    m->train(false);
    torch::manual_seed(5);
    auto x = torch::randn({6, 3, 32, 32});
    torch::NoGradGuard ng;
    auto live = m->forward(x);
    auto cached = m->forward_cached(backbone_features(m->backbone(), x, taps));
    EXPECT_EQ(cached.sizes(), live.sizes()) << name;
    EXPECT_LT(test::max_rel_diff(cached, live), 1e-5) << name;
  }
  EXPECT_EQ(cacheable, 4) << "linear, mae_linprobe, synqt and vqt";
  EXPECT_GT(not_cacheable, 10);
}

TEST_P(EveryMethod, TrainsSavesAndReloads) {
  const auto name = GetParam();
  auto cfg = test::tiny_config();
  VisionTransformer vit(cfg);
  vit->init_weights(1);
  vit->set_trainable(false);
  torch::manual_seed(0);
  auto m = test::make_method(name, vit, 4);
  auto trainable = m->trainable_parameters();
  ASSERT_FALSE(trainable.empty());
  auto x = torch::randn({16, 3, 32, 32});
  auto y = torch::randint(4, {16}, torch::kInt64);
  auto r = load_recipe("synqt");
  r.lr = 3e-3;
  auto opt = make_optimizer(trainable, r);
  m->train(false);
  double first;
  {
    torch::NoGradGuard ng;
    first = torch::nn::functional::cross_entropy(m->forward(x), y).item<double>();
  }
  for (int s = 0; s < 15; ++s) {
    m->train(true);
    opt->zero_grad();
    torch::nn::functional::cross_entropy(m->forward(x), y).backward();
    opt->step();
  }
  m->train(false);
  torch::NoGradGuard ng;
  auto logits = m->forward(x);
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({16, 4}));
  double last = torch::nn::functional::cross_entropy(logits, y).item<double>();
  EXPECT_LT(last, first) << name;

  auto dir = test::scratch_dir("registry_" + name);
  save_named_tensors(dir + "/ck.safetensors", m->checkpoint_tensors());  // what a job's checkpoint holds
  VisionTransformer vit2(cfg);
  vit2->init_weights(1);
  vit2->set_trainable(false);
  torch::manual_seed(99);
  auto m2 = test::make_method(name, vit2, 4);
  auto loaded = load_named_tensors(dir + "/ck.safetensors");
  for (auto& [n, p] : m2->checkpoint_tensors()) {  // trainable tensors and trained buffers (BN statistics)
    ASSERT_TRUE(loaded.count(n)) << n;
    p.copy_(loaded[n]);
  }
  m2->train(false);
  EXPECT_TRUE(torch::equal(m2->forward(x), logits)) << name;
}

INSTANTIATE_TEST_SUITE_P(Registered, EveryMethod, ::testing::ValuesIn(MethodRegistry::instance().names()),
                         [](const auto& info) { return info.param; });

// Every method's defaults and per-task values against the authors' code (tests/data/authors_defaults.csv:
// each value written from the reference repository with its file and line, collected independently of
// petl): petl's effective setting (a method option, or the method's recipe value with its per-task
// overrides) equals the authors' value, or the row names petl's deliberate deviation and says why.
TEST(AuthorsDefaults, EveryDefaultAndPerTaskValueIsTheAuthorsOrADocumentedDeviation) {
  const CsvTable t = read_csv(std::string(PETL_TEST_DIR) + "/data/authors_defaults.csv");
  const int method = t.column("method"), key = t.column("key"), authors = t.column("authors_value"),
            task = t.column("task"), petl_value = t.column("petl_value"), note = t.column("note"),
            file = t.column("file"), line = t.column("line"), repo = t.column("repo");
  ASSERT_GE(t.rows.size(), 300u);
  auto cfg = test::tiny_config(32, 8, 48, 12, 4);  // depth 12, as ViT-B (dtl_first_side_block = depth / 2)
  VisionTransformer vit(cfg);
  std::set<std::string> covered;
  int deviations = 0;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& r = t.rows[i];
    ASSERT_FALSE(r[repo].empty() || r[file].empty() || r[line].empty()) << t.where(i) << ": no citation";
    const std::string task_name = r[task].empty() ? "" : data::canonical_task_name(r[task]);
    std::string got;
    if (r[key].rfind("recipe.", 0) == 0) {
      const auto recipe = resolve_recipe(r[method], "", task_name, {}).recipe.to_map();
      ASSERT_TRUE(recipe.count(r[key].substr(7))) << t.where(i) << ": no recipe key " << r[key];
      got = recipe.at(r[key].substr(7));
    } else {
      auto m = test::make_method(r[method], vit, 10, task_name.empty() ? "test_task" : task_name);
      const auto eff = m->effective_settings();
      ASSERT_TRUE(eff.count(r[key])) << t.where(i) << ": " << r[method] << " has no setting " << r[key];
      got = eff.at(r[key]);
    }
    const bool deviates = !r[petl_value].empty();
    if (deviates) {
      ++deviations;
      EXPECT_FALSE(r[note].empty()) << t.where(i) << ": a deviation without its reason";
    }
    const std::string& want = deviates ? r[petl_value] : r[authors];
    char* end_a = nullptr;
    char* end_b = nullptr;
    const double a = std::strtod(got.c_str(), &end_a), b = std::strtod(want.c_str(), &end_b);
    const bool numbers = !got.empty() && !want.empty() && *end_a == '\0' && *end_b == '\0';
    EXPECT_TRUE(numbers ? a == b : got == want)
        << t.where(i) << ": " << r[method] << " " << r[key] << (task_name.empty() ? "" : " on " + task_name) << " is "
        << got << " in petl, " << want << (deviates ? " (petl's documented value)" : " in the authors' code") << " ("
        << r[repo] << " " << r[file] << ":" << r[line] << ")";
    covered.insert(r[method]);
  }
  // Every method with a hyperparameter of its authors' is covered (petl's own mechanisms aside: how the
  // frozen pass is chunked or recomputed, which init, stochastic depth on or off).
  const std::set<std::string> petl_only = {"backbone_micro_batch", "query_recompute", "init", "backbone_drop_path",
                                           "kem_drop_path"};
  for (const auto& name : MethodRegistry::instance().names())
    for (const auto& o : MethodRegistry::instance().get(name).options)
      if (!petl_only.count(o.key)) EXPECT_TRUE(covered.count(name)) << name << " (" << o.key << ")";
  std::printf("authors' defaults: %zu values checked, %d documented deviations\n", t.rows.size(), deviations);
}
