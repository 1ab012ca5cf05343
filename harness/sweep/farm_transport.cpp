// The farm's messages over MPI, or none in one process (see farm_transport.h).
#include "harness/sweep/farm_transport.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/system.h"

namespace petl {

namespace {
// The CPUs in this process's affinity mask (all of the machine's when it cannot be read).
cpu_set_t affinity(int* count) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  if (sched_getaffinity(0, sizeof mine, &mine) == 0) {
    *count = CPU_COUNT(&mine);
  } else {
    *count = int(std::max(1u, std::thread::hardware_concurrency()));
    CPU_ZERO(&mine);
  }
  return mine;
}

int threads_per_job(int threads_opt, int cpus, int sharers, int slots) {
  if (threads_opt > 0) return threads_opt;
  return std::max(1, cpus / std::max(1, sharers) / std::max(1, slots));
}
}  // namespace

MpiTransport::MpiTransport(MPI_Comm comm, int threads_opt, int slots) : comm_(comm) {
  MPI_Comm_rank(comm, &info_.rank);
  MPI_Comm_size(comm, &info_.size);
  info_.host = host_name();
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, info_.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &info_.local_rank);
  MPI_Comm_size(node, &info_.local_size);
  int cpus = 0;
  cpu_set_t mine = affinity(&cpus);
  std::vector<cpu_set_t> all(size_t(info_.local_size));
  MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE, node);
  MPI_Comm_free(&node);
  int sharers = 0;
  for (auto& s : all)
    if (CPU_EQUAL(&s, &mine)) ++sharers;
  info_.threads = threads_per_job(threads_opt, cpus, sharers, slots);
}

void MpiTransport::send(int dest, FarmTag tag, std::string payload) {
  pending_.emplace_back();
  auto& p = pending_.back();
  p.buf = std::move(payload);
  MPI_Isend(p.buf.data(), int(p.buf.size()), MPI_CHAR, dest, int(tag), comm_, &p.req);
}

std::optional<FarmMessage> MpiTransport::receive(int source) {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(source < 0 ? MPI_ANY_SOURCE : source, MPI_ANY_TAG, comm_, &flag, &st);
  if (!flag) return std::nullopt;
  int n = 0;
  MPI_Get_count(&st, MPI_CHAR, &n);
  FarmMessage m;
  m.payload.assign(size_t(n), '\0');
  MPI_Recv(n ? &m.payload[0] : nullptr, n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, comm_, MPI_STATUS_IGNORE);
  m.source = st.MPI_SOURCE;
  m.tag = FarmTag(st.MPI_TAG);
  return m;
}

void MpiTransport::progress() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    int done = 0;
    MPI_Test(&it->req, &done, MPI_STATUS_IGNORE);
    it = done ? pending_.erase(it) : std::next(it);
  }
}

void MpiTransport::wait_all() {
  for (auto& p : pending_) MPI_Wait(&p.req, MPI_STATUS_IGNORE);
  pending_.clear();
}

void MpiTransport::abort(int code) {
  MPI_Abort(comm_, code);
  std::_Exit(code);
}

LocalTransport::LocalTransport(int threads_opt, int slots) {
  info_.host = host_name();
  int cpus = 0;
  affinity(&cpus);
  info_.threads = threads_per_job(threads_opt, cpus, 1, slots);
}

void LocalTransport::abort(int code) { std::_Exit(code); }

}  // namespace petl
