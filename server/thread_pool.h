// A fixed-size pool of worker threads for work that must not run on a gRPC reactor
// (fsync, RocksDB reads and flushes, hashing). Thread-safe.
#ifndef MGREG_SERVER_THREAD_POOL_H_
#define MGREG_SERVER_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace mgreg {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  // Runs every task already submitted, then joins the threads.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> task);

 private:
  void Work();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_THREAD_POOL_H_
