// Surgery on a closed RocksDB store, for tests only: breaks one invariant of the
// store's layout (DESIGN §8) behind the Store's back, so that Store::Check and
// `mgreg admin check` must report it.
#ifndef MGREG_TESTS_TESTING_STORE_SURGERY_H_
#define MGREG_TESTS_TESTING_STORE_SURGERY_H_

#include <string>

#include "absl/status/statusor.h"

namespace mgreg::testing {

enum class Damage {
  kMissingChunk,        // delete the bytes of a referenced chunk
  kLeakedChunk,         // store a chunk nothing references, without a staging marker
  kWrongChunkRefcount,  // add one to a referenced chunk's refcount
  kMisfiledBlob,        // copy a blob record under a key that is not its digest
};

// Applies `damage` to the store in `path` (closed) and returns the name of the chunk
// involved as Check prints it (the first 16 hex digits of its SHA-256); for
// kMisfiledBlob, the key the copy was filed under.
absl::StatusOr<std::string> DamageStore(const std::string& path, Damage damage);

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_STORE_SURGERY_H_
