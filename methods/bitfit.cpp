// bitfit — BitFit (Ben Zaken et al., ACL 2022) on the ViT: every bias vector of the frozen
// backbone trains (patch embedding, qkv, proj, fc1, fc2, norm1/norm2/final-norm biases), plus a
// new head on the final-norm cls token. Follows the only reference implementation of BitFit for
// ViT in these codebases, KMnP/vpt's transfer type "tinytl-bias": every encoder tensor whose name
// contains "bias" (here: timm names ending ".bias"; checkpoints carry those names), the encoder
// kept in eval mode (no stochastic depth), head as VPT's (kaiming_normal fan_out, bias −log 99).
// ViT-B/16: 102,912 trainable tensors' elements without the head (docs/spec/baselines.md "~0.10M").
// Settings: none. Authors' checkpoints (`petl import-checkpoint`): VPT's ViT has separate
// query/key/value Linears (enc.transformer.encoder.layer.{i}.attn.{query,key,value}.bias,
// concatenated into qkv.bias), attention_norm/ffn_norm/ffn.fc1/ffn.fc2/attn.out biases, and
// head.last_layer.
#include "methods/common.h"

namespace petl {
namespace {

class BitFit : public methods::HookedMethod {
 public:
  explicit BitFit(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::vpt) {
    for (auto& item : backbone_->module().named_parameters(true)) {
      const auto& k = item.key();
      const bool is_bias = k.size() >= 5 && k.compare(k.size() - 5, 5, ".bias") == 0;
      item.value().set_requires_grad(is_bias);
    }
    backbone_always_eval_ = true;  // froze_enc: the encoder stays in eval mode
  }
};

PETL_REGISTER_METHOD(MethodSpec("bitfit")
                         .describe("BitFit: every backbone bias vector + head")
                         .recipe("noah")
                         .import_authors(methods::import_vpt_vit_biases)
                         .make<BitFit>());

}  // namespace
}  // namespace petl
