// `petl import-checkpoint`: a checkpoint written by the authors' code (their state_dict names and
// layout, as safetensors; convert .pth with tools/pth_to_safetensors.py) → a petl checkpoint that
// `petl eval` loads strictly. The per-method mapping lives in the method's file
// (MethodSpec::import_authors); methods whose tensors already carry the authors' names need none.
#include <cstdio>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/error.h"
#include "methods/method.h"
#include "models/checkpoint.h"

namespace petl::cli {

int cmd_import_checkpoint(const Args& args) {
  std::string method, from = "authors", in, out;
  po::options_description d("petl import-checkpoint options");
  d.add_options()("method", po::value(&method)->required(), "method the checkpoint trained (see `petl list`)")(
      "from", po::value(&from)->default_value(from), "layout of the input: authors (the reference code's state_dict)")(
      "in", po::value(&in)->required(),
      "input checkpoint (.safetensors; convert a .pth with tools/pth_to_safetensors.py)")(
      "out", po::value(&out)->required(), "output petl checkpoint (.safetensors) for `petl eval --checkpoint`");
  po::positional_options_description pos;
  pos.add("in", 1).add("out", 1);
  po::variables_map vm;
  d.add_options()("help,h", "show this help and exit");
  try {
    po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: petl import-checkpoint --method M [--from authors] IN OUT\n"
                   "Renames (and re-lays out) the trainable tensors of a checkpoint written by the authors' code\n"
                   "(VPT, VQT, BitFit through VPT's ViT, AdaptFormer) to petl's names; the frozen backbone's\n"
                   "tensors it also holds are dropped (listed).\n\n"
                << d << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    fail_parse(e, d, "see --help");
  }
  PETL_CHECK(from == "authors", "--from '", from, "': expected authors");
  const MethodInfo& info = MethodRegistry::instance().get(method);
  PETL_CHECK(info.import_authors, "method ", method,
             ": its checkpoints already carry the authors' names; load it with `petl eval --checkpoint` directly");
  auto authors = load_named_tensors(in);
  std::vector<std::string> dropped;
  std::map<std::string, torch::Tensor> tensors;
  try {
    tensors = info.import_authors(authors, dropped);
  } catch (const Error& e) {
    PETL_FAIL(in, ": ", e.what());
  }
  std::vector<std::pair<std::string, torch::Tensor>> named(tensors.begin(), tensors.end());
  save_named_tensors(out, named, {{"method", method}, {"imported_from", in}, {"format", "pt"}});
  std::printf("%s: %zu tensors imported for %s, %zu of the authors' frozen-backbone tensors dropped → %s\n", in.c_str(),
              named.size(), method.c_str(), dropped.size(), out.c_str());
  for (auto& [k, v] : named) std::printf("  %-40s %s\n", k.c_str(), c10::str(v.sizes()).c_str());
  return 0;
}

}  // namespace petl::cli
