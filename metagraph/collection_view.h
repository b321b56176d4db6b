// One collection of a stored MetaGraphDef, for `mgreg collection MODEL KEY` (reading e.g.
// `hparams` without fetching the graph). Pure functions, thread-safe.
#ifndef MGREG_METAGRAPH_COLLECTION_VIEW_H_
#define MGREG_METAGRAPH_COLLECTION_VIEW_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mgreg {

class CollectionKinds;  // metagraph/collection_kinds.h

// One collection of a stored graph (binary or text MetaGraphDef) as JSON:
//   {"key": K, "kind": "node_list|bytes_list|int64_list|float_list|any_list|none",
//    "values": [...]}
// node_list values are strings; int64_list and float_list values numbers (NaN and
// infinities as the strings "NaN", "Infinity", "-Infinity"); any_list values objects
// {"type_url": ..., "value": base64}. bytes_list values of the 11 registered keys
// (variables, trainable_variables, local_variables, model_variables,
// moving_average_variables, global_step, metric_variables, savers, queue_runners,
// cond_context, while_context) are objects with the fields of VariableDef, SaverDef,
// QueueRunnerDef, CondContextDef or WhileContextDef (proto field names, proto3 JSON
// mapping: int64 as strings, enums by name); other bytes are a string if they are valid
// UTF-8, else their base64. An entry of a registered key that does not parse as its proto
// is shown like other bytes. The keys of `kinds` (collection kinds the server's config
// registers; may be null) are shown like registered keys, as objects of their type.
// "none" (no kind set) has no values.
// Returns INVALID_ARGUMENT if `stored_metagraph` is not a MetaGraphDef, NOT_FOUND listing
// the available keys if `key` is absent.
absl::StatusOr<std::string> CollectionToJson(absl::string_view stored_metagraph,
                                             absl::string_view key,
                                             const CollectionKinds* kinds = nullptr);

// The same collection as text, one value per line (no header): strings as they are with
// control characters and backslashes C-escaped, non-UTF-8 bytes as "base64:<base64>",
// registered protos in one-line protobuf text format, numbers in decimal, Any values as
// "<type_url> base64:<value>". Empty for an empty collection. Same errors as
// CollectionToJson.
absl::StatusOr<std::string> CollectionToText(absl::string_view stored_metagraph,
                                             absl::string_view key,
                                             const CollectionKinds* kinds = nullptr);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_COLLECTION_VIEW_H_
