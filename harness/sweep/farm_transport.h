// The messages between the farm's rank 0 and its other ranks (harness/sweep/farm.h), and where a
// rank runs: MPI (`petl sweep`), or one process and no MPI at all (`petl demo`).
//
// Messages (payload a string): worker → 0: kIdle (a slot is free), kResult (the JSON outcome of a
// job just run; also means its slot is free), kSignal (this rank got SIGTERM/SIGUSR2/SIGINT;
// payload the signal number), kBye (the last message of a worker); 0 → worker: kJob (a JSON job),
// kStop (JSON {"code": exit code}: finish or stop now; sent once per worker). Every send is a
// non-blocking send completed before the farm returns; rank 0 keeps receiving until every
// worker's kBye, so no message is left unmatched at MPI_Finalize.
#pragma once
#include <mpi.h>

#include <list>
#include <optional>
#include <string>

#include "harness/sweep/process_pool.h"

namespace petl {

enum class FarmTag : int { kIdle = 7101, kResult = 7102, kSignal = 7103, kBye = 7104, kJob = 7201, kStop = 7202 };

struct FarmMessage {
  int source = 0;
  FarmTag tag = FarmTag::kIdle;
  std::string payload;
};

class FarmTransport {
 public:
  virtual ~FarmTransport() = default;
  virtual const RankInfo& info() const = 0;
  virtual void send(int dest, FarmTag tag, std::string payload) = 0;
  // The next message from `source` (any rank when -1), without blocking.
  virtual std::optional<FarmMessage> receive(int source) = 0;
  virtual void progress() = 0;  // completes the sends that can complete
  virtual void wait_all() = 0;  // completes every send
  [[noreturn]] virtual void abort(int code) = 0;
};

// The ranks of an MPI communicator. Threads per job (threads_opt == 0): the CPUs of this rank's
// affinity mask, divided among the node's ranks with the same mask and among the slots.
class MpiTransport final : public FarmTransport {
 public:
  MpiTransport(MPI_Comm comm, int threads_opt, int slots);
  const RankInfo& info() const override { return info_; }
  void send(int dest, FarmTag tag, std::string payload) override;
  std::optional<FarmMessage> receive(int source) override;
  void progress() override;
  void wait_all() override;
  [[noreturn]] void abort(int code) override;

 private:
  struct Pending {
    std::string buf;
    MPI_Request req;
  };
  MPI_Comm comm_;
  RankInfo info_;
  std::list<Pending> pending_;  // list: the buffers' addresses stay valid
};

// One process, no MPI: rank 0 of 1; nothing is ever sent.
class LocalTransport final : public FarmTransport {
 public:
  LocalTransport(int threads_opt, int slots);
  const RankInfo& info() const override { return info_; }
  void send(int, FarmTag, std::string) override {}
  std::optional<FarmMessage> receive(int) override { return std::nullopt; }
  void progress() override {}
  void wait_all() override {}
  [[noreturn]] void abort(int code) override;

 private:
  RankInfo info_;
};

}  // namespace petl
