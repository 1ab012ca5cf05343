// One name per value of a closed set, and one parser, for every enum class petl has (as c10's
// ScalarType has toString): a set declares its names once, in a specialisation of EnumText, and
// to_string / parse_enum / enum_choices work for it.
//
//   enum class Protocol { kBestOf10, kFinal };
//   template <> struct EnumText<Protocol> {
//     static constexpr const char* kWhat = "protocol";
//     static constexpr std::array<EnumName<Protocol>, 2> kNames{{{Protocol::kBestOf10, "best_of_10"},
//                                                                {Protocol::kFinal, "final"}}};
//     static constexpr std::array<EnumName<Protocol>, 0> kAliases{};  // other spellings parse_enum accepts
//   };
// The first name of a value is its canonical name (what to_string writes and records hold).
#pragma once
#include <array>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/text.h"

namespace petl {

template <typename E>
struct EnumName {
  E value;
  const char* name;
};

template <typename E>
struct EnumText;  // specialised for every closed set (see above)

// The canonical name of a value.
template <typename E>
const char* to_string(E value) {
  for (const auto& n : EnumText<E>::kNames)
    if (n.value == value) return n.name;
  return "?";  // unreachable for a value of the enum
}

// The value whose name (or alias) is `text`, or nullopt.
template <typename E>
std::optional<E> try_parse_enum(const std::string& text) {
  for (const auto& n : EnumText<E>::kNames)
    if (text == n.name) return n.value;
  for (const auto& n : EnumText<E>::kAliases)
    if (text == n.name) return n.value;
  return std::nullopt;
}

// The canonical names joined by `sep` ("fp32 | bf16"), or as a sentence when `sep` is empty
// ("light, partial or heavy").
template <typename E>
std::string enum_choices(const std::string& sep = " | ") {
  std::string out;
  const size_t n = EnumText<E>::kNames.size();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += !sep.empty() ? sep : i + 1 == n ? " or " : ", ";
    out += EnumText<E>::kNames[i].name;
  }
  return out;
}

// The value named `text`; petl::Error "<where> '<text>': expected fp32 or bf16" otherwise (`where`
// names the flag, key or file:line).
template <typename E>
E parse_enum(const std::string& text, const std::string& where) {
  if (auto v = try_parse_enum<E>(text)) return *v;
  std::vector<std::string> names;
  for (const auto& n : EnumText<E>::kNames) names.push_back(n.name);
  for (const auto& n : EnumText<E>::kAliases) names.push_back(n.name);
  PETL_FAIL(where, " '", text, "': expected ", enum_choices<E>(""), " (a ", EnumText<E>::kWhat, ")",
            did_you_mean(text, names));
}

}  // namespace petl
