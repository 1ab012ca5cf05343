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
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/enum_text.h"
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
    Field f = base_field(std::move(key), OptionType::kInt, std::to_string(def), std::move(meaning));
    f.range = range;
    f.set_default = [member, def](O& o) { o.*member = def; };
    f.read = [member, k = f.key](const Settings& s, O& o) { o.*member = s.get_int(k, o.*member); };
    f.validate = [member, k = f.key, range](const O& o) {
      PETL_CHECK(range.contains(o.*member), "setting '", k, "': expected an integer ", range.str(), ", got ",
                 o.*member);
    };
    f.text = [member](const O& o) { return std::to_string(o.*member); };
    return push(std::move(f));
  }
  OptionTable& add(std::string key, double O::*member, double def, Range range, std::string meaning) {
    Field f = base_field(std::move(key), OptionType::kDouble, format_double(def), std::move(meaning));
    f.range = range;
    f.set_default = [member, def](O& o) { o.*member = def; };
    f.read = [member, k = f.key](const Settings& s, O& o) { o.*member = s.get_double(k, o.*member); };
    f.validate = [member, k = f.key, range](const O& o) {
      PETL_CHECK(range.contains(o.*member), "setting '", k, "': expected a number ", range.str(), ", got ",
                 format_double(o.*member));
    };
    f.text = [member](const O& o) { return format_double(o.*member); };
    return push(std::move(f));
  }
  OptionTable& add(std::string key, bool O::*member, bool def, BoolText text, std::string meaning) {
    Field f = base_field(std::move(key), OptionType::kBool, bool_text(def, text), std::move(meaning));
    f.set_default = [member, def](O& o) { o.*member = def; };
    f.read = [member, k = f.key](const Settings& s, O& o) { o.*member = s.get_bool(k, o.*member); };
    f.text = [member, text](const O& o) { return bool_text(o.*member, text); };
    return push(std::move(f));
  }
  OptionTable& add(std::string key, std::string O::*member, std::string def, std::string meaning) {
    Field f = base_field(std::move(key), OptionType::kString, def, std::move(meaning));
    f.set_default = [member, def](O& o) { o.*member = def; };
    f.read = [member, k = f.key](const Settings& s, O& o) { o.*member = s.get_string(k, o.*member); };
    f.text = [member](const O& o) { return o.*member; };
    return push(std::move(f));
  }
  // A choice among the names of an enum class E (core/enum_text.h: its EnumText lists them);
  // written by its canonical name, any other text an error naming the key and the choices.
  template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
  OptionTable& add(std::string key, E O::*member, E def, std::string meaning) {
    Field f = base_field(std::move(key), OptionType::kChoice, to_string(def), std::move(meaning));
    for (const auto& n : EnumText<E>::kNames) f.choices.push_back(n.name);
    f.set_default = [member, def](O& o) { o.*member = def; };
    f.read = [member, k = f.key](const Settings& s, O& o) {
      if (s.has(k)) o.*member = parse_enum<E>(s.get_string(k, ""), "setting '" + k + "'");
    };
    f.text = [member](const O& o) { return std::string(to_string(o.*member)); };
    return push(std::move(f));
  }
  // The default as `petl list` shows it, for the option added last, when the table's value is only
  // a stand-in (e.g. "depth / 2": the method computes it from the backbone).
  OptionTable& default_text(std::string text) {
    fields_.back().default_text = std::move(text);
    return *this;
  }

  O defaults() const {
    O o{};
    for (auto& f : fields_) f.set_default(o);
    return o;
  }
  // `base` with every key present in `s` replaced by its value, then validated.
  O parse(const Settings& s, O base) const {
    for (auto& f : fields_) f.read(s, base);
    validate(base);
    return base;
  }
  O parse(const Settings& s) const { return parse(s, defaults()); }

  void validate(const O& o) const {
    for (auto& f : fields_)
      if (f.validate) f.validate(o);
  }

  std::map<std::string, std::string> effective(const O& o) const {
    std::map<std::string, std::string> out;
    for (auto& f : fields_) out[f.key] = f.text(o);
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
      i.choices = f.choices;
      i.meaning = f.meaning;
      out.push_back(i);
    }
    return out;
  }

 private:
  struct Field {
    std::string key;
    OptionType type = OptionType::kString;
    std::string default_text, meaning;
    Range range;                       // int and double options
    std::vector<std::string> choices;  // choice options
    std::function<void(O&)> set_default;
    std::function<void(const Settings&, O&)> read;  // through Settings' getters: used keys are recorded
    std::function<void(const O&)> validate;         // empty: any value of the type
    std::function<std::string(const O&)> text;      // as written in effective settings
  };

  static std::string bool_text(bool v, BoolText t) {
    return t == BoolText::on_off ? (v ? "on" : "off") : (v ? "true" : "false");
  }
  static Field base_field(std::string key, OptionType type, std::string default_text, std::string meaning) {
    Field f;
    f.key = std::move(key);
    f.type = type;
    f.default_text = std::move(default_text);
    f.meaning = std::move(meaning);
    return f;
  }
  OptionTable& push(Field f) {
    fields_.push_back(std::move(f));
    return *this;
  }

  std::vector<Field> fields_;
};

}  // namespace petl::methods
