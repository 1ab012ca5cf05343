// Text helpers shared by every layer: joining and splitting, the first line of a message, exact
// number formatting for keys and records, and the one CSV reader (quoted fields, '#' comments,
// errors naming file:line).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace petl {

std::string join(const std::vector<std::string>& items, const std::string& sep);
// Splits on `sep`; empty items are kept ("a,,b" → a, "", b) unless skip_empty.
std::vector<std::string> split(const std::string& s, char sep, bool skip_empty = false);
// A comma-separated list as given on a command line ("linear,synqt"): empty items dropped.
inline std::vector<std::string> split_list(const std::string& s) { return split(s, ',', true); }
// The fields of a line separated by runs of spaces and tabs ("a  b\tc" → a, b, c).
std::vector<std::string> split_whitespace(const std::string& s);
std::string first_line(const std::string& s);
// True when s is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF):
// what JSON needs of every string it writes (nlohmann's dump throws on anything else).
bool is_valid_utf8(const std::string& s);

// The shortest decimal text that reads back as exactly `v` (std::to_chars): 1e-07, 0.1, 100, 2.5e+20.
// Distinct doubles always give distinct strings, so settings formatted with it are safe in job keys.
std::string format_double(double v);

// A size with an optional binary suffix: "512", "64K", "8G", "1.5T" (K = 2^10 ...); petl::Error
// naming `what` otherwise.
int64_t parse_size(const std::string& s, const std::string& what);
// "1.5 GiB", "12.0 MiB", "512 B".
std::string format_bytes(double bytes);
// A duration for people: "0.4 s", "42 s", "3.5 min", "2.0 h", "3.1 d" (seconds below 10 with one decimal).
std::string format_seconds(double seconds);

// One CSV line → fields ("" quoting as RFC 4180, '\r' dropped); `where` (file:line) names an
// unterminated quote in the error.
std::vector<std::string> csv_split(const std::string& line, const std::string& where);
// A field quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& s);

// A whole CSV file: a header, then rows with the same number of fields. Blank lines and lines
// starting with '#' are skipped. Errors (missing file, ragged row) name file:line.
struct CsvTable {
  std::string file;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int> line_numbers;              // of each row in the file (1-based)
  int column(const std::string& name) const;  // index, or -1
  std::string where(size_t row) const { return file + ":" + std::to_string(line_numbers.at(row)); }
};
CsvTable read_csv(const std::string& file);

// "Did you mean": the names closest to `word` — those within a small edit distance (a swap of two
// neighbouring letters counts one; at most a third of the word's length), else those sharing the
// most words of three or more letters with it (split at '_', '-', '.', ' '; a name's description,
// when given, counts too: lora_rank finds lora_dim, "rank r of A"). Up to three, best first;
// none when `word` is itself one of the names.
std::vector<std::string> closest_names(const std::string& word, const std::vector<std::string>& names,
                                       const std::vector<std::string>& descriptions = {});
// " (did you mean 'x'?)", " (did you mean 'x' or 'y'?)", or "" when nothing is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& names,
                         const std::vector<std::string>& descriptions = {});
CsvTable parse_csv(const std::string& text, const std::string& label);

}  // namespace petl
