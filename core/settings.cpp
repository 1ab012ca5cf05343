#include "core/settings.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace petl {

Settings Settings::parse(const std::vector<std::string>& items) {
  std::map<std::string, std::string> kv;
  for (auto& it : items) {
    auto eq = it.find('=');
    PETL_CHECK(eq != std::string::npos && eq > 0, "--set '", it, "': expected key=value");
    kv[it.substr(0, eq)] = it.substr(eq + 1);
  }
  return Settings(kv);
}

double Settings::get_double(const std::string& key, double def) const {
  asked_->insert(key);
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  used_->insert(key);
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  PETL_CHECK(end && *end == 0 && !it->second.empty(), "setting '", key, "': expected a number, got '", it->second, "'");
  PETL_CHECK(std::isfinite(v), "setting '", key, "': expected a finite number, got '", it->second, "'");
  return v;
}

int Settings::get_int(const std::string& key, int def) const {
  asked_->insert(key);
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  used_->insert(key);
  char* end = nullptr;
  long v = std::strtol(it->second.c_str(), &end, 10);
  PETL_CHECK(end && *end == 0 && !it->second.empty(), "setting '", key, "': expected an integer, got '", it->second,
             "'");
  return int(v);
}

bool Settings::get_bool(const std::string& key, bool def) const {
  asked_->insert(key);
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  used_->insert(key);
  const auto& s = it->second;
  if (s == "1" || s == "true" || s == "on" || s == "yes") return true;
  if (s == "0" || s == "false" || s == "off" || s == "no") return false;
  PETL_FAIL("setting '", key, "': expected true/false/on/off/1/0, got '", s, "'");
}

std::string Settings::get_string(const std::string& key, const std::string& def) const {
  asked_->insert(key);
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  used_->insert(key);
  return it->second;
}

std::vector<std::string> Settings::unused() const {
  std::vector<std::string> out;
  for (auto& [k, v] : kv_)
    if (!used_->count(k)) out.push_back(k);
  return out;
}

}  // namespace petl
