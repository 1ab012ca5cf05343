// Gradient all-reduce over MPI ranks; see data_parallel.h.
#include "harness/train/data_parallel.h"

#include <mpi.h>

#include "core/error.h"

#ifdef PETL_WITH_NCCL
#include <nccl.h>

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace petl {

struct DataParallel::Nccl {
#ifdef PETL_WITH_NCCL
  ncclComm_t comm{};
#endif
};

DataParallel::DataParallel(int ranks, torch::Device device) : device_(device) {
  PETL_CHECK(ranks >= 1, "--dp must be >= 1, got ", ranks);
  if (ranks == 1) return;
  int init = 0;
  MPI_Initialized(&init);
  PETL_CHECK(init, "--dp ", ranks, ": run it under `mpirun -np ", ranks, " petl run ...` (MPI is not initialised)");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  PETL_CHECK(size_ == ranks, "--dp ", ranks, " but the MPI job has ", size_, " ranks (mpirun -np ", ranks, ")");
  if (device_.is_cuda()) {
#ifdef PETL_WITH_NCCL
    nccl_ = std::make_unique<Nccl>();
    c10::cuda::set_device(c10::DeviceIndex(std::max<int>(0, device_.index())));  // the communicator's GPU
    ncclUniqueId id;
    if (rank_ == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    PETL_CHECK(ncclCommInitRank(&nccl_->comm, size_, id, rank_) == ncclSuccess, "NCCL: ncclCommInitRank failed");
#else
    PETL_FAIL("--dp on a GPU needs NCCL, which this build does not have (CPU LibTorch or no NCCL found)");
#endif
  }
}

DataParallel::~DataParallel() {
#ifdef PETL_WITH_NCCL
  if (nccl_) ncclCommDestroy(nccl_->comm);
#endif
}

std::pair<int64_t, int64_t> DataParallel::slice(int64_t global) const {
  return {global * rank_ / size_, global * (rank_ + 1) / size_};
}

void DataParallel::broadcast(torch::Tensor& t) const {
  if (!active()) return;
  TORCH_INTERNAL_ASSERT(t.is_contiguous() && t.device().is_cpu() && t.scalar_type() == torch::kInt64);
  MPI_Bcast(t.data_ptr<int64_t>(), int(t.numel()), MPI_INT64_T, 0, MPI_COMM_WORLD);
}

void DataParallel::allreduce_gradients(const std::vector<torch::Tensor>& params) const {
  if (!active()) return;
  std::vector<torch::Tensor> grads;
  for (auto p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad().reshape({-1}));
  }
  auto flat = torch::cat(grads);  // one contiguous buffer: one collective per step
#ifdef PETL_WITH_NCCL
  if (flat.is_cuda()) {
    auto stream = c10::cuda::getCurrentCUDAStream(flat.device().index());
    PETL_CHECK(ncclAllReduce(flat.data_ptr<float>(), flat.data_ptr<float>(), flat.numel(), ncclFloat, ncclSum,
                             nccl_->comm, stream.stream()) == ncclSuccess,
               "NCCL: ncclAllReduce failed");
  } else
#endif
  {
    TORCH_INTERNAL_ASSERT(flat.device().is_cpu() && flat.scalar_type() == torch::kFloat32);
    MPI_Allreduce(MPI_IN_PLACE, flat.data_ptr<float>(), int(flat.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }
  int64_t off = 0;
  for (auto p : params) {
    const int64_t k = p.numel();
    p.mutable_grad().copy_(flat.narrow(0, off, k).view_as(p));
    off += k;
  }
}

double DataParallel::allreduce_sum(double v) const {
  if (!active()) return v;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return v;
}

std::string DataParallel::backend() const {
  if (!active()) return "none";
  return device_.is_cuda() ? "nccl" : "mpi_allreduce";
}

}  // namespace petl
