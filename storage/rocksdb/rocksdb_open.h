// Opening the RocksDB backend on its own (to build a Store over it with NewBackedStore,
// or to drive it directly in backend tests), and opening a RocksDB store on a given
// RocksDB Env (tests inject faults with storage/testing/fault_injection_store.h).
#ifndef MGREG_STORAGE_ROCKSDB_ROCKSDB_OPEN_H_
#define MGREG_STORAGE_ROCKSDB_ROCKSDB_OPEN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "storage/backend.h"
#include "storage/store.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace mgreg {

// The backend of OpenRocksDbStore, with its errors. `env` (nullptr: the default file
// system) is the Env RocksDB does its file I/O through; the backend keeps it alive.
absl::StatusOr<std::shared_ptr<Backend>> OpenRocksDbBackend(
    const RocksDbStoreOptions& options, std::shared_ptr<rocksdb::Env> env = nullptr);

// OpenRocksDbStore on `env`.
absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const RocksDbStoreOptions& options, std::shared_ptr<rocksdb::Env> env);

}  // namespace mgreg

#endif  // MGREG_STORAGE_ROCKSDB_ROCKSDB_OPEN_H_
