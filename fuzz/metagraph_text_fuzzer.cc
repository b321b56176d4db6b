// MetaGraphDef parsing of untrusted files (ParseMetaGraph: binary, else protobuf text
// format, as `mgreg export IN.meta` and the server's .meta validation read them). What
// parses must survive the round trip through the text export (as_text) and parse again
// with the same node count.
#include <cstdio>
#include <string>

#include "fuzz/fuzz_target.h"
#include "metagraph/export.h"
#include "metagraph/metagraph_io.h"

namespace mgreg::fuzz {

int FuzzOne(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tensorflow::MetaGraphDef> parsed = ParseMetaGraph(bytes);
  if (!parsed.ok()) return 0;
  ExportOptions as_text;
  as_text.as_text = true;
  absl::StatusOr<ExportResult> text = ExportMetaGraphMessage(*parsed, as_text);
  if (!text.ok()) return 0;
  absl::StatusOr<tensorflow::MetaGraphDef> again = ParseMetaGraph(text->bytes);
  if (!again.ok()) std::fprintf(stderr, "%s\n", again.status().ToString().c_str());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->graph_def().node_size() == parsed->graph_def().node_size());
  return 0;
}

}  // namespace mgreg::fuzz
