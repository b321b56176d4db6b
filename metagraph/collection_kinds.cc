// CollectionKinds (metagraph/collection_kinds.h).
#include "metagraph/collection_kinds.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "metagraph/export_internal.h"

namespace mgreg {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Collects the first error of building the descriptor set.
class FirstError : public google::protobuf::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name,
                const Message*, ErrorLocation, const std::string& message) override {
    if (error_.empty())
      error_ = absl::StrCat(filename, ": ", element_name, ": ", message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

void MessageTypes(const Descriptor* d, std::vector<std::string>* out) {
  out->push_back(d->full_name());
  for (int i = 0; i < d->nested_type_count(); ++i) MessageTypes(d->nested_type(i), out);
}

// Applies `fn` to every string value at the end of `path` under `m`.
void ForEachValue(Message* m, const std::vector<const FieldDescriptor*>& path, size_t at,
                  const std::function<void(Message*, const FieldDescriptor*, int)>& fn) {
  const FieldDescriptor* f = path[at];
  const Reflection* r = m->GetReflection();
  const bool last = at + 1 == path.size();
  if (f->is_repeated()) {
    for (int i = 0; i < r->FieldSize(*m, f); ++i) {
      if (last) {
        fn(m, f, i);
      } else {
        ForEachValue(r->MutableRepeatedMessage(m, f, i), path, at + 1, fn);
      }
    }
    return;
  }
  if (last) {
    fn(m, f, -1);
  } else if (r->HasField(*m, f)) {
    ForEachValue(r->MutableMessage(m, f), path, at + 1, fn);
  }
}

}  // namespace

std::unique_ptr<Message> CollectionKinds::Kind::New() const {
  return std::unique_ptr<Message>(factory_->GetPrototype(type_)->New());
}

std::optional<std::string> CollectionKinds::Kind::ScopeName(const Message& m) const {
  if (scope_path_.empty()) return std::nullopt;
  const Message* at = &m;
  for (size_t i = 0; i + 1 < scope_path_.size(); ++i) {
    at = &at->GetReflection()->GetMessage(*at, scope_path_[i]);
  }
  return at->GetReflection()->GetString(*at, scope_path_.back());
}

void CollectionKinds::Kind::StripNames(
    Message* m, const std::function<std::string(absl::string_view)>& strip) const {
  for (const Path& path : name_paths_) {
    ForEachValue(m, path, 0, [&](Message* owner, const FieldDescriptor* f, int index) {
      const Reflection* r = owner->GetReflection();
      if (index < 0) {
        // An unset singular field stays unset (TensorFlow copies only what is there).
        if (f->has_presence() && !r->HasField(*owner, f)) return;
        r->SetString(owner, f, strip(r->GetString(*owner, f)));
      } else {
        r->SetRepeatedString(owner, f, index,
                             strip(r->GetRepeatedString(*owner, f, index)));
      }
    });
  }
}

absl::StatusOr<std::shared_ptr<const CollectionKinds>> CollectionKinds::Create(
    const std::vector<CollectionKindSpec>& specs) {
  std::shared_ptr<CollectionKinds> kinds(new CollectionKinds());
  for (const CollectionKindSpec& spec : specs) {
    const std::string what =
        absl::StrCat("collection kind '", spec.key, "' (", spec.descriptor_set_name, ")");
    auto invalid = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
    };
    if (spec.key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a collection kind (", spec.descriptor_set_name,
                       ") has no key; set `key` to the collection's name"));
    }
    if (export_internal::NewRegisteredProto(spec.key) != nullptr) {
      return invalid(
          "is one of TensorFlow's own registered collections, whose type and export "
          "rules are fixed; pick another key");
    }
    if (kinds->kinds_.count(spec.key) > 0) {
      return invalid("is declared twice; keep one declaration per key");
    }
    Kind kind;
    kind.key_ = spec.key;
    kind.pool_ = std::make_unique<google::protobuf::DescriptorPool>();
    FirstError errors;
    for (const auto& file : spec.descriptor_set.file()) {
      if (kind.pool_->FindFileByName(file.name()) != nullptr) continue;
      if (kind.pool_->BuildFileCollectingErrors(file, &errors) == nullptr) {
        return invalid(absl::StrCat("the descriptor set does not build (", errors.error(),
                                    "); write it with protoc --include_imports -o FILE "
                                    "so it holds every import"));
      }
    }
    kind.type_ = kind.pool_->FindMessageTypeByName(spec.message_type);
    if (kind.type_ == nullptr) {
      std::vector<std::string> types;
      for (const auto& file : spec.descriptor_set.file()) {
        const google::protobuf::FileDescriptor* fd =
            kind.pool_->FindFileByName(file.name());
        for (int i = 0; fd != nullptr && i < fd->message_type_count(); ++i) {
          MessageTypes(fd->message_type(i), &types);
        }
      }
      std::sort(types.begin(), types.end());
      return invalid(absl::StrCat("message_type '", spec.message_type,
                                  "' is not in the descriptor set; it has [",
                                  absl::StrJoin(types, ", "), "]"));
    }
    kind.factory_ =
        std::make_unique<google::protobuf::DynamicMessageFactory>(kind.pool_.get());
    // `role` names the setting in messages.
    auto resolve = [&](const std::string& text, absl::string_view role,
                       bool scope) -> absl::StatusOr<Kind::Path> {
      Kind::Path path;
      const Descriptor* at = kind.type_;
      for (absl::string_view part : absl::StrSplit(text, '.')) {
        if (at == nullptr) {
          return invalid(absl::StrCat(role, " '", text,
                                      "' goes through a field that is "
                                      "not a message"));
        }
        const FieldDescriptor* f = at->FindFieldByName(std::string(part));
        if (f == nullptr) {
          std::vector<std::string> names;
          for (int i = 0; i < at->field_count(); ++i)
            names.push_back(at->field(i)->name());
          return invalid(absl::StrCat(role, " '", text, "': ", at->full_name(),
                                      " has no field '", part, "'; its fields are [",
                                      absl::StrJoin(names, ", "), "]"));
        }
        if (scope && f->is_repeated()) {
          return invalid(
              absl::StrCat(role, " '", text, "' goes through repeated field '", f->name(),
                           "'; the scope field must hold one string per entry: "
                           "set scope_field to such a field"));
        }
        path.push_back(f);
        at = f->message_type();
      }
      if (path.back()->type() != FieldDescriptor::TYPE_STRING) {
        return invalid(absl::StrCat(role, " '", text, "' is a ", path.back()->type_name(),
                                    " field; graph names are string fields"));
      }
      return path;
    };
    for (const std::string& name : spec.name_fields) {
      ASSIGN_OR_RETURN(Kind::Path path, resolve(name, "name_fields", false));
      kind.name_paths_.push_back(std::move(path));
    }
    if (!spec.scope_field.empty()) {
      ASSIGN_OR_RETURN(kind.scope_path_, resolve(spec.scope_field, "scope_field", true));
    } else if (!spec.name_fields.empty()) {
      ASSIGN_OR_RETURN(kind.scope_path_,
                       resolve(spec.name_fields.front(),
                               "scope_field (unset: the first of name_fields)", true));
    }
    kinds->kinds_.emplace(spec.key, std::move(kind));
  }
  return std::shared_ptr<const CollectionKinds>(std::move(kinds));
}

const CollectionKinds::Kind* CollectionKinds::Find(absl::string_view key) const {
  auto it = kinds_.find(key);
  return it == kinds_.end() ? nullptr : &it->second;
}

std::vector<std::string> CollectionKinds::keys() const {
  std::vector<std::string> out;
  for (const auto& [key, unused] : kinds_) out.push_back(key);
  return out;
}

}  // namespace mgreg
