#include "core/text.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace petl {

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
  return s;
}

std::vector<std::string> split_whitespace(const std::string& s) {
  std::string t = s;
  for (char& c : t)
    if (c == '\t' || c == '\r') c = ' ';
  return split(t, ' ', true);
}

std::vector<std::string> split(const std::string& s, char sep, bool skip_empty) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!skip_empty || !cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!skip_empty || !cur.empty()) out.push_back(cur);
  if (s.empty() && !skip_empty) out.assign(1, "");
  return out;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool is_valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // The sequence length, the lead byte's payload and the smallest code point of that length.
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;  // a continuation byte without a lead, or 0xF8..0xFF
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string format_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip representation
  return std::string(buf, r.ptr);
}

int64_t parse_size(const std::string& s, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  double mult = 1;
  std::string suffix = end ? std::string(end) : std::string();
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  if (suffix == "K" || suffix == "k")
    mult = 1024.0;
  else if (suffix == "M" || suffix == "m")
    mult = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "g")
    mult = 1024.0 * 1024 * 1024;
  else if (suffix == "T" || suffix == "t")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    PETL_CHECK(suffix.empty(), what, " '", s, "': expected a size such as 512M, 8G or 1.5T");
  PETL_CHECK(!s.empty() && end != s.c_str() && std::isfinite(v) && v >= 0, what, " '", s,
             "': expected a non-negative size such as 512M, 8G or 1.5T");
  return int64_t(v * mult);
}

std::string format_bytes(double b) {
  char buf[64];
  if (b >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else if (b >= 1024.0)
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string format_seconds(double s) {
  char buf[64];
  if (s >= 2 * 86400.0)
    std::snprintf(buf, sizeof buf, "%.1f d", s / 86400.0);
  else if (s >= 3600.0)
    std::snprintf(buf, sizeof buf, "%.1f h", s / 3600.0);
  else if (s >= 60.0)
    std::snprintf(buf, sizeof buf, "%.1f min", s / 60.0);
  else
    std::snprintf(buf, sizeof buf, s < 10 ? "%.1f s" : "%.0f s", s);
  return buf;
}

std::vector<std::string> csv_split(const std::string& line, const std::string& where) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  PETL_CHECK(!quoted, where, ": unterminated quoted field");
  out.push_back(cur);
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return int(i);
  return -1;
}

CsvTable parse_csv(const std::string& text, const std::string& label) {
  CsvTable t;
  t.file = label;
  std::istringstream is(text);
  std::string line;
  int lineno = 0;
  while (std::getline(is, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    const std::string where = label + ":" + std::to_string(lineno);
    auto f = csv_split(line, where);
    if (t.header.empty()) {
      t.header = f;
      continue;
    }
    PETL_CHECK(f.size() == t.header.size(), where, ": expected ", t.header.size(), " fields as in the header, found ",
               f.size());
    t.rows.push_back(std::move(f));
    t.line_numbers.push_back(lineno);
  }
  PETL_CHECK(!t.header.empty(), label, ": no header line");
  return t;
}

CsvTable read_csv(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  PETL_CHECK(in.good(), "cannot open the CSV file ", file);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_csv(ss.str(), file);
}

namespace {
// Optimal string alignment distance (insertions, deletions, substitutions, adjacent swaps).
size_t edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Words of three or more letters or digits.
std::set<std::string> words(const std::string& s) {
  std::set<std::string> out;
  std::string w;
  for (char ch : lower(s) + " ") {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      w += ch;
    } else {
      if (w.size() >= 3) out.insert(w);
      w.clear();
    }
  }
  return out;
}
}  // namespace

std::vector<std::string> closest_names(const std::string& word, const std::vector<std::string>& names,
                                       const std::vector<std::string>& descriptions) {
  if (std::find(names.begin(), names.end(), word) != names.end()) return {};  // nothing to correct
  const std::string w = lower(word);
  const size_t limit = std::max<size_t>(1, w.size() / 3);
  std::vector<std::pair<size_t, std::string>> near;
  for (const auto& n : names) {
    const size_t d = edit_distance(w, lower(n));
    if (d > 0 && d <= limit) near.emplace_back(d, n);
  }
  if (near.empty()) {  // no spelling close: the names sharing the most words
    const auto mine = words(word);
    for (size_t i = 0; i < names.size(); ++i) {
      auto theirs = words(names[i]);
      if (i < descriptions.size()) {
        const auto more = words(descriptions[i]);
        theirs.insert(more.begin(), more.end());
      }
      size_t shared = 0;
      for (const auto& x : mine) shared += theirs.count(x);
      if (shared > 0) near.emplace_back(100 - shared, names[i]);  // more shared words first
    }
    if (!near.empty()) {  // only the best score
      const size_t best = std::min_element(near.begin(), near.end())->first;
      near.erase(std::remove_if(near.begin(), near.end(), [&](const auto& p) { return p.first != best; }), near.end());
    }
  }
  std::stable_sort(near.begin(), near.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (const auto& [d, n] : near)
    if (out.size() < 3 && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& names,
                         const std::vector<std::string>& descriptions) {
  const auto close = closest_names(word, names, descriptions);
  if (close.empty()) return "";
  std::string s = " (did you mean ";
  for (size_t i = 0; i < close.size(); ++i)
    s += (i == 0 ? "" : i + 1 == close.size() ? " or " : ", ") + ("'" + close[i] + "'");
  return s + "?)";
}

}  // namespace petl
