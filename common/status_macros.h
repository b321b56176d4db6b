// The project's one propagation idiom for absl::Status / absl::StatusOr.
// (Debian's abseil 20220623 has no ABSL_RETURN_IF_ERROR.)
#ifndef MGREG_COMMON_STATUS_MACROS_H_
#define MGREG_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MGREG_CONCAT_INNER_(a, b) a##b
#define MGREG_CONCAT_(a, b) MGREG_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status mgreg_status_ = (expr);         \
    if (!mgreg_status_.ok()) return mgreg_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on error returns
// its status, otherwise moves the value into `lhs` (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  MGREG_ASSIGN_OR_RETURN_IMPL_(MGREG_CONCAT_(mgreg_statusor_, __LINE__), lhs, expr)

#define MGREG_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)  \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // MGREG_COMMON_STATUS_MACROS_H_
