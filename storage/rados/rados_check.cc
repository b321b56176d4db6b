// The RADOS backend's scan behind Store::Check: the catalog's records, then every object
// of the namespace (storage/rados/rados_backend.h).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "storage/rados/rados_backend.h"

namespace mgreg::rados {

using storage::CheckpointRecord;
using storage::Event;
using storage::ModelRecord;

absl::Status RadosBackend::Scan(RecordSink* sink) {
  ASSIGN_OR_RETURN(Head head, ReadHead());
  sink->SetRevision(head.revision);
  std::map<std::string, CheckpointRecord> latest;
  std::vector<ModelRecord> models;
  std::string after = "";
  for (bool more = true; more;) {
    std::map<std::string, bufferlist> vals;
    RETURN_IF_ERROR(OmapPage(kCatalog, after, "", &vals, &more));
    for (const auto& [key, value] : vals) {
      after = key;
      if (key.rfind("d.", 0) == 0) {
        ASSIGN_OR_RETURN(ModelRecord m, Parse<ModelRecord>(value, kCatalog));
        sink->AddModel(m);
        models.push_back(std::move(m));
      } else if (key.rfind("l.", 0) == 0) {
        ASSIGN_OR_RETURN(CheckpointRecord c, Parse<CheckpointRecord>(value, kCatalog));
        latest[key.substr(2)] = std::move(c);
      } else if (key.rfind("e.", 0) == 0) {
        ASSIGN_OR_RETURN(Event e, Parse<Event>(value, kCatalog));
        sink->AddEvent(e);
      }
    }
  }
  for (auto it = io_.nobjects_begin(); it != io_.nobjects_end(); ++it) {
    const std::string oid = it->get_oid();
    if (oid.rfind("m.", 0) == 0) {
      const std::string model = oid.substr(2);
      std::string key_after = "s.";
      for (bool more = true; more;) {
        std::map<std::string, bufferlist> vals;
        RETURN_IF_ERROR(OmapPage(oid, key_after, "s.", &vals, &more));
        for (const auto& [key, value] : vals) {
          key_after = key;
          int64_t step = -1;
          if (!absl::SimpleAtoi(key.substr(2), &step)) {
            sink->AddProblem(absl::StrCat("bad step key ", key, " in ", oid));
            continue;
          }
          ASSIGN_OR_RETURN(CheckpointRecord c, Parse<CheckpointRecord>(value, oid));
          sink->AddCheckpoint(model, step, c);
        }
      }
    } else if (oid.rfind("b.", 0) == 0) {
      ASSIGN_OR_RETURN(std::optional<BlobEntry> b, ReadBlob(oid.substr(2)));
      if (b.has_value()) sink->AddBlob(b->record, b->refs);
    } else if (oid.rfind("c.", 0) == 0) {
      const std::string hex = oid.substr(2);
      if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), [](char ch) {
            return absl::ascii_isxdigit(ch);
          })) {
        sink->AddProblem(absl::StrCat("object ", oid, " is not a chunk name"));
        continue;
      }
      const std::string raw = absl::HexStringToBytes(hex);
      std::map<std::string, bufferlist> attrs;
      bufferlist data;
      librados::ObjectReadOperation op;
      int r1 = 0, r2 = 0;
      op.getxattrs(&attrs, &r1);
      op.read(0, 0, &data, &r2);
      int r = io_.operate(oid, &op, nullptr);
      if (r == -ENOENT) continue;  // freed meanwhile
      if (r < 0 || r1 < 0 || r2 < 0)
        return Error(r < 0 ? r : std::min(r1, r2), "checking a chunk", oid);
      const uint64_t refs = AttrU64(attrs, "refs");
      if (refs > 0) {
        sink->AddChunkRefcount(raw, static_cast<int64_t>(refs),
                               static_cast<uint32_t>(AttrU64(attrs, "size")));
      }
      sink->AddChunkBytes(raw, data.to_str());
      if (HasHold(attrs)) sink->AddHeld(raw);
    }
  }
  sink->AddServedHead(head);
  for (const ModelRecord& m : models) {
    auto l = latest.find(m.name());
    sink->AddServedModel(m, l == latest.end()
                                ? std::optional<CheckpointRecord>()
                                : std::optional<CheckpointRecord>(l->second));
  }
  return absl::OkStatus();
}

}  // namespace mgreg::rados
