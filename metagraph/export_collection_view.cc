// CollectionToJson / CollectionToText (metagraph/collection_view.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "metagraph/collection_kinds.h"
#include "metagraph/collection_view.h"
#include "metagraph/export_internal.h"
#include "metagraph/metagraph_io.h"

namespace mgreg {
namespace {

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates, beyond U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out += "\"";
  return out;
}

// One line of text: control characters and backslashes escaped, UTF-8 kept.
std::string TextLine(absl::string_view s) {
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string FloatText(float v, bool json) {
  if (std::isnan(v)) return json ? "\"NaN\"" : "NaN";
  if (std::isinf(v)) {
    const char* s = v > 0 ? "Infinity" : "-Infinity";
    return json ? absl::StrCat("\"", s, "\"") : s;
  }
  return absl::StrFormat("%.9g", v);
}

absl::StatusOr<tensorflow::MetaGraphDef> LoadCollections(absl::string_view stored) {
  std::string fields;
  tensorflow::MetaGraphDef mg;
  if (export_internal::CollectionFieldsFromWire(stored, &fields) &&
      mg.ParseFromString(fields)) {
    return mg;
  }
  return ParseMetaGraph(stored);
}

absl::StatusOr<const tensorflow::CollectionDef*> FindCollection(
    const tensorflow::MetaGraphDef& mg, absl::string_view key) {
  auto it = mg.collection_def().find(std::string(key));
  if (it != mg.collection_def().end()) return &it->second;
  std::vector<std::string> keys;
  for (const auto& [k, unused] : mg.collection_def()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return absl::NotFoundError(absl::StrCat("the graph has no collection '", key,
                                          "'; its collections are: [",
                                          absl::StrJoin(keys, ", "), "]"));
}

const char* KindName(const tensorflow::CollectionDef& def) {
  switch (def.kind_case()) {
    case tensorflow::CollectionDef::kNodeList:
      return "node_list";
    case tensorflow::CollectionDef::kBytesList:
      return "bytes_list";
    case tensorflow::CollectionDef::kInt64List:
      return "int64_list";
    case tensorflow::CollectionDef::kFloatList:
      return "float_list";
    case tensorflow::CollectionDef::kAnyList:
      return "any_list";
    case tensorflow::CollectionDef::KIND_NOT_SET:
      break;
  }
  return "none";
}

// The values of a collection rendered one by one, as JSON values or text lines.
std::vector<std::string> RenderValues(absl::string_view key,
                                      const tensorflow::CollectionDef& def,
                                      const CollectionKinds* kinds, bool json) {
  std::vector<std::string> out;
  auto bytes = [&](absl::string_view b) {
    if (IsValidUtf8(b)) return json ? JsonString(b) : TextLine(b);
    std::string encoded = absl::Base64Escape(b);
    return json ? JsonString(encoded) : absl::StrCat("base64:", encoded);
  };
  switch (def.kind_case()) {
    case tensorflow::CollectionDef::kNodeList:
      for (const auto& v : def.node_list().value()) out.push_back(bytes(v));
      break;
    case tensorflow::CollectionDef::kBytesList: {
      std::unique_ptr<google::protobuf::Message> proto =
          export_internal::NewRegisteredProto(key);
      if (proto == nullptr && kinds != nullptr) {
        if (const CollectionKinds::Kind* kind = kinds->Find(key)) proto = kind->New();
      }
      for (const auto& v : def.bytes_list().value()) {
        if (proto != nullptr && proto->ParseFromString(v)) {
          std::string rendered;
          if (json) {
            google::protobuf::util::JsonPrintOptions options;
            options.preserve_proto_field_names = true;
            if (google::protobuf::util::MessageToJsonString(*proto, &rendered, options)
                    .ok()) {
              out.push_back(rendered);
              continue;
            }
          } else {
            google::protobuf::TextFormat::Printer printer;
            printer.SetSingleLineMode(true);
            if (printer.PrintToString(*proto, &rendered)) {
              while (!rendered.empty() && rendered.back() == ' ') rendered.pop_back();
              out.push_back(rendered);
              continue;
            }
          }
        }
        out.push_back(bytes(v));
      }
      break;
    }
    case tensorflow::CollectionDef::kInt64List:
      for (int64_t v : def.int64_list().value()) out.push_back(absl::StrCat(v));
      break;
    case tensorflow::CollectionDef::kFloatList:
      for (float v : def.float_list().value()) out.push_back(FloatText(v, json));
      break;
    case tensorflow::CollectionDef::kAnyList:
      for (const auto& v : def.any_list().value()) {
        std::string value = absl::Base64Escape(v.value());
        out.push_back(json ? absl::StrCat("{\"type_url\":", JsonString(v.type_url()),
                                          ",\"value\":", JsonString(value), "}")
                           : absl::StrCat(TextLine(v.type_url()), " base64:", value));
      }
      break;
    case tensorflow::CollectionDef::KIND_NOT_SET:
      break;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> CollectionToJson(absl::string_view stored_metagraph,
                                             absl::string_view key,
                                             const CollectionKinds* kinds) {
  ASSIGN_OR_RETURN(tensorflow::MetaGraphDef mg, LoadCollections(stored_metagraph));
  ASSIGN_OR_RETURN(const tensorflow::CollectionDef* def, FindCollection(mg, key));
  return absl::StrCat("{\"key\":", JsonString(key), ",\"kind\":\"", KindName(*def),
                      "\",\"values\":[",
                      absl::StrJoin(RenderValues(key, *def, kinds, true), ","), "]}");
}

absl::StatusOr<std::string> CollectionToText(absl::string_view stored_metagraph,
                                             absl::string_view key,
                                             const CollectionKinds* kinds) {
  ASSIGN_OR_RETURN(tensorflow::MetaGraphDef mg, LoadCollections(stored_metagraph));
  ASSIGN_OR_RETURN(const tensorflow::CollectionDef* def, FindCollection(mg, key));
  std::string out;
  for (const std::string& line : RenderValues(key, *def, kinds, false))
    absl::StrAppend(&out, line, "\n");
  return out;
}

}  // namespace mgreg
