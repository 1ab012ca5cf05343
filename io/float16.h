// IEEE binary16 (float16) conversions, torch-free: how float16 feature caches are written and read.
// Reachable through io/feature_store.h.
#pragma once
#include <cstddef>
#include <cstdint>

namespace petl::io {

// IEEE binary16 conversions used for float16 datasets (round to nearest, ties to even;
// overflow → ±inf; NaN stays NaN (quiet); subnormals exact). Exposed for tests.
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);
void floats_to_halves(const float* in, uint16_t* out, size_t n);
void halves_to_floats(const uint16_t* in, float* out, size_t n);

}  // namespace petl::io
