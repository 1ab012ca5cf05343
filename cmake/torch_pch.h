// Precompiled header shared by every torch translation unit (see CMakeLists.txt).
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <torch/torch.h>
#include <vector>
