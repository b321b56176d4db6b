#include "tests/testing/store_surgery.h"

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "rocksdb/db.h"

namespace mgreg::testing {
namespace {

absl::Status Check(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

std::string Name(const std::string& raw) { return BytesToHex(raw.substr(0, 8)); }

}  // namespace

absl::StatusOr<std::string> DamageStore(const std::string& path, Damage damage) {
  std::vector<std::string> names;
  absl::Status s =
      Check(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names),
            "listing column families");
  if (!s.ok()) return s;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  int meta = -1, chunks = -1;
  for (const std::string& n : names) {
    if (n == "meta") meta = static_cast<int>(cfs.size());
    if (n == "chunks") chunks = static_cast<int>(cfs.size());
    rocksdb::ColumnFamilyOptions o;
    if (n == "chunks") {
      o.enable_blob_files = true;  // as the store writes it
      o.min_blob_size = 1024;
    }
    cfs.emplace_back(n, o);
  }
  if (meta < 0 || chunks < 0) return absl::FailedPreconditionError("not an mgreg store");
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  s = Check(rocksdb::DB::Open(rocksdb::DBOptions(), path, cfs, &handles, &raw_db),
            "opening the store");
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::DB> db(raw_db);
  auto close = [&]() {
    for (rocksdb::ColumnFamilyHandle* h : handles) db->DestroyColumnFamilyHandle(h);
    return Check(db->Close(), "closing the store");
  };

  // The first referenced chunk: its refcount key is "K" + raw SHA-256.
  std::string chunk, refs;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), handles[meta]));
    it->Seek("K");
    if (it->Valid() && it->key().starts_with("K")) {
      chunk = it->key().ToString().substr(1);
      refs = it->value().ToString();
    }
  }
  std::string name;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  switch (damage) {
    case Damage::kMissingChunk:
      if (chunk.empty()) return absl::FailedPreconditionError("the store has no chunk");
      s = Check(db->Delete(sync, handles[chunks], chunk), "deleting a chunk");
      name = Name(chunk);
      break;
    case Damage::kLeakedChunk: {
      const std::string bytes(4096, 'L');
      const std::string raw = Sha256Raw(bytes);
      s = Check(db->Put(sync, handles[chunks], raw, bytes), "writing a stray chunk");
      name = Name(raw);
      break;
    }
    case Damage::kWrongChunkRefcount: {
      if (chunk.empty() || refs.size() < 8) {
        return absl::FailedPreconditionError("the store has no chunk refcount");
      }
      // The value starts with the refcount as a little-endian fixed64.
      uint64_t n = 0;
      for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(refs[i]);
      ++n;
      for (int i = 0; i < 8; ++i) refs[i] = static_cast<char>(n >> (8 * i));
      s = Check(db->Put(sync, handles[meta], "K" + chunk, refs), "writing a refcount");
      name = Name(chunk);
      break;
    }
    case Damage::kMisfiledBlob: {
      // A blob record's key is "B" + its digest (storage/blob_key.h); a copy of the
      // first one under an all-zero digest no longer matches its own content.
      std::string blob;
      {
        std::unique_ptr<rocksdb::Iterator> it(
            db->NewIterator(rocksdb::ReadOptions(), handles[meta]));
        it->Seek("B");
        if (it->Valid() && it->key().starts_with("B")) blob = it->value().ToString();
      }
      if (blob.empty()) return absl::FailedPreconditionError("the store has no blob");
      name = std::string(64, '0');
      s = Check(db->Put(sync, handles[meta], "B" + name, blob), "writing a blob record");
      break;
    }
  }
  if (s.ok()) s = Check(db->Flush(rocksdb::FlushOptions()), "flushing");
  absl::Status closed = close();
  if (!s.ok()) return s;
  if (!closed.ok()) return closed;
  return name;
}

}  // namespace mgreg::testing
