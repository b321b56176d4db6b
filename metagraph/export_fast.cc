// The wire-level fast path of the filtered export (export_scope, clear_devices,
// collection_list, unbound_inputs_col_name).
//
// It walks the MetaGraphDef wire format and parses only what the rules touch: the graph's
// nodes are rewritten field by field (name, inputs, device, `_class`, Enter frame_name)
// with untouched attr values copied as raw bytes; everything small (meta_info_def,
// saver_def, collection_def, the function library) is parsed and handed to the same code
// as the message path. The output is the deterministic serialization the message path
// produces, byte for byte, provided the untouched parts of the input were written by a
// protobuf serializer (fields in number order, no explicit defaults). Map fields are
// re-sorted here (attr maps; library, AttrValue functions and collections are
// re-serialized from messages), since TensorFlow writes maps in hash order. A node the
// walker does not recognize as canonical (unknown or repeated singular fields, odd map
// entries) goes through the message rules on its own.
//
// Unlike a full parse, the walk does not check the UTF-8 of strings it does not rewrite,
// nor the content of fields the export drops.
#include <algorithm>
#include <cstdint>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "metagraph/export_internal.h"
#include "tensorflow/core/framework/attr_value.pb.h"
#include "tensorflow/core/framework/function.pb.h"
#include "tensorflow/core/framework/graph_debug_info.pb.h"
#include "tensorflow/core/framework/versions.pb.h"

namespace mgreg::export_internal {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;
  absl::string_view payload;  // kLen only
  absl::string_view raw;      // the whole field, tag included
};

inline bool ReadVarint(const char*& p, const char* end, uint64_t* value) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    uint8_t byte = static_cast<uint8_t>(*p++);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

// Reads the fields of one message; Next() is false at the end or on malformed input
// (then ok() is false).
class WireReader {
 public:
  explicit WireReader(absl::string_view data)
      : p_(data.data()), end_(data.data() + data.size()) {}

  bool ok() const { return ok_; }

  bool Next(Field* f) {
    if (p_ == end_) return false;
    const char* start = p_;
    uint64_t tag;
    if (!ReadVarint(p_, end_, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
      return Fail();
    }
    f->number = static_cast<uint32_t>(tag >> 3);
    f->wire = static_cast<uint32_t>(tag & 7);
    switch (f->wire) {
      case kVarint:
        if (!ReadVarint(p_, end_, &f->varint)) return Fail();
        break;
      case kFixed64:
        if (end_ - p_ < 8) return Fail();
        p_ += 8;
        break;
      case kLen: {
        uint64_t len;
        if (!ReadVarint(p_, end_, &len) || len > static_cast<uint64_t>(end_ - p_)) {
          return Fail();
        }
        f->payload = absl::string_view(p_, len);
        p_ += len;
        break;
      }
      case kFixed32:
        if (end_ - p_ < 4) return Fail();
        p_ += 4;
        break;
      default:
        return Fail();
    }
    f->raw = absl::string_view(start, p_ - start);
    return true;
  }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }

  const char* p_;
  const char* end_;
  bool ok_ = true;
};

inline size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

inline void PutVarint(std::string* out, uint64_t v) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

inline void PutLen(std::string* out, uint32_t field, absl::string_view payload) {
  out->push_back(
      static_cast<char>((field << 3) | kLen));  // every field used here is < 16
  PutVarint(out, payload.size());
  out->append(payload.data(), payload.size());
}

inline size_t LenFieldSize(size_t payload) { return 1 + VarintSize(payload) + payload; }

// True if an AttrValue must go through a parse and a deterministic serialization to come
// out as the message path writes it: it holds a NameAttrList (func, or list.func) whose
// attr map must be re-sorted, or it is not in canonical form (several oneof members,
// ListValue fields out of order or unpacked), or it is malformed (the parser decides).
bool AttrNeedsReserialize(absl::string_view value) {
  WireReader r(value);
  Field f;
  int fields = 0;
  while (r.Next(&f)) {
    if (++fields > 1 || f.number == 10) return true;
    if (f.number == 1) {
      if (f.wire != kLen) return true;
      WireReader lr(f.payload);
      Field lf;
      uint32_t last = 0;
      while (lr.Next(&lf)) {
        if (lf.number < 2 || lf.number > 8 || lf.number < last || lf.wire != kLen)
          return true;
        const bool packed = lf.number >= 3 && lf.number <= 6;
        if (packed && lf.number == last) return true;
        last = lf.number;
      }
      if (!lr.ok()) return true;
    }
  }
  return !r.ok();
}

// AttrValue.list.s with parse semantics (later list occurrences merge, another oneof
// member clears the list). False if malformed.
bool ClassEntries(absl::string_view value, std::vector<absl::string_view>* entries) {
  entries->clear();
  WireReader r(value);
  Field f;
  while (r.Next(&f)) {
    if (f.number == 1 && f.wire == kLen) {
      WireReader lr(f.payload);
      Field lf;
      while (lr.Next(&lf)) {
        if (lf.number == 2 && lf.wire == kLen) entries->push_back(lf.payload);
      }
      if (!lr.ok()) return false;
    } else if (f.number >= 2 && f.number <= 10) {
      entries->clear();
    }
  }
  return r.ok();
}

// AttrValue.s with parse semantics ("" unless the oneof ends on s). False if malformed.
bool AttrString(absl::string_view value, absl::string_view* s) {
  *s = absl::string_view();
  WireReader r(value);
  Field f;
  while (r.Next(&f)) {
    if (f.number == 2 && f.wire == kLen) {
      *s = f.payload;
    } else if (f.number >= 1 && f.number <= 10) {
      *s = absl::string_view();
    }
  }
  return r.ok();
}

// Rewrites the nodes of graph_def into `body` (GraphDef field 1 each).
class NodeWriter {
 public:
  NodeWriter(const Scope& scope, bool rewritten, bool clear_devices, std::string* body,
             std::vector<std::string>* unbound)
      : scope_(scope),
        rewritten_(rewritten),
        clear_devices_(clear_devices),
        body_(body),
        unbound_(unbound) {}

  // nullopt: fall back to the message path (the node does not parse).
  std::optional<absl::Status> Add(absl::string_view node) {
    if (!ParseCanonical(node)) return AddSlow(node);
    if (rewritten_ && !scope_.Includes(name_)) return absl::OkStatus();
    std::sort(attrs_.begin(), attrs_.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < attrs_.size(); ++i) {
      const auto& [key, value] = attrs_[i];
      if (i > 0 && key == attrs_[i - 1].first)
        return AddSlow(node);  // map: last one wins
      absl::string_view unused;
      if (rewritten_ &&
          ((key == "_class" && !ClassEntries(value, &entries_)) ||
           (key == "frame_name" && IsEnterOp(op_) && !AttrString(value, &unused)))) {
        return AddSlow(node);
      }
    }
    if (!ops_.contains(op_)) ops_.emplace(op_);
    ++count_;

    std::string& s = scratch_;
    s.clear();
    if (rewritten_) {
      tmp_.clear();
      scope_.AppendStripped(name_, &tmp_);
      if (!tmp_.empty()) PutLen(&s, 1, tmp_);
    } else if (!name_.empty()) {
      PutLen(&s, 1, name_);
    }
    if (!op_.empty()) PutLen(&s, 2, op_);
    for (absl::string_view input : inputs_) {
      if (rewritten_ && !scope_.empty()) {
        tmp_.clear();
        AppendRewrittenInput(scope_, input, &tmp_, unbound_);
        PutLen(&s, 3, tmp_);
      } else {
        PutLen(&s, 3, input);
      }
    }
    if (!device_.empty() && !clear_devices_) PutLen(&s, 4, device_);

    for (const auto& [key, value] : attrs_) {
      absl::string_view v = value;
      if (rewritten_ && key == "_class") {
        ClassEntries(value, &entries_);
        ASSIGN_OR_RETURN(std::vector<std::string> kept,
                         RewriteClassList(scope_, name_, entries_));
        list_.clear();
        for (const std::string& e : kept) PutLen(&list_, 2, e);
        attr_.clear();
        PutLen(&attr_, 1, list_);
        v = attr_;
      } else if (rewritten_ && key == "frame_name" && IsEnterOp(op_)) {
        absl::string_view frame;
        AttrString(value, &frame);
        ASSIGN_OR_RETURN(std::string name, RewriteFrameName(scope_, name_, frame));
        attr_.clear();
        PutLen(&attr_, 2, name);
        v = attr_;
      } else if (AttrNeedsReserialize(value)) {
        tensorflow::AttrValue parsed;
        if (!parsed.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return std::nullopt;
        }
        attr_ = SerializeDeterministic(parsed);
        v = attr_;
      }
      s.push_back(static_cast<char>((5 << 3) | kLen));
      PutVarint(&s, LenFieldSize(key.size()) + LenFieldSize(v.size()));
      PutLen(&s, 1, key);
      PutLen(&s, 2, v);
    }
    for (absl::string_view extra : extras_) s.append(extra.data(), extra.size());
    PutLen(body_, 1, s);
    return absl::OkStatus();
  }

  int64_t count() const { return count_; }
  const absl::flat_hash_set<std::string>& ops() const { return ops_; }

 private:
  // Splits a NodeDef written in canonical form. False for anything else (fields out of
  // order, repeated singular fields, unknown fields, odd map entries).
  bool ParseCanonical(absl::string_view node) {
    name_ = op_ = device_ = absl::string_view();
    inputs_.clear();
    attrs_.clear();
    extras_.clear();
    WireReader r(node);
    Field f;
    uint32_t last = 0;
    while (r.Next(&f)) {
      if (f.wire != kLen || f.number < last) return false;
      const bool repeated = f.number == 3 || f.number == 5;
      if (f.number == last && !repeated) return false;
      last = f.number;
      switch (f.number) {
        case 1:
          name_ = f.payload;
          break;
        case 2:
          op_ = f.payload;
          break;
        case 3:
          inputs_.push_back(f.payload);
          break;
        case 4:
          device_ = f.payload;
          break;
        case 5: {
          WireReader er(f.payload);
          Field ef;
          absl::string_view key, value;
          uint32_t elast = 0;
          while (er.Next(&ef)) {
            if (ef.wire != kLen || ef.number <= elast || ef.number > 2) return false;
            elast = ef.number;
            (ef.number == 1 ? key : value) = ef.payload;
          }
          if (!er.ok()) return false;
          attrs_.emplace_back(key, value);
          break;
        }
        case 6:
        case 7:
          extras_.push_back(f.raw);
          break;
        default:
          return false;
      }
    }
    return r.ok();
  }

  std::optional<absl::Status> AddSlow(absl::string_view bytes) {
    tensorflow::NodeDef node;
    if (!node.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      return std::nullopt;
    if (rewritten_ && !scope_.Includes(node.name())) return absl::OkStatus();
    if (!ops_.contains(node.op())) ops_.emplace(node.op());
    ++count_;
    if (rewritten_) {
      tensorflow::NodeDef out;
      RETURN_IF_ERROR(TransformNode(node, scope_, clear_devices_, &out, unbound_));
      PutLen(body_, 1, SerializeDeterministic(out));
    } else {
      PutLen(body_, 1, SerializeDeterministic(node));
    }
    return absl::OkStatus();
  }

  const Scope& scope_;
  const bool rewritten_;
  const bool clear_devices_;
  std::string* body_;
  std::vector<std::string>* unbound_;
  absl::flat_hash_set<std::string> ops_;
  int64_t count_ = 0;

  absl::string_view name_, op_, device_;
  std::vector<absl::string_view> inputs_;
  std::vector<std::pair<absl::string_view, absl::string_view>> attrs_;
  std::vector<absl::string_view> extras_;
  std::vector<absl::string_view> entries_;
  std::string scratch_, tmp_, list_, attr_;
};

template <typename Message>
bool ParseInto(const std::string& bytes, Message* m) {
  return m->ParseFromString(bytes);
}

}  // namespace

bool CollectionFieldsFromWire(absl::string_view stored, std::string* fields) {
  fields->clear();
  WireReader r(stored);
  Field f;
  bool has_content = false;
  while (r.Next(&f)) {
    if (f.number <= 4 && f.wire != kLen) return false;
    has_content = has_content || f.number == 1 || f.number == 2;
    if (f.number == 4) fields->append(f.raw.data(), f.raw.size());
  }
  return r.ok() && has_content;
}

bool ScanCounts(absl::string_view stored, ExportResult* result) {
  int64_t nodes = 0;
  bool has_meta = false;
  absl::flat_hash_set<std::string> keys;
  WireReader r(stored);
  Field f;
  while (r.Next(&f)) {
    if (f.number == 1 && f.wire == kLen) has_meta = true;
    if (f.number == 2 && f.wire == kLen) {
      WireReader gr(f.payload);
      Field gf;
      while (gr.Next(&gf)) {
        if (gf.number == 1 && gf.wire == kLen) ++nodes;
      }
      if (!gr.ok()) return false;
    } else if (f.number == 4 && f.wire == kLen) {
      WireReader er(f.payload);
      Field ef;
      absl::string_view key;
      while (er.Next(&ef)) {
        if (ef.number == 1 && ef.wire == kLen) key = ef.payload;
      }
      if (!er.ok()) return false;
      keys.emplace(key);
    }
  }
  if (!r.ok() || (!has_meta && nodes == 0)) return false;
  result->node_count = nodes;
  result->collections.assign(keys.begin(), keys.end());
  std::sort(result->collections.begin(), result->collections.end());
  return true;
}

std::optional<absl::Status> TryFastExport(absl::string_view stored,
                                          const ExportOptions& options,
                                          ExportResult* result) {
  if (options.strip_default_attrs || options.clear_extraneous_savers || options.as_text) {
    return std::nullopt;
  }
  absl::StatusOr<Scope> scope_or = Scope::Create(options.export_scope);
  if (!scope_or.ok()) return scope_or.status();
  const Scope& scope = *scope_or;
  const bool rewritten = RewritesNodes(options);

  // Top level: meta_info_def, saver_def and collection_def go to a small message parsed
  // as a whole (so repeated occurrences merge as in a parse); graph_def is walked;
  // signature_def, asset_file_def, object_graph_def and unknown fields are dropped (R23).
  std::string light;
  std::vector<absl::string_view> graphs;
  bool has_meta = false;
  {
    WireReader r(stored);
    Field f;
    while (r.Next(&f)) {
      if (f.number >= 1 && f.number <= 4 && f.wire != kLen) return std::nullopt;
      if (f.number == 2) {
        graphs.push_back(f.payload);
      } else if (f.number == 1 || f.number == 3 || f.number == 4) {
        has_meta = has_meta || f.number == 1;
        light.append(f.raw.data(), f.raw.size());
      }
    }
    if (!r.ok()) return std::nullopt;
  }

  std::string body;
  body.reserve(stored.size());
  std::vector<std::string> unbound;
  NodeWriter nodes(scope, rewritten, options.clear_devices, &body, &unbound);
  std::string library_bytes, versions_bytes, debug_bytes;
  bool has_library = false, has_versions = false, has_debug = false;
  int32_t version = 0;
  for (absl::string_view graph : graphs) {
    WireReader r(graph);
    Field f;
    while (r.Next(&f)) {
      switch (f.number) {
        case 1: {
          if (f.wire != kLen) return std::nullopt;
          std::optional<absl::Status> s = nodes.Add(f.payload);
          if (!s.has_value() || !s->ok()) return s;
          break;
        }
        case 2:
          if (f.wire != kLen) return std::nullopt;
          library_bytes.append(f.payload.data(), f.payload.size());
          has_library = true;
          break;
        case 3:
          if (f.wire != kVarint) return std::nullopt;
          version = static_cast<int32_t>(f.varint);
          break;
        case 4:
          if (f.wire != kLen) return std::nullopt;
          versions_bytes.append(f.payload.data(), f.payload.size());
          has_versions = true;
          break;
        case 5:
          if (f.wire != kLen) return std::nullopt;
          debug_bytes.append(f.payload.data(), f.payload.size());
          has_debug = true;
          break;
        default:
          // Unknown GraphDef fields survive only a verbatim graph_def.
          if (!rewritten) return std::nullopt;
      }
    }
    if (!r.ok()) return std::nullopt;
  }
  if (!has_meta && nodes.count() == 0) return std::nullopt;  // not a MetaGraphDef

  tensorflow::FunctionDefLibrary library;
  tensorflow::VersionDef versions;
  if (!ParseInto(library_bytes, &library) || !ParseInto(versions_bytes, &versions)) {
    return std::nullopt;
  }
  // R2: a rewritten graph always carries library and versions (CopyFrom sets presence)
  // and loses version and debug_info.
  if (rewritten || has_library) PutLen(&body, 2, SerializeDeterministic(library));
  if (!rewritten && version != 0) {
    body.push_back(static_cast<char>((3 << 3) | kVarint));
    PutVarint(&body, static_cast<uint64_t>(static_cast<int64_t>(version)));
  }
  if (rewritten || has_versions) PutLen(&body, 4, SerializeDeterministic(versions));
  if (!rewritten && has_debug) {
    tensorflow::GraphDebugInfo debug;
    if (!ParseInto(debug_bytes, &debug)) return std::nullopt;
    PutLen(&body, 5, SerializeDeterministic(debug));
  }

  tensorflow::MetaGraphDef rest_in;
  if (!ParseInto(light, &rest_in)) return std::nullopt;
  tensorflow::MetaGraphDef rest_out;
  absl::Status built = BuildNonGraphFields(rest_in, options, scope, rewritten, nullptr,
                                           unbound, nodes.ops(), library, &rest_out);
  if (!built.ok()) return built;
  const std::string rest = SerializeDeterministic(rest_out);
  // meta_info_def (field 1, always present) precedes graph_def (field 2) in the output.
  const size_t head = LenFieldSize(rest_out.meta_info_def().GetCachedSize());

  result->bytes.clear();
  result->bytes.reserve(rest.size() + LenFieldSize(body.size()));
  result->bytes.append(rest.data(), head);
  PutLen(&result->bytes, 2, body);
  result->bytes.append(rest.data() + head, rest.size() - head);
  result->node_count = nodes.count();
  result->collections.clear();
  for (const auto& [key, unused] : rest_out.collection_def()) {
    result->collections.push_back(key);
  }
  std::sort(result->collections.begin(), result->collections.end());
  return absl::OkStatus();
}

}  // namespace mgreg::export_internal
