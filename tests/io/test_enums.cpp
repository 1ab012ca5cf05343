// Tests for the closed sets (core/enums.h, core/enum_text.h) and CacheTaps (core/cache_taps.h): every
// value's name parses back to it, aliases parse, anything else is an error naming where it came from
// and the choices; and the record reads its typed sections as such (results/record.h).
#include <gtest/gtest.h>
#include <set>

#include "core/cache_taps.h"
#include "core/enums.h"
#include "core/error.h"
#include "core/text.h"
#include "results/record.h"

namespace petl {
namespace {

template <typename E>
void expect_round_trip() {
  std::set<std::string> names;
  for (const auto& n : EnumText<E>::kNames) {
    EXPECT_EQ(parse_enum<E>(n.name, "x"), n.value) << n.name;
    EXPECT_STREQ(to_string(n.value), n.name);
    EXPECT_TRUE(names.insert(n.name).second) << "a name twice: " << n.name;
  }
  for (const auto& a : EnumText<E>::kAliases) {
    EXPECT_EQ(parse_enum<E>(a.name, "x"), a.value) << a.name;
    EXPECT_FALSE(names.count(a.name)) << "an alias that is a name: " << a.name;
  }
  try {
    parse_enum<E>("no-such-value", "--flag");
    ADD_FAILURE() << EnumText<E>::kWhat << ": accepted a value that is none";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--flag 'no-such-value': expected "), std::string::npos) << m;
    for (const auto& n : EnumText<E>::kNames) EXPECT_NE(m.find(n.name), std::string::npos) << m;
  }
}

TEST(Enums, EveryNameParsesBackAndOthersAreErrorsListingTheChoices) {
  expect_round_trip<Protocol>();
  expect_round_trip<Precision>();
  expect_round_trip<CacheDtype>();
  expect_round_trip<RecordStatus>();
  expect_round_trip<MemoryClass>();
}

TEST(Enums, TheOneParserAcceptsTheSameSpellingsEverywhere) {
  // precision: the sweep config used to refuse float32 / bfloat16 that petl run accepted.
  EXPECT_EQ(parse_enum<Precision>("bfloat16", "precision"), Precision::kBf16);
  EXPECT_EQ(parse_enum<Precision>("float32", "precision"), Precision::kFp32);
  EXPECT_STREQ(to_string(Precision::kBf16), "bf16");  // the canonical name records and keys hold
  EXPECT_EQ(enum_choices<MemoryClass>(""), "light, partial or heavy");
  EXPECT_EQ(enum_choices<Protocol>(), "best_of_10 | final | val_select");
  EXPECT_EQ(bytes_per_value(CacheDtype::kFloat16), 2);
  EXPECT_EQ(bytes_per_value(CacheDtype::kFloat32), 4);
  EXPECT_FALSE(try_parse_enum<RecordStatus>("running"));
}

TEST(Enums, CacheTapsSpellAndCombine) {
  for (const char* s : {"cls", "kv", "cls+kv"}) EXPECT_EQ(CacheTaps::parse(s).str(), s);
  EXPECT_EQ(CacheTaps::parse("kv+cls"), CacheTaps::parse("cls+kv"));
  EXPECT_EQ(CacheTaps().str(), "none");
  EXPECT_EQ((CacheTaps::parse("cls") | CacheTaps::parse("kv")).str(), "cls+kv");
  EXPECT_TRUE(CacheTaps::parse("cls+kv").covers(CacheTaps::parse("kv")));
  EXPECT_FALSE(CacheTaps::parse("cls").covers(CacheTaps::parse("kv")));
  EXPECT_THROW(CacheTaps::parse("tokens"), Error);
  EXPECT_THROW(CacheTaps::parse(""), Error);
}

TEST(Enums, RecordSectionsPetlWritesAreTypedNotUnknown) {
  nlohmann::json j = {{"schema", "petl.result"},
                      {"schema_version", 1},
                      {"status", "does_not_fit"},
                      {"method", "full"},
                      {"task", "t"},
                      {"seed", 1},
                      {"protocol", "final"},
                      {"memory_budget", {{"budget_mib", 4096}, {"fits", false}}},
                      {"resumed", {{"from_epoch", 3}}},
                      {"bundle", {{"jobs", 2}}},
                      {"sweep_rank", 1},
                      {"sweep_wall_s", 2.5}};
  const Record r = record_from_json(j, "x:1");
  EXPECT_EQ(r.status, RecordStatus::kDoesNotFit);
  EXPECT_EQ(r.protocol, Protocol::kFinal);
  EXPECT_EQ(r.memory_budget["budget_mib"], 4096);
  EXPECT_EQ(r.resumed["from_epoch"], 3);
  EXPECT_EQ(r.bundle["jobs"], 2);
  EXPECT_EQ(r.sweep_rank, 1);
  EXPECT_TRUE(r.extra.empty()) << r.extra.dump();
  EXPECT_EQ(to_json(r), j);
  j["protocol"] = "best_of_5";  // the headline protocol is one petl knows
  try {
    record_from_json(j, "x:2");
    ADD_FAILURE() << "an unknown protocol was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("protocol (expected best_of_10, final or val_select"), std::string::npos)
        << e.what();
  }
}

// "Did you mean": close spellings first (a swap counts one), else shared words (a description
// counts), nothing when far; enum errors carry it.
TEST(DidYouMean, SpellingThenSharedWordsAndNothingWhenFar) {
  const std::vector<std::string> keys = {"lora_dim", "lora_dropout", "lora_scale", "init"};
  const std::vector<std::string> meanings = {"rank r of A: D to r, B: r to 3D", "dropout on LN1 x before A",
                                             "scale of the qkv delta", "noah or module init"};
  EXPECT_EQ(closest_names("lora_dmi", keys), std::vector<std::string>{"lora_dim"});  // a swap
  EXPECT_EQ(closest_names("lora_rank", keys, meanings), std::vector<std::string>{"lora_dim"});
  EXPECT_EQ(closest_names("lora_rank", keys).size(), 3u) << "without meanings: the three lora_ keys tie";
  EXPECT_TRUE(closest_names("token_nums", keys, meanings).empty());
  EXPECT_EQ(did_you_mean("lora_dmi", keys), " (did you mean 'lora_dim'?)");
  EXPECT_EQ(did_you_mean("zzz", keys), "");
  EXPECT_EQ(did_you_mean("sprites_lo", {"sprites_loc", "sprites_ori", "dsprites_loc"}),
            " (did you mean 'sprites_loc', 'dsprites_loc' or 'sprites_ori'?)");
  EXPECT_TRUE(closest_names("lora_dim", keys).empty()) << "a known name needs no correction";
  try {
    parse_enum<Precision>("fp23", "--precision");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(did you mean 'fp32'?)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace petl
