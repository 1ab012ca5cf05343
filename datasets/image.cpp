// Image decoding (PNG through Debian's compiled stb, JPEG through libjpeg-turbo as Pillow does), Pillow-exact bicubic
// resizing and the docs/spec/vtab1k.md normalisation profiles. The resize follows Pillow's src/libImaging/Resample.c
// (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc and the
// pass selection of ImagingResampleInner) so results are bit-identical to
// Image.resize((w, h), Image.BICUBIC) on 8-bit L/RGB images.
#include "datasets/image.h"

#include <jpeglib.h>
#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include "core/error.h"

namespace petl::data {
namespace {

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown reason";
}

// ------------------------------------------------------------------ Pillow's resampling

// Pillow's bicubic_filter with a = -0.5 (support 2).
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
constexpr double kBicubicSupport = 2.0;

// 8 bits of result, 2 bits of head room for filters with negative lobes (Pillow's comment).
constexpr int kPrecisionBits = 32 - 8 - 2;

inline uint8_t clip8(int32_t in) {
  const int32_t v = in >> kPrecisionBits;  // arithmetic shift, like Pillow's lookup index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Per output position: first input index, number of taps, and ksize fixed-point taps.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;    // 2 per output: xmin, xmax (count)
  std::vector<int32_t> taps;  // out_size * ksize, already normalised to kPrecisionBits
};

// precompute_coeffs + normalize_coeffs_8bpc for the box [in0, in1) of an axis of in_size.
Coeffs precompute_coeffs(int in_size, float in0, float in1, int out_size) {
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kBicubicSupport * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(size_t(out_size) * 2);
  c.taps.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as in C
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    int x = 0;
    for (; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    for (; x < c.ksize; ++x) k[x] = 0;
    for (x = 0; x < c.ksize; ++x) {  // normalize_coeffs_8bpc
      const double v = k[x] * (1 << kPrecisionBits);
      c.taps[size_t(xx) * c.ksize + x] = static_cast<int32_t>(k[x] < 0 ? -0.5 + v : 0.5 + v);
    }
    c.bounds[size_t(xx) * 2] = xmin;
    c.bounds[size_t(xx) * 2 + 1] = xmax;
  }
  return c;
}

// ImagingResampleHorizontal_8bpc: rows [offset, offset + out.height) of `in` → out.
void resample_horizontal(Image8& out, const Image8& in, int offset, const Coeffs& c) {
  const int ch = in.channels;
  for (int yy = 0; yy < out.height; ++yy) {
    const uint8_t* row = in.pixels.data() + size_t(yy + offset) * in.width * ch;
    uint8_t* dst = out.pixels.data() + size_t(yy) * out.width * ch;
    for (int xx = 0; xx < out.width; ++xx) {
      const int xmin = c.bounds[size_t(xx) * 2], xmax = c.bounds[size_t(xx) * 2 + 1];
      const int32_t* k = c.taps.data() + size_t(xx) * c.ksize;
      for (int b = 0; b < ch; ++b) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < xmax; ++x) ss += int32_t(row[(x + xmin) * ch + b]) * k[x];
        dst[xx * ch + b] = clip8(ss);
      }
    }
  }
}

// ImagingResampleVertical_8bpc.
void resample_vertical(Image8& out, const Image8& in, const Coeffs& c) {
  const int ch = in.channels;
  const size_t stride = size_t(in.width) * ch;
  for (int yy = 0; yy < out.height; ++yy) {
    const int ymin = c.bounds[size_t(yy) * 2], ymax = c.bounds[size_t(yy) * 2 + 1];
    const int32_t* k = c.taps.data() + size_t(yy) * c.ksize;
    uint8_t* dst = out.pixels.data() + size_t(yy) * stride;
    for (size_t i = 0; i < stride; ++i) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) ss += int32_t(in.pixels[size_t(y + ymin) * stride + i]) * k[y];
      dst[i] = clip8(ss);
    }
  }
}

Image8 blank(int w, int h, int ch) {
  Image8 img;
  img.width = w;
  img.height = h;
  img.channels = ch;
  img.pixels.resize(size_t(w) * h * ch);
  return img;
}

}  // namespace

// ------------------------------------------------------------------ decoding

namespace {
// JPEG through libjpeg(-turbo) with its defaults (ISLOW DCT, fancy upsampling), as Pillow decodes
// JPEGs, so JPEG pixels are bit-identical to PIL's (stb's decoder differs by up to 3/255).
struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}
void jpeg_silence(j_common_ptr, int) {}

// The two libjpeg stages run in frames that hold no C++ objects, so an error's longjmp skips
// no destructor.
struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegError err;
};
int jpeg_header(JpegState* st, const uint8_t* data, size_t size) {
  if (setjmp(st->err.jump)) return 0;
  jpeg_mem_src(&st->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&st->cinfo, TRUE);
  if (st->cinfo.jpeg_color_space == JCS_CMYK || st->cinfo.jpeg_color_space == JCS_YCCK) return -1;
  st->cinfo.out_color_space = st->cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&st->cinfo);
  return 1;
}
int jpeg_pixels(JpegState* st, uint8_t* buf, size_t row_bytes) {
  if (setjmp(st->err.jump)) return 0;
  while (st->cinfo.output_scanline < st->cinfo.output_height) {
    JSAMPROW rows[1] = {buf + size_t(st->cinfo.output_scanline) * row_bytes};
    jpeg_read_scanlines(&st->cinfo, rows, 1);
  }
  jpeg_finish_decompress(&st->cinfo);
  return 1;
}

Image8 decode_jpeg(const uint8_t* data, size_t size, const std::string& name) {
  JpegState st;
  st.cinfo.err = jpeg_std_error(&st.err.mgr);
  st.err.mgr.error_exit = jpeg_error_exit;
  st.err.mgr.emit_message = jpeg_silence;
  st.err.message[0] = 0;
  jpeg_create_decompress(&st.cinfo);
  const int h = jpeg_header(&st, data, size);
  if (h != 1) {
    jpeg_destroy_decompress(&st.cinfo);
    if (h < 0) PETL_FAIL("cannot decode image ", name, ": CMYK JPEGs are not supported (convert to RGB)");
    PETL_FAIL("cannot decode image ", name, ": ", st.err.message);
  }
  const int w = int(st.cinfo.output_width), ht = int(st.cinfo.output_height), c = st.cinfo.output_components;
  std::vector<uint8_t> buf(size_t(w) * ht * c);
  if (!jpeg_pixels(&st, buf.data(), size_t(w) * c)) {
    jpeg_destroy_decompress(&st.cinfo);
    PETL_FAIL("cannot decode image ", name, ": ", st.err.message);
  }
  jpeg_destroy_decompress(&st.cinfo);
  if (c == 3) {
    Image8 img;
    img.width = w;
    img.height = ht;
    img.channels = 3;
    img.pixels = std::move(buf);
    return img;
  }
  Image8 img = blank(w, ht, 3);  // grey → RGB as PIL's convert("RGB")
  for (size_t i = 0; i < size_t(w) * ht; ++i)
    img.pixels[3 * i] = img.pixels[3 * i + 1] = img.pixels[3 * i + 2] = buf[i];
  return img;
}
}  // namespace

Image8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors) {
  PETL_CHECK(size > 0, "cannot decode image ", name_for_errors, ": empty file");
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
    return decode_jpeg(data, size, name_for_errors);
  PETL_CHECK(size <= size_t(INT_MAX), "cannot decode image ", name_for_errors, ": file too large (", size, " bytes)");
  const int len = static_cast<int>(size);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &comp))
    PETL_FAIL("cannot decode image ", name_for_errors, ": ", stb_reason());

  Image8 img;
  if (comp == 1 && stbi_is_16_bit_from_memory(data, len)) {
    // PIL opens 16-bit grey PNGs as mode "I"; convert("RGB") clamps each value to [0, 255].
    std::unique_ptr<stbi_us, StbFree> px(stbi_load_16_from_memory(data, len, &w, &h, &comp, 1));
    if (!px) PETL_FAIL("cannot decode image ", name_for_errors, ": ", stb_reason());
    img = blank(w, h, 3);
    for (size_t i = 0; i < size_t(w) * h; ++i) {
      const uint8_t v = static_cast<uint8_t>(std::min<int>(px.get()[i], 255));
      img.pixels[i * 3] = img.pixels[i * 3 + 1] = img.pixels[i * 3 + 2] = v;
    }
    return img;
  }
  // stb's 3-channel conversion equals PIL's convert("RGB") for L, LA, RGB, RGBA, P (palette
  // expanded) and 16-bit RGB/RGBA/LA (both keep the high byte).
  std::unique_ptr<stbi_uc, StbFree> px(stbi_load_from_memory(data, len, &w, &h, &comp, 3));
  if (!px) PETL_FAIL("cannot decode image ", name_for_errors, ": ", stb_reason());
  img = blank(w, h, 3);
  std::memcpy(img.pixels.data(), px.get(), img.pixels.size());
  return img;
}

Image8 decode_image_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) PETL_FAIL("cannot open image ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) PETL_FAIL("cannot read image ", path, ": read error");
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

// ------------------------------------------------------------------ resizing

Image8 resize_bicubic_pil(const Image8& src, int out_w, int out_h) {
  PETL_CHECK(src.width > 0 && src.height > 0 && src.channels > 0, "resize_bicubic_pil: empty source image (", src.width,
             "x", src.height, "x", src.channels, ")");
  PETL_CHECK(src.pixels.size() == size_t(src.width) * src.height * src.channels,
             "resize_bicubic_pil: pixel buffer holds ", src.pixels.size(), " bytes, expected ",
             size_t(src.width) * src.height * src.channels);
  PETL_CHECK(out_w > 0 && out_h > 0, "resize_bicubic_pil: output size must be positive, got ", out_w, "x", out_h);
  // Image.resize returns a copy when the size is unchanged and the box is the whole image.
  if (out_w == src.width && out_h == src.height) return src;

  // ImagingResampleInner with box = (0, 0, width, height).
  const bool need_horizontal = out_w != src.width;
  const bool need_vertical = out_h != src.height;
  const Coeffs horiz = precompute_coeffs(src.width, 0.f, float(src.width), out_w);
  Coeffs vert = precompute_coeffs(src.height, 0.f, float(src.height), out_h);
  // Source rows the vertical pass reads; the horizontal pass computes only those.
  const int ybox_first = vert.bounds[0];
  const int ybox_last = vert.bounds[size_t(out_h) * 2 - 2] + vert.bounds[size_t(out_h) * 2 - 1];

  const Image8* in = &src;
  Image8 temp;
  if (need_horizontal) {
    for (int i = 0; i < out_h; ++i) vert.bounds[size_t(i) * 2] -= ybox_first;
    temp = blank(out_w, ybox_last - ybox_first, src.channels);
    resample_horizontal(temp, src, ybox_first, horiz);
    in = &temp;
  }
  if (!need_vertical) return need_horizontal ? temp : src;
  Image8 out = blank(in->width, out_h, src.channels);
  resample_vertical(out, *in, vert);
  return out;
}

// ------------------------------------------------------------------ normalisation

Normalisation parse_normalisation(const std::string& name) {
  if (name == "imagenet") return Normalisation::imagenet;
  if (name == "inception") return Normalisation::inception;
  if (name == "none") return Normalisation::none;
  if (name == "clip") return Normalisation::clip;
  PETL_FAIL("unknown normalisation '", name, "': expected imagenet, inception, clip or none");
}

std::string to_string(Normalisation n) {
  switch (n) {
    case Normalisation::imagenet:
      return "imagenet";
    case Normalisation::inception:
      return "inception";
    case Normalisation::none:
      return "none";
    case Normalisation::clip:
      return "clip";
  }
  return "?";
}

void to_normalised_chw(const Image8& rgb, Normalisation norm, float* out) {
  PETL_CHECK(rgb.channels == 3, "to_normalised_chw: expected an RGB image, got ", rgb.channels, " channel(s)");
  PETL_CHECK(rgb.pixels.size() == size_t(rgb.width) * rgb.height * 3,
             "to_normalised_chw: pixel buffer size does not match ", rgb.width, "x", rgb.height);
  // float32 arithmetic in torchvision's order: ToTensor (x / 255), Normalize ((x - mean) / std).
  float mean[3] = {0.f, 0.f, 0.f}, stdev[3] = {1.f, 1.f, 1.f};
  if (norm == Normalisation::imagenet) {
    const float m[3] = {0.485f, 0.456f, 0.406f}, s[3] = {0.229f, 0.224f, 0.225f};
    std::copy(m, m + 3, mean);
    std::copy(s, s + 3, stdev);
  } else if (norm == Normalisation::inception) {
    std::fill(mean, mean + 3, 0.5f);
    std::fill(stdev, stdev + 3, 0.5f);
  } else if (norm == Normalisation::clip) {  // openai/CLIP clip.py _transform
    const float m[3] = {0.48145466f, 0.4578275f, 0.40821073f}, s[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    std::copy(m, m + 3, mean);
    std::copy(s, s + 3, stdev);
  }
  const size_t plane = size_t(rgb.width) * rgb.height;
  for (int c = 0; c < 3; ++c) {
    float* dst = out + c * plane;
    if (norm == Normalisation::none) {
      for (size_t i = 0; i < plane; ++i) dst[i] = float(rgb.pixels[i * 3 + c]) / 255.0f;
    } else {
      for (size_t i = 0; i < plane; ++i) dst[i] = (float(rgb.pixels[i * 3 + c]) / 255.0f - mean[c]) / stdev[c];
    }
  }
}

// ------------------------------------------------------------------ writing

void write_png(const std::string& path, const Image8& img) {
  PETL_CHECK(img.channels == 1 || img.channels == 3, "write_png ", path, ": expected 1 or 3 channels, got ",
             img.channels);
  PETL_CHECK(img.width > 0 && img.height > 0 && img.pixels.size() == size_t(img.width) * img.height * img.channels,
             "write_png ", path, ": bad image ", img.width, "x", img.height, "x", img.channels);
  if (!stbi_write_png(path.c_str(), img.width, img.height, img.channels, img.pixels.data(), img.width * img.channels))
    PETL_FAIL("write_png: cannot write ", path, ": ", std::strerror(errno));
}

}  // namespace petl::data
