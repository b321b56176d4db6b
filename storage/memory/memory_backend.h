// The in-memory backend on its own (NewMemoryStore is NewBackedStore over it), for
// tests that drive a backend directly.
#ifndef MGREG_STORAGE_MEMORY_MEMORY_BACKEND_H_
#define MGREG_STORAGE_MEMORY_MEMORY_BACKEND_H_

#include <memory>

#include "storage/backend.h"

namespace mgreg {

std::shared_ptr<Backend> NewMemoryBackend();

}  // namespace mgreg

#endif  // MGREG_STORAGE_MEMORY_MEMORY_BACKEND_H_
