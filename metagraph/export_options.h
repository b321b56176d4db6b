// The API's GraphOptions (mgreg.v1) as the filter's ExportOptions: the one translation,
// used by the server and by `mgreg export`.
#ifndef MGREG_METAGRAPH_EXPORT_OPTIONS_H_
#define MGREG_METAGRAPH_EXPORT_OPTIONS_H_

#include "metagraph/export.h"
#include "mgreg/v1/registry.pb.h"

namespace mgreg {

// collection_list applies when has_collection_list is set or the list is non-empty;
// an empty unbound_inputs_col_name means TensorFlow's default "unbound_inputs", and
// no_unbound_inputs_col means none.
ExportOptions ExportOptionsFromApi(const v1::GraphOptions& options);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_EXPORT_OPTIONS_H_
