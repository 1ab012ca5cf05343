// Typed method options, in the PyTorch C++ frontend's style: a method keeps its hyperparameters in
// a plain options struct (one field per hyperparameter) and declares them once, in one OptionTable
// that lists per field the `--set` key, the member, the default, the valid range and a one-line
// meaning. The table
//   * parses the Settings map over a base (the defaults, or the defaults adjusted by a per-task
//     config row), reading through Settings' getters so used keys are recorded;
//   * validates, with errors naming the key, the expected range and the value (petl::Error);
//   * writes the effective settings for the result record and job key: ints as std::to_string,
//     bools as the option's spelling (true/false or on/off), doubles by format_double (shortest
//     round-trip text: 1e-07 and 0 differ);
//   * describes the options for `petl list` and MethodInfo::options.
// Example (lora.cpp): struct LoraOptions { int lora_dim{}; double lora_dropout{}, lora_scale{}; };
//   const OptionTable<LoraOptions> kOptions = OptionTable<LoraOptions>()
//       .add("lora_dim", &LoraOptions::lora_dim, 8, Range::at_least(1), "rank r of the update");
#pragma once
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/settings.h"
#include "core/text.h"
#include "methods/method.h"

namespace petl::methods {

using Range = OptionRange;

// How a bool option is written in effective settings (kept as each method has always written it).
enum class BoolText { true_false, on_off };

template <typename O>
class OptionTable {
 public:
  OptionTable& add(std::string key, int O::*member, int def, Range range, std::string meaning) {
    return push(std::move(key), member, def, range, BoolText::true_false, std::move(meaning), "int");
  }
  OptionTable& add(std::string key, double O::*member, double def, Range range, std::string meaning) {
    return push(std::move(key), member, def, range, BoolText::true_false, std::move(meaning), "double");
  }
  OptionTable& add(std::string key, bool O::*member, bool def, BoolText text, std::string meaning) {
    return push(std::move(key), member, def, Range::any(), text, std::move(meaning), "bool");
  }
  OptionTable& add(std::string key, std::string O::*member, std::string def, std::string meaning) {
    return push(std::move(key), member, std::move(def), Range::any(), BoolText::true_false, std::move(meaning),
                "string");
  }
  // The default as `petl list` shows it, for the option added last, when the table's value is only
  // a stand-in (e.g. "depth / 2": the method computes it from the backbone).
  OptionTable& default_text(std::string text) {
    fields_.back().default_text = std::move(text);
    return *this;
  }

  O defaults() const {
    O o{};
    for (auto& f : fields_) std::visit([&](auto m) { o.*m = std::get<Member<decltype(m)>>(f.def); }, f.member);
    return o;
  }
  // `base` with every key present in `s` replaced by its value, then validated.
  O parse(const Settings& s, O base) const {
    for (auto& f : fields_) {
      if (auto m = std::get_if<int O::*>(&f.member)) base.*(*m) = s.get_int(f.key, base.*(*m));
      if (auto m = std::get_if<double O::*>(&f.member)) base.*(*m) = s.get_double(f.key, base.*(*m));
      if (auto m = std::get_if<bool O::*>(&f.member)) base.*(*m) = s.get_bool(f.key, base.*(*m));
      if (auto m = std::get_if<std::string O::*>(&f.member)) base.*(*m) = s.get_string(f.key, base.*(*m));
    }
    validate(base);
    return base;
  }
  O parse(const Settings& s) const { return parse(s, defaults()); }

  void validate(const O& o) const {
    for (auto& f : fields_) {
      if (auto m = std::get_if<int O::*>(&f.member))
        PETL_CHECK(f.range.contains(o.*(*m)), "setting '", f.key, "': expected an integer ", f.range.str(), ", got ",
                   o.*(*m));
      if (auto m = std::get_if<double O::*>(&f.member))
        PETL_CHECK(f.range.contains(o.*(*m)), "setting '", f.key, "': expected a number ", f.range.str(), ", got ",
                   format_double(o.*(*m)));
    }
  }

  std::map<std::string, std::string> effective(const O& o) const {
    std::map<std::string, std::string> out;
    for (auto& f : fields_) {
      if (auto m = std::get_if<int O::*>(&f.member)) out[f.key] = std::to_string(o.*(*m));
      if (auto m = std::get_if<double O::*>(&f.member)) out[f.key] = format_double(o.*(*m));
      if (auto m = std::get_if<bool O::*>(&f.member)) out[f.key] = bool_text(o.*(*m), f.bool_text);
      if (auto m = std::get_if<std::string O::*>(&f.member)) out[f.key] = o.*(*m);
    }
    return out;
  }

  std::vector<OptionInfo> describe() const {
    std::vector<OptionInfo> out;
    for (auto& f : fields_) {
      OptionInfo i;
      i.key = f.key;
      i.type = f.type;
      i.default_text = f.default_text;
      i.range = f.range;
      i.meaning = f.meaning;
      out.push_back(i);
    }
    return out;
  }

 private:
  template <typename P> struct MemberOf;
  template <typename T> struct MemberOf<T O::*> { using type = T; };
  template <typename P> using Member = typename MemberOf<P>::type;
  using Value = std::variant<int, double, bool, std::string>;

  struct Field {
    std::string key;
    std::variant<int O::*, double O::*, bool O::*, std::string O::*> member;
    Value def;
    Range range;
    BoolText bool_text;
    std::string meaning, type, default_text;
  };

  static std::string bool_text(bool v, BoolText t) {
    return t == BoolText::on_off ? (v ? "on" : "off") : (v ? "true" : "false");
  }
  template <typename M, typename T>
  OptionTable& push(std::string key, M member, T def, Range range, BoolText text, std::string meaning,
                    const char* type) {
    Field f{std::move(key), member, Value(std::in_place_type<T>, def), range, text, std::move(meaning), type, ""};
    if constexpr (std::is_same_v<T, int>) f.default_text = std::to_string(def);
    else if constexpr (std::is_same_v<T, double>) f.default_text = format_double(def);
    else if constexpr (std::is_same_v<T, bool>) f.default_text = bool_text(def, text);
    else f.default_text = def;
    fields_.push_back(std::move(f));
    return *this;
  }

  std::vector<Field> fields_;
};

}  // namespace petl::methods
