// The export rules of EXPORT_SEMANTICS that both export paths share: scope matching and
// stripping (R3, R4), node rewriting (R5-R10), stripped_op_list (R20, D3) and collections
// (R11-R18).
#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "metagraph/collection_kinds.h"
#include "metagraph/export_internal.h"
#include "tensorflow/core/framework/variable.pb.h"
#include "tensorflow/core/protobuf/control_flow.pb.h"
#include "tensorflow/core/protobuf/queue_runner.pb.h"
#include "tensorflow/core/protobuf/saver.pb.h"

namespace mgreg::export_internal {
namespace {

// Characters with a meaning in a Python regular expression, other than '.' which Scope
// matches itself.
constexpr char kRegexSpecials[] = "^$*+?{}[]\\|()";

// Length of the UTF-8 sequence starting with `lead` (1 for invalid lead bytes, which
// Python would have rejected when decoding anyway).
size_t Utf8Length(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace

absl::StatusOr<Scope> Scope::Create(absl::string_view scope) {
  Scope s;
  s.raw_ = std::string(scope);
  s.pattern_ = s.raw_;
  if (!s.pattern_.empty() && s.pattern_.back() == '/') s.pattern_.pop_back();
  s.simple_ = s.pattern_.find_first_of(kRegexSpecials) == std::string::npos;
  if (!s.simple_) {
    try {
      s.regex_ = std::make_shared<const std::regex>(
          absl::StrCat("([\\^]|loc:@|^)", s.pattern_, "[\\/]+(.*)"),
          std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "export_scope '", scope,
          "' is not a valid regular expression; TensorFlow uses the scope as one when "
          "stripping names: ",
          e.what()));
    }
  }
  return s;
}

bool Scope::Covers(absl::string_view name) const {
  return raw_.empty() || absl::StartsWith(name, raw_);
}

bool Scope::Includes(absl::string_view name) const {
  return absl::StartsWith(name, kUnboundInputPrefix) || Covers(name);
}

size_t Scope::MatchPatternAt(absl::string_view name, size_t pos) const {
  for (char c : pattern_) {
    if (pos >= name.size()) return absl::string_view::npos;
    if (c == '.') {
      if (name[pos] == '\n') return absl::string_view::npos;
      pos += Utf8Length(static_cast<unsigned char>(name[pos]));
      if (pos > name.size()) return absl::string_view::npos;
    } else {
      if (name[pos] != c) return absl::string_view::npos;
      ++pos;
    }
  }
  return pos;
}

void Scope::AppendStripped(absl::string_view name, std::string* out) const {
  if (raw_.empty()) {
    out->append(name.data(), name.size());
    return;
  }
  if (!simple_) {
    std::string s(name);
    out->append(
        std::regex_replace(s, *regex_, "$1$2", std::regex_constants::format_first_only));
    return;
  }
  // re.sub(r"([\^]|loc:@|^)" + pattern + r"[\/]+(.*)", r"\1\2", name, count=1): the
  // leftmost position where one of the three alternatives (tried in that order) matches.
  constexpr absl::string_view kLoc = "loc:@";
  size_t p = 0;
  while (p <= name.size()) {
    size_t prefix = absl::string_view::npos;  // length of group 1
    size_t end = absl::string_view::npos;     // end of the scope pattern
    if (p < name.size() && name[p] == '^') {
      end = MatchPatternAt(name, p + 1);
      if (end != absl::string_view::npos && end < name.size() && name[end] == '/')
        prefix = 1;
    }
    if (prefix == absl::string_view::npos && name.substr(p, kLoc.size()) == kLoc) {
      end = MatchPatternAt(name, p + kLoc.size());
      if (end != absl::string_view::npos && end < name.size() && name[end] == '/') {
        prefix = kLoc.size();
      }
    }
    if (prefix == absl::string_view::npos && p == 0) {
      end = MatchPatternAt(name, 0);
      if (end != absl::string_view::npos && end < name.size() && name[end] == '/')
        prefix = 0;
    }
    if (prefix != absl::string_view::npos) {
      size_t rest = end;
      while (rest < name.size() && name[rest] == '/') ++rest;
      out->append(name.data(), p + prefix);
      out->append(name.data() + rest, name.size() - rest);
      return;
    }
    // Next candidate: a '^' or the start of "loc:@".
    size_t caret = name.find('^', p + 1);
    size_t loc = name.find(kLoc, p + 1);
    p = std::min(caret, loc);
    if (p == absl::string_view::npos) break;
  }
  out->append(name.data(), name.size());
}

std::string Scope::Strip(absl::string_view name) const {
  std::string out;
  AppendStripped(name, &out);
  return out;
}

void AppendRewrittenInput(const Scope& scope, absl::string_view input, std::string* out,
                          std::vector<std::string>* unbound) {
  if (scope.empty()) {
    out->append(input.data(), input.size());
    return;
  }
  absl::string_view bare = input;
  while (!bare.empty() && bare.front() == '^') bare.remove_prefix(1);
  if (absl::StartsWith(bare, scope.raw())) {
    scope.AppendStripped(input, out);
    return;
  }
  // re.sub(r"([\^]|^)(.*)", r"\1$unbound_inputs_\2", input): the first line always
  // matches at 0; every later line (after a '\n') matches at its first '^'.
  size_t start = out->size();
  size_t line_end = input.find('\n');
  size_t head = input.empty() || input.front() != '^' ? 0 : 1;
  out->append(input.data(), head);
  out->append(kUnboundInputPrefix.data(), kUnboundInputPrefix.size());
  if (line_end == absl::string_view::npos) {
    out->append(input.data() + head, input.size() - head);
  } else {
    out->append(input.data() + head, line_end - head);
    size_t pos = line_end;
    while (pos < input.size()) {
      size_t next = input.find('\n', pos + 1);
      absl::string_view line = input.substr(
          pos, next == absl::string_view::npos ? absl::string_view::npos : next - pos);
      size_t caret = line.find('^');
      if (caret == absl::string_view::npos) {
        out->append(line.data(), line.size());
      } else {
        out->append(line.data(), caret + 1);
        out->append(kUnboundInputPrefix.data(), kUnboundInputPrefix.size());
        out->append(line.data() + caret + 1, line.size() - caret - 1);
      }
      if (next == absl::string_view::npos) break;
      pos = next;
    }
  }
  if (unbound != nullptr) unbound->emplace_back(out->substr(start));
}

absl::StatusOr<std::vector<std::string>> RewriteClassList(
    const Scope& scope, absl::string_view node_name,
    const std::vector<absl::string_view>& entries) {
  std::vector<std::string> kept;
  kept.reserve(entries.size());
  for (absl::string_view entry : entries) {
    if (!scope.empty()) {
      size_t at = entry.find('@');
      if (at == absl::string_view::npos) {
        return absl::FailedPreconditionError(absl::StrCat(
            "node '", node_name, "': _class entry '", entry,
            "' has no '@', on which TensorFlow's exporter fails under export_scope '",
            scope.raw(), "'; export without a scope or fix the graph"));
      }
      absl::string_view target = entry.substr(at + 1);
      target = target.substr(0, target.find('@'));
      if (!absl::StartsWith(target, scope.raw())) continue;
    }
    kept.push_back(scope.Strip(entry));
  }
  return kept;
}

absl::StatusOr<std::string> RewriteFrameName(const Scope& scope,
                                             absl::string_view node_name,
                                             absl::string_view frame_name) {
  if (!scope.Covers(frame_name)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node '", node_name, "': its while-loop frame_name '", frame_name,
        "' lies outside export_scope '", scope.raw(),
        "', on which TensorFlow's exporter fails; choose a scope that contains the whole "
        "loop"));
  }
  return scope.Strip(frame_name);
}

bool IsEnterOp(absl::string_view op) { return op == "Enter" || op == "RefEnter"; }

absl::Status TransformNode(const tensorflow::NodeDef& in, const Scope& scope,
                           bool clear_devices, tensorflow::NodeDef* out,
                           std::vector<std::string>* unbound) {
  *out = in;
  std::string buf;
  for (int i = 0; i < in.input_size(); ++i) {
    buf.clear();
    AppendRewrittenInput(scope, in.input(i), &buf, unbound);
    out->set_input(i, buf);
  }
  out->set_name(scope.Strip(in.name()));
  auto cls = in.attr().find("_class");
  if (cls != in.attr().end()) {
    std::vector<absl::string_view> entries(cls->second.list().s().begin(),
                                           cls->second.list().s().end());
    ASSIGN_OR_RETURN(std::vector<std::string> kept,
                     RewriteClassList(scope, in.name(), entries));
    tensorflow::AttrValue value;
    auto* list = value.mutable_list();
    for (std::string& s : kept) list->add_s(std::move(s));
    (*out->mutable_attr())["_class"] = std::move(value);
  }
  if (IsEnterOp(in.op())) {
    auto frame = in.attr().find("frame_name");
    if (frame != in.attr().end()) {
      ASSIGN_OR_RETURN(std::string name,
                       RewriteFrameName(scope, in.name(), frame->second.s()));
      tensorflow::AttrValue value;
      value.set_s(std::move(name));
      (*out->mutable_attr())["frame_name"] = std::move(value);
    }
  }
  if (clear_devices) out->clear_device();
  return absl::OkStatus();
}

tensorflow::OpList StrippedOpList(const tensorflow::OpList& registry,
                                  const absl::flat_hash_set<std::string>& node_ops,
                                  const tensorflow::FunctionDefLibrary& library) {
  absl::flat_hash_map<absl::string_view, const tensorflow::FunctionDef*> functions;
  for (const auto& f : library.function()) functions[f.signature().name()] = &f;
  absl::flat_hash_set<std::string> used;
  std::vector<const tensorflow::FunctionDef*> to_process;
  auto mark = [&](const std::string& op) {
    if (!used.contains(op)) {
      auto it = functions.find(op);
      if (it != functions.end()) to_process.push_back(it->second);
    }
    used.insert(op);
  };
  for (const std::string& op : node_ops) mark(op);
  while (!to_process.empty()) {
    const tensorflow::FunctionDef* f = to_process.back();
    to_process.pop_back();
    for (const auto& node : f->node_def()) mark(node.op());
  }
  std::vector<absl::string_view> names;
  for (const std::string& op : used) {
    if (!functions.contains(op)) names.push_back(op);
  }
  std::sort(names.begin(), names.end());
  absl::flat_hash_map<absl::string_view, const tensorflow::OpDef*> by_name;
  for (const auto& op : registry.op()) by_name.try_emplace(op.name(), &op);
  tensorflow::OpList out;
  for (absl::string_view name : names) {
    auto it = by_name.find(name);
    if (it != by_name.end()) *out.add_op() = *it->second;
  }
  return out;
}

namespace {

enum class Registered { kNone, kVariable, kSaver, kQueueRunner, kCond, kWhile };

// The 11 keys with a registered to_proto (R15, D5).
Registered RegisteredKind(absl::string_view key) {
  static const auto* const kKeys = new std::map<absl::string_view, Registered>{
      {"variables", Registered::kVariable},
      {"trainable_variables", Registered::kVariable},
      {"local_variables", Registered::kVariable},
      {"model_variables", Registered::kVariable},
      {"moving_average_variables", Registered::kVariable},
      {"global_step", Registered::kVariable},
      {"metric_variables", Registered::kVariable},
      {"savers", Registered::kSaver},
      {"queue_runners", Registered::kQueueRunner},
      {"cond_context", Registered::kCond},
      {"while_context", Registered::kWhile},
  };
  auto it = kKeys->find(key);
  return it == kKeys->end() ? Registered::kNone : it->second;
}

}  // namespace

std::unique_ptr<google::protobuf::Message> NewRegisteredProto(absl::string_view key) {
  switch (RegisteredKind(key)) {
    case Registered::kVariable:
      return std::make_unique<tensorflow::VariableDef>();
    case Registered::kSaver:
      return std::make_unique<tensorflow::SaverDef>();
    case Registered::kQueueRunner:
      return std::make_unique<tensorflow::QueueRunnerDef>();
    case Registered::kCond:
      return std::make_unique<tensorflow::CondContextDef>();
    case Registered::kWhile:
      return std::make_unique<tensorflow::WhileContextDef>();
    case Registered::kNone:
      break;
  }
  return nullptr;
}

namespace {

// _to_values_def (R16).
tensorflow::ValuesDef ValuesToProto(const tensorflow::ValuesDef& in, const Scope& scope) {
  tensorflow::ValuesDef out;
  std::vector<absl::string_view> values(in.values().begin(), in.values().end());
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  for (absl::string_view v : values) out.add_values(scope.Strip(v));
  std::vector<std::pair<absl::string_view, absl::string_view>> external(
      in.external_values().begin(), in.external_values().end());
  std::sort(external.begin(), external.end());
  for (const auto& [k, v] : external) {
    (*out.mutable_external_values())[scope.Strip(k)] = scope.Strip(v);
  }
  return out;
}

tensorflow::CondContextDef CondToProto(const tensorflow::CondContextDef& in,
                                       const Scope& scope);
tensorflow::WhileContextDef WhileToProto(const tensorflow::WhileContextDef& in,
                                         const Scope& scope);

// Nested contexts are serialized without the export scope (R15).
void NestedToProto(
    const google::protobuf::RepeatedPtrField<tensorflow::ControlFlowContextDef>& in,
    google::protobuf::RepeatedPtrField<tensorflow::ControlFlowContextDef>* out) {
  static const auto* const kNoScope = new Scope(*Scope::Create(""));
  for (const auto& nested : in) {
    auto* n = out->Add();
    if (nested.has_cond_ctxt()) {
      *n->mutable_cond_ctxt() = CondToProto(nested.cond_ctxt(), *kNoScope);
    } else if (nested.has_while_ctxt()) {
      *n->mutable_while_ctxt() = WhileToProto(nested.while_ctxt(), *kNoScope);
    }
  }
}

tensorflow::CondContextDef CondToProto(const tensorflow::CondContextDef& in,
                                       const Scope& scope) {
  tensorflow::CondContextDef out;
  out.set_context_name(scope.Strip(in.context_name()));
  out.set_pred_name(scope.Strip(in.pred_name()));
  out.set_pivot_name(scope.Strip(in.pivot_name()));
  out.set_branch(in.branch());
  *out.mutable_values_def() = ValuesToProto(in.values_def(), scope);
  NestedToProto(in.nested_contexts(), out.mutable_nested_contexts());
  return out;
}

tensorflow::WhileContextDef WhileToProto(const tensorflow::WhileContextDef& in,
                                         const Scope& scope) {
  tensorflow::WhileContextDef out;
  out.set_context_name(scope.Strip(in.context_name()));
  out.set_parallel_iterations(in.parallel_iterations());
  if (!in.maximum_iterations_name().empty()) {
    out.set_maximum_iterations_name(scope.Strip(in.maximum_iterations_name()));
  }
  out.set_back_prop(in.back_prop());
  out.set_swap_memory(in.swap_memory());
  out.set_pivot_for_pred_name(scope.Strip(in.pivot_for_pred_name()));
  out.set_pivot_for_body_name(scope.Strip(in.pivot_for_body_name()));
  out.set_pivot_name(scope.Strip(in.pivot_name()));
  for (const auto& n : in.loop_exit_names()) out.add_loop_exit_names(scope.Strip(n));
  for (const auto& n : in.loop_enter_names()) out.add_loop_enter_names(scope.Strip(n));
  *out.mutable_values_def() = ValuesToProto(in.values_def(), scope);
  NestedToProto(in.nested_contexts(), out.mutable_nested_contexts());
  return out;
}

// The result of one to_proto call: a serialized proto, nothing (None), or TensorFlow's
// exception (R14c).
struct ToProtoResult {
  bool raised = false;
  std::optional<std::string> bytes;
};

ToProtoResult VariableToProto(const tensorflow::VariableDef& in, const Scope& scope) {
  ToProtoResult r;
  if (!scope.Covers(in.variable_name())) return r;
  tensorflow::VariableDef out = in;
  out.set_variable_name(scope.Strip(in.variable_name()));
  if (!in.initial_value_name().empty()) {
    out.set_initial_value_name(scope.Strip(in.initial_value_name()));
  }
  out.set_initializer_name(scope.Strip(in.initializer_name()));
  out.set_snapshot_name(scope.Strip(in.snapshot_name()));
  if (in.has_save_slice_info_def()) {
    const auto& slice = in.save_slice_info_def();
    // SaveSliceInfo.to_proto returns None outside the scope and MergeFrom(None) raises.
    if (!scope.Covers(slice.full_name())) {
      r.raised = true;
      return r;
    }
    out.mutable_save_slice_info_def()->set_full_name(scope.Strip(slice.full_name()));
  }
  r.bytes = SerializeDeterministic(out);
  return r;
}

ToProtoResult SaverToProto(const tensorflow::SaverDef& in, const Scope& scope) {
  ToProtoResult r;
  if (scope.empty()) {
    r.bytes = SerializeDeterministic(in);
    return r;
  }
  if (!absl::StartsWith(in.filename_tensor_name(), scope.raw()) ||
      !absl::StartsWith(in.save_tensor_name(), scope.raw()) ||
      !absl::StartsWith(in.restore_op_name(), scope.raw())) {
    return r;
  }
  tensorflow::SaverDef out = in;
  out.set_filename_tensor_name(scope.Strip(in.filename_tensor_name()));
  out.set_save_tensor_name(scope.Strip(in.save_tensor_name()));
  out.set_restore_op_name(scope.Strip(in.restore_op_name()));
  r.bytes = SerializeDeterministic(out);
  return r;
}

ToProtoResult QueueRunnerToProto(const tensorflow::QueueRunnerDef& in,
                                 const Scope& scope) {
  ToProtoResult r;
  if (!scope.Covers(in.queue_name())) return r;
  tensorflow::QueueRunnerDef out;
  out.set_queue_name(scope.Strip(in.queue_name()));
  for (const auto& op : in.enqueue_op_name()) out.add_enqueue_op_name(scope.Strip(op));
  out.set_close_op_name(scope.Strip(in.close_op_name()));
  out.set_cancel_op_name(scope.Strip(in.cancel_op_name()));
  *out.mutable_queue_closed_exception_types() = in.queue_closed_exception_types();
  r.bytes = SerializeDeterministic(out);
  return r;
}

// One parsed item of a registered collection: its name for the R13 filter (none for
// Saver objects) and its to_proto.
struct RegisteredItem {
  std::optional<std::string> name;
  std::function<ToProtoResult(const Scope&)> to_proto;
};

absl::StatusOr<RegisteredItem> ParseRegistered(Registered kind, absl::string_view key,
                                               int index, const std::string& bytes) {
  auto bad = [&](absl::string_view type) {
    return absl::FailedPreconditionError(
        absl::StrCat("collection '", key, "' entry ", index, " is not a valid ", type,
                     " (TensorFlow fails to import this graph)"));
  };
  RegisteredItem item;
  switch (kind) {
    case Registered::kVariable: {
      auto def = std::make_shared<tensorflow::VariableDef>();
      if (!def->ParseFromString(bytes)) return bad("VariableDef");
      item.name = def->variable_name();
      item.to_proto = [def](const Scope& s) { return VariableToProto(*def, s); };
      break;
    }
    case Registered::kSaver: {
      auto def = std::make_shared<tensorflow::SaverDef>();
      if (!def->ParseFromString(bytes)) return bad("SaverDef");
      item.to_proto = [def](const Scope& s) { return SaverToProto(*def, s); };
      break;
    }
    case Registered::kQueueRunner: {
      auto def = std::make_shared<tensorflow::QueueRunnerDef>();
      if (!def->ParseFromString(bytes)) return bad("QueueRunnerDef");
      item.name = def->queue_name();
      item.to_proto = [def](const Scope& s) { return QueueRunnerToProto(*def, s); };
      break;
    }
    case Registered::kCond: {
      auto def = std::make_shared<tensorflow::CondContextDef>();
      if (!def->ParseFromString(bytes)) return bad("CondContextDef");
      item.name = def->context_name();
      item.to_proto = [def](const Scope& s) {
        ToProtoResult r;
        if (s.Covers(def->context_name()))
          r.bytes = SerializeDeterministic(CondToProto(*def, s));
        return r;
      };
      break;
    }
    case Registered::kWhile: {
      auto def = std::make_shared<tensorflow::WhileContextDef>();
      if (!def->ParseFromString(bytes)) return bad("WhileContextDef");
      item.name = def->context_name();
      item.to_proto = [def](const Scope& s) {
        ToProtoResult r;
        if (s.Covers(def->context_name())) {
          r.bytes = SerializeDeterministic(WhileToProto(*def, s));
        }
        return r;
      };
      break;
    }
    case Registered::kNone:
      break;
  }
  return item;
}

// An entry of a collection kind the config registers: the scope field is its name for
// R13, and its to_proto returns None outside the scope, else the entry with every name
// field stripped (metagraph/collection_kinds.h).
absl::StatusOr<RegisteredItem> ParseConfigured(const CollectionKinds::Kind& kind,
                                               int index, const std::string& bytes) {
  std::shared_ptr<google::protobuf::Message> def(kind.New());
  if (!def->ParseFromString(bytes)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "collection '", kind.key(), "' entry ", index, " is not a valid ",
        kind.type()->full_name(),
        " (the type the server's collection_kinds registers for that key); correct the "
        "graph or the configured type"));
  }
  RegisteredItem item;
  item.name = kind.ScopeName(*def);
  item.to_proto = [def, k = &kind, name = item.name](const Scope& s) {
    ToProtoResult r;
    if (name.has_value() && !s.Covers(*name)) return r;
    std::unique_ptr<google::protobuf::Message> out(def->New());
    out->CopyFrom(*def);
    k->StripNames(out.get(), [&s](absl::string_view v) { return s.Strip(v); });
    r.bytes = SerializeDeterministic(*out);
    return r;
  };
  return item;
}

// add_collection_def for one key (R12-R16, R18).
class CollectionExporter {
 public:
  CollectionExporter(const tensorflow::MetaGraphDef& stored, const ExportOptions& options,
                     const Scope& scope, bool rewritten,
                     const absl::flat_hash_set<std::string>* exclude,
                     const std::vector<std::string>& unbound,
                     google::protobuf::Map<std::string, tensorflow::CollectionDef>* out)
      : stored_(stored),
        options_(options),
        scope_(scope),
        rewritten_(rewritten),
        exclude_(exclude != nullptr && !exclude->empty() ? exclude : nullptr),
        unbound_(unbound),
        out_(out) {}

  // The keys of the imported graph's collections (the stored ones with values, the
  // refilled unbound-inputs collection), for collection_list=None.
  std::vector<std::string> LiveKeys() const {
    std::vector<std::string> keys;
    for (const auto& [key, def] : stored_.collection_def()) {
      if (IsUnboundKey(key)) continue;
      if (ValueCount(def) > 0) keys.push_back(key);
    }
    if (rewritten_ && options_.unbound_inputs_col_name.has_value() && !unbound_.empty()) {
      keys.push_back(*options_.unbound_inputs_col_name);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  absl::Status Add(const std::string& key) {
    Registered reg = RegisteredKind(key);
    const CollectionKinds::Kind* configured =
        reg == Registered::kNone && options_.collection_kinds != nullptr
            ? options_.collection_kinds->Find(key)
            : nullptr;
    if (options_.clear_extraneous_savers && reg == Registered::kSaver) {
      // R18: the collection becomes [Saver.from_proto(saver_def)].
      if (!stored_.has_saver_def()) return absl::OkStatus();
      const tensorflow::SaverDef& def = stored_.saver_def();
      RegisteredItem item;
      item.to_proto = [&def](const Scope& s) { return SaverToProto(def, s); };
      std::vector<RegisteredItem> items;
      items.push_back(std::move(item));
      AddRegistered(key, items);
      return absl::OkStatus();
    }
    if (IsUnboundKey(key)) {
      // R11: Python strings; the R13 prefix filter applies to them.
      std::vector<absl::string_view> kept;
      for (const std::string& name : unbound_) {
        if (Passes(name)) kept.push_back(name);
      }
      if (kept.empty()) return absl::OkStatus();
      if (reg != Registered::kNone || configured != nullptr) {
        out_->erase(key);  // to_proto of a str raises (R14c)
        return absl::OkStatus();
      }
      auto* list = (*out_)[key].mutable_bytes_list();
      for (absl::string_view v : kept) list->add_value(std::string(v));
      return absl::OkStatus();
    }
    auto it = stored_.collection_def().find(key);
    if (it == stored_.collection_def().end()) return absl::OkStatus();
    const tensorflow::CollectionDef& def = it->second;
    if (reg != Registered::kNone || configured != nullptr) {
      if (def.kind_case() != tensorflow::CollectionDef::kBytesList) {
        // Imported as tensors/ints/...; their to_proto raises and the key is dropped.
        bool any = false;
        if (def.has_node_list()) {
          for (const auto& name : def.node_list().value()) any = any || Passes(name);
        } else {
          any = ValueCount(def) > 0;
        }
        if (any) out_->erase(key);
        return absl::OkStatus();
      }
      std::vector<RegisteredItem> items;
      int index = 0;
      for (const std::string& bytes : def.bytes_list().value()) {
        ASSIGN_OR_RETURN(RegisteredItem item,
                         configured != nullptr
                             ? ParseConfigured(*configured, index++, bytes)
                             : ParseRegistered(reg, key, index++, bytes));
        if (item.name.has_value() && !Passes(*item.name)) continue;
        items.push_back(std::move(item));
      }
      AddRegistered(key, items);
      return absl::OkStatus();
    }
    switch (def.kind_case()) {
      case tensorflow::CollectionDef::kNodeList: {
        std::vector<absl::string_view> kept;
        for (const auto& name : def.node_list().value()) {
          if (Passes(name)) kept.push_back(name);
        }
        if (kept.empty()) return absl::OkStatus();
        tensorflow::CollectionDef& entry = (*out_)[key];
        for (absl::string_view name : kept) {
          if (scope_.Covers(name))
            entry.mutable_node_list()->add_value(scope_.Strip(name));
        }
        return absl::OkStatus();
      }
      // Imported as bytes / ints / floats / Any: no name, so kept unchanged (R14).
      case tensorflow::CollectionDef::kBytesList:
        if (def.bytes_list().value_size() > 0) {
          auto* v = (*out_)[key].mutable_bytes_list()->mutable_value();
          v->MergeFrom(def.bytes_list().value());
        }
        return absl::OkStatus();
      case tensorflow::CollectionDef::kInt64List:
        if (def.int64_list().value_size() > 0) {
          (*out_)[key].mutable_int64_list()->mutable_value()->MergeFrom(
              def.int64_list().value());
        }
        return absl::OkStatus();
      case tensorflow::CollectionDef::kFloatList:
        if (def.float_list().value_size() > 0) {
          (*out_)[key].mutable_float_list()->mutable_value()->MergeFrom(
              def.float_list().value());
        }
        return absl::OkStatus();
      case tensorflow::CollectionDef::kAnyList:
        if (def.any_list().value_size() > 0) {
          (*out_)[key].mutable_any_list()->mutable_value()->MergeFrom(
              def.any_list().value());
        }
        return absl::OkStatus();
      case tensorflow::CollectionDef::KIND_NOT_SET:
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

 private:
  static int ValueCount(const tensorflow::CollectionDef& def) {
    switch (def.kind_case()) {
      case tensorflow::CollectionDef::kNodeList:
        return def.node_list().value_size();
      case tensorflow::CollectionDef::kBytesList:
        return def.bytes_list().value_size();
      case tensorflow::CollectionDef::kInt64List:
        return def.int64_list().value_size();
      case tensorflow::CollectionDef::kFloatList:
        return def.float_list().value_size();
      case tensorflow::CollectionDef::kAnyList:
        return def.any_list().value_size();
      case tensorflow::CollectionDef::KIND_NOT_SET:
        return 0;
    }
    return 0;
  }

  bool IsUnboundKey(const std::string& key) const {
    return rewritten_ && options_.unbound_inputs_col_name.has_value() &&
           key == *options_.unbound_inputs_col_name;
  }

  // _should_include_node on a named item (R13, R18).
  bool Passes(absl::string_view name) const {
    if (exclude_ != nullptr && exclude_->contains(name)) return false;
    return scope_.Includes(name);
  }

  // R14a/R14c: the entry exists once any item passed the filter, even if every to_proto
  // returns None; an exception drops the key.
  void AddRegistered(const std::string& key, const std::vector<RegisteredItem>& items) {
    if (items.empty()) return;
    tensorflow::CollectionDef& entry = (*out_)[key];
    for (const RegisteredItem& item : items) {
      ToProtoResult r = item.to_proto(scope_);
      if (r.raised) {
        out_->erase(key);
        return;
      }
      if (r.bytes.has_value()) entry.mutable_bytes_list()->add_value(std::move(*r.bytes));
    }
  }

  const tensorflow::MetaGraphDef& stored_;
  const ExportOptions& options_;
  const Scope& scope_;
  bool rewritten_;
  const absl::flat_hash_set<std::string>* exclude_;
  const std::vector<std::string>& unbound_;
  google::protobuf::Map<std::string, tensorflow::CollectionDef>* out_;
};

}  // namespace

absl::Status BuildNonGraphFields(const tensorflow::MetaGraphDef& stored,
                                 const ExportOptions& options, const Scope& scope,
                                 bool rewritten,
                                 const absl::flat_hash_set<std::string>* exclude,
                                 const std::vector<std::string>& unbound,
                                 const absl::flat_hash_set<std::string>& node_ops,
                                 const tensorflow::FunctionDefLibrary& library,
                                 tensorflow::MetaGraphDef* out) {
  auto* info = out->mutable_meta_info_def();
  info->set_tensorflow_version(stored.meta_info_def().tensorflow_version());
  info->set_tensorflow_git_version(stored.meta_info_def().tensorflow_git_version());
  *info->mutable_stripped_op_list() =
      StrippedOpList(stored.meta_info_def().stripped_op_list(), node_ops, library);
  if (stored.has_saver_def()) *out->mutable_saver_def() = stored.saver_def();
  CollectionExporter exporter(stored, options, scope, rewritten, exclude, unbound,
                              out->mutable_collection_def());
  std::vector<std::string> keys = options.collection_list.has_value()
                                      ? *options.collection_list
                                      : exporter.LiveKeys();
  for (const std::string& key : keys) RETURN_IF_ERROR(exporter.Add(key));
  return absl::OkStatus();
}

bool RewritesNodes(const ExportOptions& options) {
  return !options.export_scope.empty() || options.clear_extraneous_savers ||
         options.clear_devices;
}

bool IsNoop(const ExportOptions& options) {
  return !RewritesNodes(options) && !options.strip_default_attrs &&
         !options.collection_list.has_value();
}

std::string SerializeDeterministic(const google::protobuf::MessageLite& message) {
  std::string out;
  out.resize(message.ByteSizeLong());
  google::protobuf::io::ArrayOutputStream array(out.data(), static_cast<int>(out.size()));
  google::protobuf::io::CodedOutputStream coded(&array);
  coded.SetSerializationDeterministic(true);
  message.SerializeWithCachedSizes(&coded);
  return out;
}

absl::Status FinishResult(const tensorflow::MetaGraphDef& out, bool as_text,
                          ExportResult* result) {
  if (as_text) {
    // Fields our schema does not know would print as bare numbers ("5: ..."), which no
    // text-format parser (ours, TensorFlow's text_format.Merge) reads back (D8);
    // TensorFlow prints a message's known fields only, so do the same.
    google::protobuf::TextFormat::Printer printer;
    printer.SetHideUnknownFields(true);
    if (!printer.PrintToString(out, &result->bytes)) {
      return absl::InternalError("could not print the exported MetaGraphDef as text");
    }
  } else {
    result->bytes = SerializeDeterministic(out);
  }
  result->node_count = out.graph_def().node_size();
  result->collections.clear();
  for (const auto& [key, unused] : out.collection_def())
    result->collections.push_back(key);
  std::sort(result->collections.begin(), result->collections.end());
  return absl::OkStatus();
}

}  // namespace mgreg::export_internal
