// Collection kinds a deployment registers besides TensorFlow's own 11 (R15, D5): a
// collection key whose bytes_list entries are serialized messages of a user's proto
// type, as the exporting program declared it with ops.register_proto_function. The
// registry cannot run that program's to_proto/from_proto, so a kind says, besides the
// message type, which string fields hold graph names and which of them decides whether
// an entry belongs to an export scope. With it:
//   - `mgreg collection` shows the entries as JSON objects / text-format messages, like
//     TensorFlow's registered kinds (metagraph/collection_view.h);
//   - export_scope filters and strips them the way a to_proto(export_scope=...) written
//     like TensorFlow's own does (metagraph/export.h): an entry whose scope field does
//     not start with the scope is dropped (its to_proto returns None, R14a), the others
//     have every name field stripped of the scope (strip_name_scope, R4); a stored
//     entry that does not parse as the type fails the export (FAILED_PRECONDITION, as
//     its from_proto fails the import). A kind without name fields is kept unchanged
//     (an entry without a name passes R13, and nothing in it names the graph).
//
// Thread safety: immutable once built; share it through std::shared_ptr<const ...>.
#ifndef MGREG_METAGRAPH_COLLECTION_KINDS_H_
#define MGREG_METAGRAPH_COLLECTION_KINDS_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"

namespace mgreg {

// One kind as configured (config.proto CollectionKind, with its descriptor set read).
struct CollectionKindSpec {
  std::string key;
  // The message type and everything it imports (protoc --include_imports -o).
  google::protobuf::FileDescriptorSet descriptor_set;
  // Where the set came from, for messages ("kinds.pb").
  std::string descriptor_set_name;
  // Full name, "mypkg.LayerDef".
  std::string message_type;
  // String fields holding graph names: "name", or a path through message fields
  // ("spec.input"); repeated fields anywhere on the path are walked element-wise.
  std::vector<std::string> name_fields;
  // A singular string field (a path as above, no repeated field on it) whose value must
  // start with the export scope; empty: the first of name_fields.
  std::string scope_field;
};

class CollectionKinds {
 public:
  // One registered kind.
  class Kind {
   public:
    const std::string& key() const { return key_; }
    const google::protobuf::Descriptor* type() const { return type_; }
    // A new, empty message of the type.
    std::unique_ptr<google::protobuf::Message> New() const;
    // The scope field's value in `m`; nullopt if the kind has no name fields.
    std::optional<std::string> ScopeName(const google::protobuf::Message& m) const;
    // Replaces every value v of every name field of `m` by strip(v).
    void StripNames(google::protobuf::Message* m,
                    const std::function<std::string(absl::string_view)>& strip) const;

   private:
    friend class CollectionKinds;
    using Path = std::vector<const google::protobuf::FieldDescriptor*>;
    std::string key_;
    std::unique_ptr<google::protobuf::DescriptorPool> pool_;
    std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
    const google::protobuf::Descriptor* type_ = nullptr;
    std::vector<Path> name_paths_;
    Path scope_path_;  // empty: no name fields
  };

  // Builds the kinds. Returns INVALID_ARGUMENT naming the kind's key and what to change
  // if a key is empty, repeated or one of TensorFlow's 11 registered keys, the
  // descriptor set does not build (a missing import: --include_imports), it has no such
  // message type (listing those it has), a field path names no field, goes through a
  // field that is not a message, or does not end at a string field, or the scope field
  // is repeated.
  static absl::StatusOr<std::shared_ptr<const CollectionKinds>> Create(
      const std::vector<CollectionKindSpec>& specs);

  // The kind registered for `key`, or nullptr.
  const Kind* Find(absl::string_view key) const;
  // The registered keys, sorted.
  std::vector<std::string> keys() const;

 private:
  CollectionKinds() = default;
  std::map<std::string, Kind, std::less<>> kinds_;
};

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_COLLECTION_KINDS_H_
