#include "metagraph/export_options.h"

namespace mgreg {

ExportOptions ExportOptionsFromApi(const v1::GraphOptions& o) {
  ExportOptions out;
  if (o.has_collection_list() || o.collection_list_size() > 0) {
    out.collection_list.emplace(o.collection_list().begin(), o.collection_list().end());
  }
  out.export_scope = o.export_scope();
  out.clear_devices = o.clear_devices();
  out.strip_default_attrs = o.strip_default_attrs();
  out.clear_extraneous_savers = o.clear_extraneous_savers();
  if (o.no_unbound_inputs_col()) {
    out.unbound_inputs_col_name.reset();
  } else if (!o.unbound_inputs_col_name().empty()) {
    out.unbound_inputs_col_name = o.unbound_inputs_col_name();
  }
  out.as_text = o.as_text();
  return out;
}

}  // namespace mgreg
