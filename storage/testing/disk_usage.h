// What a data directory costs on disk, for tests and benchmarks of the space the store
// gives back (tests/storage/rocksdb/rocksdb_space_test.cc, bench/space_bench.cc).
#ifndef MGREG_STORAGE_TESTING_DISK_USAGE_H_
#define MGREG_STORAGE_TESTING_DISK_USAGE_H_

#include <cstdint>
#include <string>

namespace mgreg {

// Bytes the regular files under `dir` occupy on disk (allocated blocks, as du counts
// them; sparse holes are not counted). 0 for a directory that cannot be read.
int64_t DiskBytes(const std::string& dir);

}  // namespace mgreg

#endif  // MGREG_STORAGE_TESTING_DISK_USAGE_H_
