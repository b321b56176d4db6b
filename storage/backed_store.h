// The Store over a Backend: the one implementation of storage/store.h. It validates
// requests, serializes writes, asks the Planner what each mutation changes, and hands
// the transaction to the backend; reads go to the backend, with the contract's errors
// for what it did not find. OpenRocksDbStore and NewMemoryStore build one of these.
#ifndef MGREG_STORAGE_BACKED_STORE_H_
#define MGREG_STORAGE_BACKED_STORE_H_

#include <cstdint>
#include <memory>

#include "storage/backend.h"
#include "storage/store.h"

namespace mgreg {

// `event_window`: how many of the newest events the store keeps (at least 1); the
// backend trims what the planner's transactions tell it to.
std::unique_ptr<Store> NewBackedStore(std::shared_ptr<Backend> backend,
                                      int64_t event_window);

}  // namespace mgreg

#endif  // MGREG_STORAGE_BACKED_STORE_H_
