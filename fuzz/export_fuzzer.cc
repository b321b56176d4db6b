// MetaGraphDef filter on untrusted stored bytes: ExportMetaGraph (binary or text input)
// with an option set taken from the first two bytes of the input; the rest is the stored
// .meta. Where ExportMetaGraph uses its wire-level pass (only export_scope,
// clear_devices and collection_list set, binary input), its result must equal the
// message path's (export.h promises byte-identical output; see below).
#include <optional>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "fuzz/fuzz_target.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "metagraph/export.h"

namespace mgreg::fuzz {

namespace {

// Scopes that occur in the testdata graphs, plus edge cases (a regex metacharacter, an
// invalid regex, a trailing slash).
const char* const kScopes[] = {"",       "save",     "dnn",   "linear", "gradients", "a",
                               "W",      "a/b",      "save/", ".*",     "[",         "(",
                               "save_1", "training", "x+",    "\\"};
const char* const kCollections[] = {
    "variables", "trainable_variables", "savers",    "global_step",
    "train_op",  "unbound_inputs",      "summaries", "nope"};

std::string Canonical(const tensorflow::MetaGraphDef& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace

int FuzzOne(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  const uint8_t pick = in.Byte();
  ExportOptions options;
  options.clear_devices = flags & 0x01;
  options.strip_default_attrs = flags & 0x02;
  options.clear_extraneous_savers = flags & 0x04;
  options.as_text = flags & 0x08;
  if (flags & 0x10) {
    options.export_scope = kScopes[pick % (sizeof(kScopes) / sizeof(kScopes[0]))];
  }
  if (flags & 0x20) {
    std::vector<std::string> list;
    // Up to three collections, chosen by the bits of `pick`.
    for (int i = 0; i < 3 && (pick >> (2 * i + 2)) != 0; ++i) {
      list.push_back(kCollections[(pick >> (2 * i + 1)) % 8]);
    }
    options.collection_list = std::move(list);
  }
  if (flags & 0x40) options.unbound_inputs_col_name = std::nullopt;
  if (flags & 0x80) options.unbound_inputs_col_name = std::string("unbound_inputs_extra");
  const absl::string_view stored = in.Rest();

  absl::StatusOr<ExportResult> result = ExportMetaGraph(stored, options);
  if (!result.ok()) return 0;
  FUZZ_CHECK(result->node_count >= 0);

  // The fast path's claim: byte-identical to the message path on binary input.
  const bool fast_path_options = !options.strip_default_attrs &&
                                 !options.clear_extraneous_savers && !options.as_text;
  tensorflow::MetaGraphDef message;
  if (fast_path_options && message.ParseFromArray(stored.data(), stored.size())) {
    absl::StatusOr<ExportResult> reference = ExportMetaGraphMessage(message, options);
    if (reference.ok() && (options.export_scope.empty() == false ||
                           options.clear_devices || options.collection_list)) {
      // Byte-identical for canonically encoded input (all TensorFlow writes); the fast
      // path copies fields verbatim, so an input with non-minimal encodings (e.g. an
      // over-long varint) can come out a byte longer than the re-serialized message.
      // The messages must still be equal.
      if (reference->bytes != result->bytes) {
        tensorflow::MetaGraphDef fast, slow;
        FUZZ_CHECK(fast.ParseFromString(result->bytes));
        FUZZ_CHECK(slow.ParseFromString(reference->bytes));
        // Compared re-serialized (deterministically), so NaN values compare by bits.
        FUZZ_CHECK(Canonical(fast) == Canonical(slow));
      }
    }
  }
  return 0;
}

}  // namespace mgreg::fuzz
