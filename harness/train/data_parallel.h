// Data parallelism inside one job (`petl run --dp N` under `mpirun -np N`): every rank holds the
// whole model, takes its contiguous slice of each global batch, and the gradients are summed over
// the ranks before the optimizer step — MPI_Allreduce on one flat host buffer on CPU, NCCL on GPU
// (compiled in only with a CUDA LibTorch and NCCL: PETL_WITH_NCCL). Each rank scales its loss by
// its share of the global batch, so the summed gradient is that of the global-batch mean loss:
// N ranks train like one rank with the same global batch (up to float summation order).
#pragma once
#include <memory>
#include <torch/torch.h>
#include <vector>

namespace petl {

class DataParallel {
 public:
  // ranks 1: a no-op group. ranks > 1: MPI must be initialised with exactly `ranks` processes.
  DataParallel(int ranks, torch::Device device);
  ~DataParallel();
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool active() const { return size_ > 1; }
  // This rank's rows [begin, end) of a global batch of `global` rows.
  std::pair<int64_t, int64_t> slice(int64_t global) const;
  // Same permutation on every rank (rank 0's).
  void broadcast(torch::Tensor& t) const;
  // Sum over ranks of every gradient (undefined gradients count as zeros).
  void allreduce_gradients(const std::vector<torch::Tensor>& params) const;
  double allreduce_sum(double v) const;
  std::string backend() const;

 private:
  int rank_ = 0, size_ = 1;
  torch::Device device_;
  struct Nccl;
  std::unique_ptr<Nccl> nccl_;
};

}  // namespace petl
