// Names and encodings of the RADOS backend's objects, keys and xattrs (the layout is
// described at the top of storage/rados/rados_backend.h). Private to storage/rados/.
#ifndef MGREG_STORAGE_RADOS_RADOS_CODEC_H_
#define MGREG_STORAGE_RADOS_RADOS_CODEC_H_

#include <climits>
#include <cstdint>
#include <map>
#include <rados/librados.hpp>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/sha256.h"
#include "google/protobuf/message_lite.h"
#include "mgreg/storage/rados_records.pb.h"
#include "storage/backend.h"

namespace mgreg::rados {

using librados::bufferlist;

inline constexpr char kCatalog[] = "catalog";
inline constexpr char kFormat[] = "mgreg-rados-1";
// Omap values read per round trip.
inline constexpr int kPage = 1000;
// Attempts of a guarded op that lost a race on one object, before ABORTED.
inline constexpr int kRetries = 32;

inline std::string Pad(int64_t v) { return absl::StrFormat("%020d", v); }
inline std::string StepKey(int64_t step) { return "s." + Pad(step); }
inline std::string ReverseKey(int64_t step) { return "r." + Pad(INT64_MAX - step); }
inline std::string EventKey(int64_t rev) { return "e." + Pad(rev); }
// A blob tombstone left by transaction `seq`, in the catalog.
inline std::string TombstoneKey(uint64_t seq, absl::string_view hex) {
  return absl::StrCat("z.", Pad(static_cast<int64_t>(seq)), ".", hex);
}
inline std::string ModelObject(absl::string_view model) {
  return absl::StrCat("m.", model);
}
inline std::string BlobObject(absl::string_view hex) { return absl::StrCat("b.", hex); }
inline std::string ChunkObject(absl::string_view raw) { return "c." + BytesToHex(raw); }

inline bufferlist Bl(absl::string_view s) {
  bufferlist bl;
  bl.append(s.data(), s.size());
  return bl;
}
// Numbers in xattrs are decimal text: the OSD compares them with cmpxattr as u64.
inline bufferlist U64(uint64_t v) { return Bl(std::to_string(v)); }
inline bufferlist Proto(const google::protobuf::MessageLite& m) {
  return Bl(m.SerializeAsString());
}

// The u64 xattr `name`; 0 if it is missing or not a number.
inline uint64_t AttrU64(const std::map<std::string, bufferlist>& attrs,
                        const std::string& name) {
  auto it = attrs.find(name);
  uint64_t v = 0;
  if (it == attrs.end() || !absl::SimpleAtoi(it->second.to_str(), &v)) return 0;
  return v;
}
// True if a staging area holds the chunk with these xattrs.
inline bool HasHold(const std::map<std::string, bufferlist>& attrs) {
  for (const auto& [name, value] : attrs) {
    if (name.rfind("h.", 0) == 0) return true;
  }
  return false;
}

inline storage::rados::RadosHead ToProto(const Head& h) {
  storage::rados::RadosHead p;
  p.set_revision(h.revision);
  p.set_oldest_event(h.oldest_event);
  p.set_models(h.models);
  p.set_checkpoints(h.checkpoints);
  p.set_blobs(h.blobs);
  p.set_chunks(h.chunks);
  p.set_chunk_bytes(h.chunk_bytes);
  p.set_version(h.version);
  return p;
}
inline Head FromProto(const storage::rados::RadosHead& p) {
  Head h;
  h.revision = p.revision();
  h.oldest_event = p.oldest_event();
  h.models = p.models();
  h.checkpoints = p.checkpoints();
  h.blobs = p.blobs();
  h.chunks = p.chunks();
  h.chunk_bytes = p.chunk_bytes();
  h.version = p.version();
  return h;
}

}  // namespace mgreg::rados

#endif  // MGREG_STORAGE_RADOS_RADOS_CODEC_H_
