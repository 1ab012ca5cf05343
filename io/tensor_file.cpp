// Torch-free tensor file I/O: safetensors (read + write), numpy .npy (read + write) and .npz
// (read, via libzip). Every malformed input is a petl::Error naming the file and the key.
// Files are read with one read into memory; writes go to path + ".tmp", are fsync'ed and renamed.
#include "io/tensor_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/stat.h>
#include <utility>

#include "core/error.h"

namespace petl::io {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Small helpers shared by all formats.

struct DTypeInfo {
  DType dtype;
  const char* safetensors_name;
  const char* npy_code;  // without the byte-order character; nullptr if numpy has no such type
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::f64, "F64", "f8", 8},      {DType::f32, "F32", "f4", 4}, {DType::f16, "F16", "f2", 2},
    {DType::bf16, "BF16", nullptr, 2}, {DType::i64, "I64", "i8", 8}, {DType::i32, "I32", "i4", 4},
    {DType::i16, "I16", "i2", 2},      {DType::i8, "I8", "i1", 1},   {DType::u8, "U8", "u1", 1},
    {DType::boolean, "BOOL", "b1", 1},
};

const DTypeInfo& info_of(DType d) {
  for (const DTypeInfo& info : kDTypes)
    if (info.dtype == d) return info;
  PETL_FAIL("tensor_file: invalid DType value ", static_cast<int>(d));
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint32_t read_u32_le(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint16_t read_u16_le(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
void append_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// numel of `shape` as bytes of `item_size`; false on negative dims or overflow.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t item_size, uint64_t* nbytes) {
  uint64_t n = item_size;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *nbytes = n;
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// `s` with non-printable bytes as \xNN, for quoting untrusted headers in messages.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::vector<uint8_t> read_whole_file(const std::string& path, const char* format) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PETL_CHECK(fd >= 0, format, " file '", path, "': cannot open: ", std::strerror(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  PETL_CHECK(::fstat(fd, &st) == 0, format, " file '", path, "': fstat failed: ", std::strerror(errno));
  PETL_CHECK(S_ISREG(st.st_mode), format, " file '", path, "': not a regular file");
  std::vector<uint8_t> buf(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < buf.size()) {  // read() may return short counts for files over 2 GiB
    ssize_t n = ::read(fd, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    PETL_CHECK(n >= 0, format, " file '", path, "': read failed: ", std::strerror(errno));
    PETL_CHECK(n > 0, format, " file '", path, "': file shrank while reading");
    done += static_cast<size_t>(n);
  }
  return buf;
}

// Writes the pieces to path + ".tmp", flushes and fsyncs, then renames over `path`.
void write_file_atomic(const std::string& path, const char* format,
                       const std::vector<std::pair<const void*, size_t>>& pieces) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  PETL_CHECK(f != nullptr, format, " file '", path, "': cannot create '", tmp, "': ", std::strerror(errno));
  bool ok = true;
  for (const auto& [ptr, size] : pieces)
    if (size > 0 && std::fwrite(ptr, 1, size, f) != size) ok = false;
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const int saved_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    PETL_FAIL(format, " file '", path, "': write to '", tmp,
              "' failed: ", std::strerror(saved_errno ? saved_errno : errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    PETL_FAIL(format, " file '", path, "': rename from '", tmp, "' failed: ", std::strerror(e));
  }
}

// ---------------------------------------------------------------------------------------------
// A tiny parser for the python dict literal in .npy headers, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// It understands strings, True/False/None, integers (with py2 'L' suffix), tuples/lists and
// dicts, with arbitrary whitespace and trailing commas.

struct PyValue {
  enum class Kind { string, boolean, integer, none, sequence, dict } kind = Kind::none;
  std::string str;
  bool boolean = false;
  int64_t integer = 0;
  std::vector<PyValue> items;                         // sequence
  std::vector<std::pair<std::string, PyValue>> dict;  // dict (string keys only)
};

class PyLiteralParser {
 public:
  PyLiteralParser(const std::string& text, const std::string& name) : text_(text), name_(name) {}

  PyValue parse_all() {
    PyValue v = parse_value();
    skip_ws();
    if (pos_ != text_.size()) fail("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    PETL_FAIL(name_, ": cannot parse header \"", printable(text_), "\": ", what, " at offset ", pos_);
  }
  void skip_ws() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r' || text_[pos_] == '\n'))
      ++pos_;
  }
  char peek() {
    skip_ws();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  PyValue parse_value() {
    if (++depth_ > 32) fail("nesting too deep");
    PyValue v;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = PyValue::Kind::string;
      v.str = parse_string();
    } else if (c == '(' || c == '[') {
      v.kind = PyValue::Kind::sequence;
      const char close = c == '(' ? ')' : ']';
      ++pos_;
      while (peek() != close) {
        v.items.push_back(parse_value());
        if (peek() == ',')
          ++pos_;
        else if (peek() != close)
          fail(std::string("expected ',' or '") + close + "'");
      }
      ++pos_;
    } else if (c == '{') {
      v.kind = PyValue::Kind::dict;
      ++pos_;
      while (peek() != '}') {
        const char q = peek();
        if (q != '\'' && q != '"') fail("expected a string key");
        std::string key = parse_string();
        expect(':');
        v.dict.emplace_back(std::move(key), parse_value());
        if (peek() == ',')
          ++pos_;
        else if (peek() != '}')
          fail("expected ',' or '}'");
      }
      ++pos_;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = PyValue::Kind::integer;
      v.integer = parse_integer();
    } else if (consume_word("True")) {
      v.kind = PyValue::Kind::boolean;
      v.boolean = true;
    } else if (consume_word("False")) {
      v.kind = PyValue::Kind::boolean;
      v.boolean = false;
    } else if (consume_word("None")) {
      v.kind = PyValue::Kind::none;
    } else {
      fail(c == '\0' ? "unexpected end of header" : std::string("unexpected character '") + c + "'");
    }
    --depth_;
    return v;
  }

  bool consume_word(const char* word) {
    const size_t n = std::strlen(word);
    if (text_.compare(pos_, n, word) != 0) return false;
    const size_t end = pos_ + n;
    if (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_')) return false;
    pos_ = end;
    return true;
  }

  std::string parse_string() {
    const char quote = text_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) fail("unterminated string");
      const char c = text_[pos_++];
      if (c == quote) break;
      if (c == '\\') {
        if (pos_ >= text_.size()) fail("unterminated string");
        const char e = text_[pos_++];
        out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
      } else {
        out.push_back(c);
      }
    }
    return out;
  }

  int64_t parse_integer() {
    bool negative = false;
    if (text_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    if (pos_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[pos_]))) fail("expected digits");
    uint64_t v = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      if (__builtin_mul_overflow(v, uint64_t{10}, &v) || __builtin_add_overflow(v, uint64_t(text_[pos_] - '0'), &v) ||
          v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail("integer too large");
      ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'L' || text_[pos_] == 'l')) ++pos_;  // python 2
    return negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  }

  const std::string& text_;
  const std::string& name_;
  size_t pos_ = 0;
  int depth_ = 0;
};

DType npy_dtype_from_descr(const std::string& descr, const std::string& name) {
  std::string code = descr;
  char order = '|';
  if (!code.empty() && std::strchr("<>=|", code[0])) {
    order = code[0];
    code = code.substr(1);
  }
  const DTypeInfo* found = nullptr;
  for (const DTypeInfo& info : kDTypes)
    if (info.npy_code && code == info.npy_code) found = &info;
  PETL_CHECK(found != nullptr, name, ": unsupported dtype descr '", descr,
             "' (supported: <f8 <f4 <f2 <i8 <i4 <i2 |i1 |u1 |b1)");
  // One-byte types have no byte order; '>' on wider types would need a byte swap.
  PETL_CHECK(order != '>' || found->size == 1, name, ": big-endian dtype descr '", descr,
             "' is not supported (re-save the array as little-endian)");
  return found->dtype;
}

// Copies a Fortran-order (column-major) buffer into C order.
std::vector<uint8_t> fortran_to_c_order(const uint8_t* src, const std::vector<int64_t>& shape, size_t item_size,
                                        size_t nbytes) {
  std::vector<uint8_t> dst(nbytes);
  const size_t ndim = shape.size();
  if (ndim <= 1 || nbytes == 0) {
    if (nbytes) std::memcpy(dst.data(), src, nbytes);
    return dst;
  }
  std::vector<int64_t> fstride(ndim);  // element strides of the Fortran layout
  int64_t s = 1;
  for (size_t k = 0; k < ndim; ++k) {
    fstride[k] = s;
    s *= shape[k];
  }
  const int64_t numel = s;
  std::vector<int64_t> idx(ndim, 0);
  int64_t src_off = 0;
  for (int64_t out = 0; out < numel; ++out) {
    std::memcpy(dst.data() + out * item_size, src + src_off * item_size, item_size);
    for (size_t k = ndim; k-- > 0;) {  // advance the C-order multi-index
      if (++idx[k] < shape[k]) {
        src_off += fstride[k];
        break;
      }
      src_off -= (shape[k] - 1) * fstride[k];
      idx[k] = 0;
    }
  }
  return dst;
}

std::string npy_header_dict(const RawTensor& t) {
  const DTypeInfo& info = info_of(t.dtype);
  PETL_CHECK(info.npy_code != nullptr, "npy: dtype ", info.safetensors_name, " has no numpy equivalent");
  std::string descr = std::string(info.size == 1 ? "|" : "<") + info.npy_code;
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
  if (t.shape.size() == 1) shape += ",";
  shape += ")";
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

}  // namespace

// -----------------------------------------------------------------------------------------------
// DType / RawTensor

size_t dtype_size(DType d) { return info_of(d).size; }
std::string dtype_name(DType d) { return info_of(d).safetensors_name; }

int64_t RawTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// -----------------------------------------------------------------------------------------------
// safetensors

TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  const std::vector<uint8_t> file = read_whole_file(path, "safetensors");
  const std::string where = "safetensors file '" + path + "'";
  PETL_CHECK(file.size() >= 8, where, ": file too small (", file.size(),
             " bytes; expected at least the 8-byte header size)");
  const uint64_t header_size = read_u64_le(file.data());
  PETL_CHECK(header_size <= file.size() - 8, where, ": header size ", header_size, " exceeds the file (", file.size(),
             " bytes; truncated or not a safetensors file)");
  const uint8_t* data = file.data() + 8 + header_size;
  const uint64_t data_size = file.size() - 8 - header_size;

  json header;
  try {
    header = json::parse(file.data() + 8, file.data() + 8 + header_size);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    PETL_FAIL(where, ": header is not valid JSON: ", printable(e.what()));
  }
  PETL_CHECK(header.is_object(), where, ": header JSON is not an object");

  TensorMap tensors;
  if (metadata) metadata->clear();
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> ranges;
  for (const auto& [key, entry] : header.items()) {
    if (key == "__metadata__") {
      PETL_CHECK(entry.is_object(), where, ": key '__metadata__' is not an object");
      for (const auto& [mkey, mval] : entry.items()) {
        PETL_CHECK(mval.is_string(), where, ": __metadata__ key '", mkey, "' is not a string (found ", mval.dump(),
                   ")");
        if (metadata) (*metadata)[mkey] = mval.get<std::string>();
      }
      continue;
    }
    const std::string at = where + ": tensor '" + key + "'";
    PETL_CHECK(entry.is_object(), at, ": entry is not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      PETL_CHECK(entry.contains(field), at, ": missing field '", field, "'");

    const json& jdtype = entry["dtype"];
    PETL_CHECK(jdtype.is_string(), at, ": dtype is not a string");
    const std::string dtype_str = jdtype.get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const DTypeInfo& i : kDTypes)
      if (dtype_str == i.safetensors_name) info = &i;
    PETL_CHECK(info != nullptr, at, ": unknown dtype '", dtype_str,
               "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");

    const json& jshape = entry["shape"];
    PETL_CHECK(jshape.is_array(), at, ": shape is not an array");
    RawTensor t;
    t.dtype = info->dtype;
    for (const json& d : jshape) {
      PETL_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()), at,
                 ": shape ", jshape.dump(), " has an entry that is not a non-negative integer");
      t.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    uint64_t nbytes = 0;
    PETL_CHECK(checked_nbytes(t.shape, info->size, &nbytes), at, ": shape ", jshape.dump(), " is too large");

    const json& joff = entry["data_offsets"];
    PETL_CHECK(joff.is_array() && joff.size() == 2 && joff[0].is_number_unsigned() && joff[1].is_number_unsigned(), at,
               ": data_offsets ", joff.dump(), " is not a pair of non-negative integers");
    const uint64_t begin = joff[0].get<uint64_t>(), end = joff[1].get<uint64_t>();
    PETL_CHECK(begin <= end && end <= data_size, at, ": data_offsets [", begin, ", ", end,
               "] out of range (data section has ", data_size, " bytes; file truncated?)");
    PETL_CHECK(end - begin == nbytes, at, ": data_offsets [", begin, ", ", end, "] span ", end - begin,
               " bytes but dtype ", dtype_str, " shape ", jshape.dump(), " needs ", nbytes, " bytes");

    t.data.assign(data + begin, data + end);
    ranges.push_back({{begin, end}, key});
    tensors.emplace(key, std::move(t));
  }

  std::sort(ranges.begin(), ranges.end());
  const std::pair<std::pair<uint64_t, uint64_t>, std::string>* prev = nullptr;
  for (const auto& r : ranges) {
    if (r.first.first == r.first.second) continue;  // empty tensors occupy no bytes
    PETL_CHECK(prev == nullptr || prev->first.second <= r.first.first, where, ": tensor '", r.second,
               "' data_offsets [", r.first.first, ", ", r.first.second, "] overlap tensor '", prev->second, "' [",
               prev->first.first, ", ", prev->first.second, "]");
    prev = &r;
  }
  return tensors;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  const std::string where = "safetensors file '" + path + "'";
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  PETL_CHECK(in, where, ": cannot open: ", std::strerror(errno));
  const uint64_t file_size = uint64_t(in.tellg());
  uint8_t size_bytes[8];
  in.seekg(0);
  PETL_CHECK(file_size >= 8 && in.read(reinterpret_cast<char*>(size_bytes), 8), where, ": file too small (", file_size,
             " bytes; expected at least the 8-byte header size)");
  const uint64_t header_size = read_u64_le(size_bytes);
  PETL_CHECK(header_size <= file_size - 8, where, ": header size ", header_size, " exceeds the file (", file_size,
             " bytes; truncated or not a safetensors file)");
  std::string text(size_t(header_size), '\0');
  PETL_CHECK(in.read(text.data(), std::streamsize(header_size)), where, ": header unreadable");
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    PETL_FAIL(where, ": header is not valid JSON: ", printable(e.what()));
  }
  PETL_CHECK(header.is_object(), where, ": header JSON is not an object");
  std::map<std::string, std::string> metadata;
  auto it = header.find("__metadata__");
  if (it == header.end()) return metadata;
  PETL_CHECK(it->is_object(), where, ": key '__metadata__' is not an object");
  for (const auto& [mkey, mval] : it->items()) {
    PETL_CHECK(mval.is_string(), where, ": __metadata__ key '", mkey, "' is not a string (found ", mval.dump(), ")");
    metadata[mkey] = mval.get<std::string>();
  }
  return metadata;
}

void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string where = "safetensors file '" + path + "'";
  // Like the reference writer: widest dtype first, then by name, so every tensor is aligned to
  // its element size (the data section starts at a multiple of 8).
  std::vector<const TensorMap::value_type*> order;
  for (const auto& kv : tensors) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return dtype_size(a->second.dtype) > dtype_size(b->second.dtype);
  });

  json header = json::object();
  uint64_t offset = 0;
  std::vector<std::pair<const void*, size_t>> pieces(1);  // [0] = size + header, set below
  for (const auto* kv : order) {
    const std::string& name = kv->first;
    const RawTensor& t = kv->second;
    PETL_CHECK(name != "__metadata__", where, ": '__metadata__' cannot be a tensor name");
    uint64_t nbytes = 0;
    PETL_CHECK(checked_nbytes(t.shape, dtype_size(t.dtype), &nbytes), where, ": tensor '", name, "': invalid shape ",
               shape_str(t.shape));
    PETL_CHECK(t.data.size() == nbytes, where, ": tensor '", name, "': has ", t.data.size(), " data bytes but dtype ",
               dtype_name(t.dtype), " shape ", shape_str(t.shape), " needs ", nbytes);
    header[name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    pieces.emplace_back(t.data.data(), t.data.size());
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::string header_text;
  try {
    header_text = header.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::type_error& e) {
    PETL_FAIL(where, ": a tensor name or metadata string is not valid UTF-8: ", e.what());
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string prefix;
  append_le(prefix, header_text.size(), 8);
  prefix += header_text;
  pieces[0] = {prefix.data(), prefix.size()};
  write_file_atomic(path, "safetensors", pieces);
}

// -----------------------------------------------------------------------------------------------
// numpy

RawTensor parse_npy(const uint8_t* data, size_t size, const std::string& name_for_errors) {
  const std::string& name = name_for_errors;
  static const uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  PETL_CHECK(size >= 10 && std::memcmp(data, kMagic, 6) == 0, name,
             ": not a .npy file (missing \\x93NUMPY magic or shorter than 10 bytes)");
  const int major = data[6], minor = data[7];
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = read_u16_le(data + 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    PETL_CHECK(size >= 12, name, ": truncated header");
    header_len = read_u32_le(data + 8);
    header_start = 12;
  } else {
    PETL_FAIL(name, ": unsupported format version ", major, ".", minor);
  }
  PETL_CHECK(header_len <= size - header_start, name, ": header length ", header_len, " exceeds the ", size,
             "-byte file (truncated?)");
  const std::string header(reinterpret_cast<const char*>(data + header_start), header_len);

  const PyValue dict = PyLiteralParser(header, name).parse_all();
  PETL_CHECK(dict.kind == PyValue::Kind::dict, name, ": header is not a dict: ", printable(header));
  const PyValue* descr = nullptr;
  const PyValue* fortran = nullptr;
  const PyValue* shape = nullptr;
  for (const auto& [key, value] : dict.dict) {
    if (key == "descr")
      descr = &value;
    else if (key == "fortran_order")
      fortran = &value;
    else if (key == "shape")
      shape = &value;
  }
  PETL_CHECK(descr && fortran && shape, name,
             ": header lacks one of 'descr', 'fortran_order', 'shape': ", printable(header));
  PETL_CHECK(descr->kind == PyValue::Kind::string, name,
             ": structured or non-string dtype descr is not supported: ", printable(header));
  PETL_CHECK(fortran->kind == PyValue::Kind::boolean, name, ": 'fortran_order' is not True/False: ", printable(header));
  PETL_CHECK(shape->kind == PyValue::Kind::sequence, name, ": 'shape' is not a tuple: ", printable(header));

  RawTensor t;
  t.dtype = npy_dtype_from_descr(descr->str, name);
  for (const PyValue& d : shape->items) {
    PETL_CHECK(d.kind == PyValue::Kind::integer && d.integer >= 0, name,
               ": 'shape' entries must be non-negative integers: ", printable(header));
    t.shape.push_back(d.integer);
  }
  uint64_t nbytes = 0;
  PETL_CHECK(checked_nbytes(t.shape, dtype_size(t.dtype), &nbytes), name, ": shape ", shape_str(t.shape),
             " is too large");
  const size_t data_start = header_start + header_len;
  PETL_CHECK(size - data_start == nbytes, name, ": expected ", nbytes, " data bytes for descr '", descr->str,
             "' shape ", shape_str(t.shape), ", found ", size - data_start,
             size - data_start < nbytes ? " (truncated)" : "");
  if (fortran->boolean) {
    t.data = fortran_to_c_order(data + data_start, t.shape, dtype_size(t.dtype), nbytes);
  } else {
    t.data.assign(data + data_start, data + data_start + nbytes);
  }
  return t;
}

RawTensor read_npy(const std::string& path) {
  const std::vector<uint8_t> file = read_whole_file(path, "npy");
  return parse_npy(file.data(), file.size(), "npy file '" + path + "'");
}

void write_npy(const std::string& path, const RawTensor& t) {
  uint64_t nbytes = 0;
  PETL_CHECK(checked_nbytes(t.shape, dtype_size(t.dtype), &nbytes) && t.data.size() == nbytes, "npy file '", path,
             "': tensor has ", t.data.size(), " data bytes but dtype ", dtype_name(t.dtype), " shape ",
             shape_str(t.shape), " needs ", nbytes);
  std::string dict = npy_header_dict(t);
  // Total header (magic + version + length + dict + '\n') is padded to a multiple of 64.
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  PETL_CHECK(dict.size() <= 0xFFFF, "npy file '", path, "': header too long for format 1.0");
  std::string prefix("\x93NUMPY\x01\x00", 8);
  append_le(prefix, dict.size(), 2);
  prefix += dict;
  write_file_atomic(path, "npy", {{prefix.data(), prefix.size()}, {t.data.data(), t.data.size()}});
}

TensorMap read_npz(const std::string& path) {
  int err = 0;
  std::unique_ptr<zip_t, ZipCloser> archive(zip_open(path.c_str(), ZIP_RDONLY, &err));
  if (!archive) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    const std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    PETL_FAIL("npz file '", path, "': cannot open as a zip archive: ", msg);
  }
  // Sizes in the zip directory are checked against the archive's size before any allocation: a
  // corrupt directory may claim any size up to 2^64.
  struct stat archive_stat {};
  PETL_CHECK(::stat(path.c_str(), &archive_stat) == 0, "npz file '", path, "': stat failed: ", std::strerror(errno));
  const uint64_t archive_bytes = static_cast<uint64_t>(archive_stat.st_size);
  TensorMap tensors;
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    PETL_CHECK(
        zip_stat_index(archive.get(), i, 0, &st) == 0 && (st.valid & ZIP_STAT_NAME) && (st.valid & ZIP_STAT_SIZE),
        "npz file '", path, "': cannot stat member #", i, ": ", zip_strerror(archive.get()));
    const std::string member = st.name;
    const std::string suffix = ".npy";
    if (member.size() < suffix.size() || member.compare(member.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;  // directories and non-array members (numpy only writes .npy members)
    const std::string key = member.substr(0, member.size() - suffix.size());
    const std::string where = "npz file '" + path + "' member '" + member + "'";

    PETL_CHECK((st.valid & ZIP_STAT_COMP_SIZE) && st.comp_size <= archive_bytes, where, ": compressed size ",
               st.comp_size, " exceeds the ", archive_bytes, "-byte archive (truncated or corrupt)");
    // Deflate expands at most 1032:1; a stored member is as large as its compressed form.
    const bool stored = (st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE;
    const uint64_t max_size = stored ? st.comp_size : st.comp_size * 1032 + 64;
    PETL_CHECK(st.size <= max_size, where, ": recorded size ", st.size, " bytes cannot come from ", st.comp_size, " ",
               stored ? "stored" : "compressed", " bytes (corrupt archive)");

    std::unique_ptr<zip_file_t, ZipFileCloser> file(zip_fopen_index(archive.get(), i, 0));
    PETL_CHECK(file != nullptr, where, ": cannot open: ", zip_strerror(archive.get()));
    std::vector<uint8_t> buf(st.size);
    size_t done = 0;
    while (true) {  // read to EOF so libzip verifies the CRC
      uint8_t scratch[1];
      uint8_t* dst = done < buf.size() ? buf.data() + done : scratch;
      const zip_uint64_t want = done < buf.size() ? buf.size() - done : 1;
      const zip_int64_t n = zip_fread(file.get(), dst, want);
      PETL_CHECK(n >= 0, where, ": read failed (corrupt archive?): ", zip_file_strerror(file.get()));
      if (n == 0) break;
      PETL_CHECK(done < buf.size(), where, ": member is larger than its recorded size ", st.size);
      done += static_cast<size_t>(n);
    }
    PETL_CHECK(done == buf.size(), where, ": read ", done, " bytes, expected ", st.size);
    RawTensor t = parse_npy(buf.data(), buf.size(), where);
    PETL_CHECK(tensors.emplace(key, std::move(t)).second, where, ": duplicate key '", key, "'");
  }
  return tensors;
}

}  // namespace petl::io
