#include "server/web/graph_summary.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace mgreg::web {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// The chunks of a file as one protobuf input stream. A read error of the source ends
// the stream; status() then says why.
class ChunkInputStream : public google::protobuf::io::ZeroCopyInputStream {
 public:
  explicit ChunkInputStream(MessageSource<v1::FileChunk>& source) : source_(source) {}

  bool Next(const void** data, int* size) override {
    if (backup_ > 0) {
      *data = chunk_.data().data() + chunk_.data().size() - backup_;
      *size = backup_;
      backup_ = 0;
      return true;
    }
    for (;;) {
      absl::StatusOr<bool> more = source_.Next(&chunk_);
      if (!more.ok()) {
        status_ = more.status();
        return false;
      }
      if (!*more) return false;
      if (chunk_.data().empty()) continue;
      *data = chunk_.data().data();
      *size = static_cast<int>(chunk_.data().size());
      total_ += *size;
      return true;
    }
  }
  void BackUp(int count) override { backup_ = count; }
  bool Skip(int count) override {
    const void* data;
    int size;
    while (count > 0) {
      if (!Next(&data, &size)) return false;
      if (size > count) {
        BackUp(size - count);
        return true;
      }
      count -= size;
    }
    return true;
  }
  int64_t ByteCount() const override { return total_ - backup_; }

  const absl::Status& status() const { return status_; }

 private:
  MessageSource<v1::FileChunk>& source_;
  v1::FileChunk chunk_;
  int backup_ = 0;
  int64_t total_ = 0;
  absl::Status status_;
};

// Calls `field(tag)` for each field of the message that ends at the current limit (or
// at the end of the input); `field` reads the field's value and returns false on bad
// input (then the walk stops). Unhandled fields are skipped by returning Skip(in, tag).
template <typename F>
bool ForEachField(CodedInputStream& in, F field) {
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.ConsumedEntireMessage();
    if (!field(tag)) return false;
  }
}

bool Skip(CodedInputStream& in, uint32_t tag) {
  return WireFormatLite::SkipField(&in, tag);
}

int FieldOf(uint32_t tag) {
  return static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
}
bool IsBytes(uint32_t tag) {
  return WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
}

// Runs `body` inside the length-delimited field that follows.
template <typename F>
bool Nested(CodedInputStream& in, F body) {
  uint32_t length = 0;
  if (!in.ReadVarint32(&length)) return false;
  const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
  const bool ok = body() && in.BytesUntilLimit() == 0;
  in.PopLimit(limit);
  return ok;
}

bool ReadString(CodedInputStream& in, std::string* out) {
  return WireFormatLite::ReadString(&in, out);
}

// Counts the elements of the one repeated field (number 1) of a CollectionDef list.
bool CountList(CodedInputStream& in, int64_t element_bytes, int64_t* count) {
  return Nested(in, [&] {
    return ForEachField(in, [&](uint32_t tag) {
      if (FieldOf(tag) != 1) return Skip(in, tag);
      if (element_bytes == 0 || !IsBytes(tag)) {
        ++*count;  // one string/bytes/Any, or one unpacked number
        return Skip(in, tag);
      }
      // Packed numbers: fixed-size floats, or varints counted one by one.
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return false;
      if (element_bytes > 0) {
        *count += length / element_bytes;
        return in.Skip(static_cast<int>(length));
      }
      const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
      uint64_t v;
      while (in.BytesUntilLimit() > 0) {
        if (!in.ReadVarint64(&v)) return false;
        ++*count;
      }
      in.PopLimit(limit);
      return true;
    });
  });
}

bool ReadCollection(CodedInputStream& in, GraphSummary::Collection* c) {
  c->kind = "empty";
  return ForEachField(in, [&](uint32_t tag) {
    if (!IsBytes(tag)) return Skip(in, tag);
    switch (FieldOf(tag)) {
      case 1:
        c->kind = "node_list";
        return CountList(in, 0, &c->size);
      case 2:
        c->kind = "bytes_list";
        return CountList(in, 0, &c->size);
      case 3:
        c->kind = "int64_list";
        return CountList(in, -1, &c->size);
      case 4:
        c->kind = "float_list";
        return CountList(in, 4, &c->size);
      case 5:
        c->kind = "any_list";
        return CountList(in, 0, &c->size);
      default:
        return Skip(in, tag);
    }
  });
}

bool ReadNode(CodedInputStream& in, GraphSummary* s) {
  std::string op;
  std::string device;
  const bool ok = ForEachField(in, [&](uint32_t tag) {
    if (FieldOf(tag) == 2 && IsBytes(tag)) return ReadString(in, &op);
    if (FieldOf(tag) == 4 && IsBytes(tag)) return ReadString(in, &device);
    return Skip(in, tag);
  });
  ++s->node_count;
  ++s->ops[op];
  ++s->devices[device];
  return ok;
}

bool ReadGraphDef(CodedInputStream& in, GraphSummary* s) {
  return ForEachField(in, [&](uint32_t tag) {
    if (FieldOf(tag) == 1 && IsBytes(tag))
      return Nested(in, [&] { return ReadNode(in, s); });
    if (FieldOf(tag) == 2 && IsBytes(tag)) {
      // FunctionDefLibrary: count its functions (field 1).
      return Nested(in, [&] {
        return ForEachField(in, [&](uint32_t t) {
          if (FieldOf(t) == 1) ++s->function_count;
          return Skip(in, t);
        });
      });
    }
    return Skip(in, tag);
  });
}

bool ReadMetaInfo(CodedInputStream& in, GraphSummary* s) {
  return ForEachField(in, [&](uint32_t tag) {
    if (FieldOf(tag) == 4 && IsBytes(tag)) {
      s->tags.emplace_back();
      return ReadString(in, &s->tags.back());
    }
    if (FieldOf(tag) == 5 && IsBytes(tag)) return ReadString(in, &s->tensorflow_version);
    return Skip(in, tag);
  });
}

// A map entry (key = 1, value = 2) whose value `read_value` parses.
template <typename F>
bool ReadMapEntry(CodedInputStream& in, std::string* key, F read_value) {
  return ForEachField(in, [&](uint32_t tag) {
    if (FieldOf(tag) == 1 && IsBytes(tag)) return ReadString(in, key);
    if (FieldOf(tag) == 2 && IsBytes(tag)) return read_value(tag);
    return Skip(in, tag);
  });
}

// The fields of a MetaGraphDef up to the current limit (or the end of the input).
bool ReadMetaGraph(CodedInputStream& in, GraphSummary* s) {
  return ForEachField(in, [&](uint32_t tag) {
    if (!IsBytes(tag)) return Skip(in, tag);
    switch (FieldOf(tag)) {
      case 1:
        return Nested(in, [&] { return ReadMetaInfo(in, s); });
      case 2:
        return Nested(in, [&] { return ReadGraphDef(in, s); });
      case 3:
        s->has_saver = true;
        return Skip(in, tag);
      case 4: {
        GraphSummary::Collection c;
        const bool read = Nested(in, [&] {
          return ReadMapEntry(in, &c.name, [&](uint32_t) {
            return Nested(in, [&] { return ReadCollection(in, &c); });
          });
        });
        s->collections.push_back(std::move(c));
        return read;
      }
      case 5: {
        std::string name;
        const bool read = Nested(in, [&] {
          return ReadMapEntry(in, &name, [&](uint32_t t) { return Skip(in, t); });
        });
        s->signatures.push_back(std::move(name));
        return read;
      }
      default:
        return Skip(in, tag);
    }
  });
}

void SortSummary(GraphSummary* s) {
  std::sort(s->collections.begin(), s->collections.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::sort(s->signatures.begin(), s->signatures.end());
}

}  // namespace

absl::StatusOr<GraphSummary> SummarizeMetaGraph(MessageSource<v1::FileChunk>& source) {
  ChunkInputStream stream(source);
  GraphSummary s;
  bool ok;
  {
    CodedInputStream in(&stream);
    in.SetRecursionLimit(100);
    ok = ReadMetaGraph(in, &s);
    s.bytes = in.CurrentPosition();
  }
  if (!stream.status().ok()) return stream.status();
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("the stored .meta is not a well-formed MetaGraphDef (the wire "
                     "format breaks near byte ",
                     s.bytes, ")"));
  }
  SortSummary(&s);
  return s;
}

absl::StatusOr<std::vector<GraphSummary>> SummarizeSavedModel(
    MessageSource<v1::FileChunk>& source) {
  ChunkInputStream stream(source);
  std::vector<GraphSummary> out;
  bool ok;
  int64_t position = 0;
  {
    CodedInputStream in(&stream);
    in.SetRecursionLimit(100);
    // SavedModel: saved_model_schema_version = 1, repeated MetaGraphDef meta_graphs = 2.
    ok = ForEachField(in, [&](uint32_t tag) {
      if (FieldOf(tag) != 2 || !IsBytes(tag)) return Skip(in, tag);
      GraphSummary s;
      const int64_t start = in.CurrentPosition();
      const bool read = Nested(in, [&] { return ReadMetaGraph(in, &s); });
      s.bytes = in.CurrentPosition() - start;
      SortSummary(&s);
      out.push_back(std::move(s));
      return read;
    });
    position = in.CurrentPosition();
  }
  if (!stream.status().ok()) return stream.status();
  if (!ok || out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the stored saved_model.pb is not a well-formed SavedModel with a MetaGraphDef "
        "(the wire format breaks near byte ",
        position, ")"));
  }
  return out;
}

std::shared_ptr<const GraphSummary> GraphSummaryCache::Find(const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->first == sha256) {
      entries_.splice(entries_.begin(), entries_, it);
      return entries_.front().second;
    }
  }
  return nullptr;
}

void GraphSummaryCache::Insert(const std::string& sha256,
                               std::shared_ptr<const GraphSummary> summary) {
  absl::MutexLock lock(&mu_);
  entries_.remove_if([&](const auto& e) { return e.first == sha256; });
  entries_.emplace_front(sha256, std::move(summary));
  while (entries_.size() > capacity_) entries_.pop_back();
}

}  // namespace mgreg::web
