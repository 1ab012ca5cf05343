// Image decoding (PNG/JPEG through Debian's stb), PIL-exact bicubic resizing and the
// normalisation profiles of docs/spec/vtab1k.md. Torch-free: callers copy the floats into tensors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace petl::data {

// 8-bit image, interleaved HWC, row-major. channels is 1 (L) or 3 (RGB).
struct Image8 {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Decodes a PNG or JPEG file; the result is converted to RGB the way PIL's .convert("RGB") does
// (grey → replicated, alpha dropped). Throws petl::Error naming the path when the file is
// missing or cannot be decoded.
Image8 decode_image_file(const std::string& path);
Image8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// Bit-exact Pillow Image.resize((w, h), Image.BICUBIC) for 8-bit images (Pillow's Resample.c:
// a = -0.5, support widened by the scale when shrinking, 22-bit fixed-point coefficients,
// horizontal pass then vertical, each rounded and clipped to uint8).
Image8 resize_bicubic_pil(const Image8& src, int out_w, int out_h);

// imagenet: torchvision's ImageNet mean/std; inception: mean = std = 0.5; clip: OpenAI CLIP's
// mean/std (the CLIP family's); none: x / 255.
enum class Normalisation { imagenet, inception, none, clip };
Normalisation parse_normalisation(const std::string& name);  // "imagenet" | "inception" | "clip" | "none"
std::string to_string(Normalisation n);

// Writes 3×H×W floats (CHW): x/255 then (x - mean)/std of the profile. src must be RGB.
void to_normalised_chw(const Image8& rgb, Normalisation norm, float* out);

// Writes an RGB or grey image as PNG (stb_image_write). Throws petl::Error on failure.
void write_png(const std::string& path, const Image8& img);

}  // namespace petl::data
