// Typed access to `--set key=value` settings with errors that name the key, and a record of
// which keys were consumed so unknown keys are reported instead of silently ignored.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace petl {

class Settings {
 public:
  Settings() = default;
  explicit Settings(std::map<std::string, std::string> kv) : kv_(std::move(kv)) {}
  // Parses "key=value" items (from the command line); throws petl::Error naming a bad item.
  static Settings parse(const std::vector<std::string>& items);

  bool has(const std::string& key) const { return kv_.count(key) > 0; }
  double get_double(const std::string& key, double def) const;
  int get_int(const std::string& key, int def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  void set(const std::string& key, const std::string& value) { kv_[key] = value; }
  const std::map<std::string, std::string>& items() const { return kv_; }
  // Keys never read by any getter.
  std::vector<std::string> unused() const;
  // Every key a getter was asked for, present or not: the keys these settings understand (a
  // method's options and a recipe's keys, once both have read them), for "did you mean".
  std::vector<std::string> asked() const { return {asked_->begin(), asked_->end()}; }

 private:
  std::map<std::string, std::string> kv_;
  // Shared by copies, so a key read through any copy (e.g. the one a method keeps) counts as used.
  std::shared_ptr<std::set<std::string>> used_ = std::make_shared<std::set<std::string>>();
  std::shared_ptr<std::set<std::string>> asked_ = std::make_shared<std::set<std::string>>();
};

}  // namespace petl
