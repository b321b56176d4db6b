#include "metagraph/tensor_bundle.h"

#include <cstring>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/status_macros.h"
#include "leveldb/env.h"
#include "leveldb/iterator.h"
#include "leveldb/options.h"
#include "leveldb/table.h"
#include "metagraph/checkpoint_name.h"
#include "snappy.h"
#include "tensorflow/core/util/saved_tensor_slice.pb.h"

namespace mgreg {
namespace {

// A leveldb::RandomAccessFile over bytes the caller keeps alive.
class MemoryFile : public leveldb::RandomAccessFile {
 public:
  explicit MemoryFile(absl::string_view data) : data_(data) {}

  leveldb::Status Read(uint64_t offset, size_t n, leveldb::Slice* result,
                       char* /*scratch*/) const override {
    if (offset > data_.size() || n > data_.size() - offset) {
      *result = leveldb::Slice();
      return leveldb::Status::Corruption(absl::StrCat("read of ", n, " bytes at offset ",
                                                      offset, " is past the end (",
                                                      data_.size(), " bytes)"));
    }
    *result = leveldb::Slice(data_.data() + offset, n);
    return leveldb::Status::OK();
  }

 private:
  absl::string_view data_;
};

// leveldb reports every format problem as Corruption; a failed block checksum means the
// bytes were damaged after TensorFlow wrote them, anything else that they never were a
// table.
absl::Status FromLeveldb(const leveldb::Status& s) {
  const std::string text = s.ToString();
  if (absl::StrContains(text, "checksum mismatch")) {
    return absl::DataLossError(absl::StrCat("checkpoint index is corrupted: ", text));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("not a TensorFlow checkpoint index (.index table): ", text));
}

// leveldb allocates a buffer of a block handle's size (and of a Snappy block's declared
// uncompressed length) before it reads the block, trusting the file: a crafted .index
// could make it allocate terabytes (std::bad_alloc, the server aborts). So before
// leveldb sees the bytes, every block handle the table can reach (footer, index block
// entries) must lie inside the file, each such block's checksum must match (DATA_LOSS
// otherwise, as leveldb reports it), and every Snappy block must declare a length Snappy
// can actually produce from its bytes.
constexpr size_t kFooterBytes = 48;           // two padded block handles + 8-byte magic
constexpr size_t kBlockTrailerBytes = 5;      // type byte + CRC32C
constexpr uint64_t kMaxSnappyExpansion = 24;  // Snappy's best ratio is below 22:1

bool GetVarint(absl::string_view* in, uint64_t* v, int max_bytes) {
  *v = 0;
  for (int i = 0; i < max_bytes && !in->empty(); ++i) {
    const uint8_t b = static_cast<uint8_t>((*in)[0]);
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

absl::Status BadTable(absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("not a TensorFlow checkpoint index (.index table): ", why));
}

// Checks the handle at the front of `*in` and returns the block's (uncompressed) contents
// in `*contents` (decompressed into `*storage` if needed).
absl::Status CheckBlockHandle(absl::string_view file, absl::string_view* in,
                              absl::string_view* contents, std::string* storage) {
  uint64_t offset = 0, size = 0;
  if (!GetVarint(in, &offset, 10) || !GetVarint(in, &size, 10)) {
    return BadTable("malformed block handle");
  }
  const uint64_t limit = file.size() - kFooterBytes;
  if (offset > limit || size > limit - offset ||
      kBlockTrailerBytes > limit - offset - size) {
    return BadTable(absl::StrCat("block handle [", offset, ", +", size,
                                 ") lies outside the file (", file.size(), " bytes)"));
  }
  const absl::string_view raw = file.substr(offset, size);
  const uint8_t type = static_cast<uint8_t>(file[offset + size]);
  // The block's checksum first (as leveldb does), so damaged bytes are DATA_LOSS.
  uint32_t stored = 0;
  for (int k = 4; k >= 1; --k) {
    stored = (stored << 8) | static_cast<uint8_t>(file[offset + size + k]);
  }
  if (UnmaskCrc32c(stored) != Crc32c(file.substr(offset + size, 1), Crc32c(raw))) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint index is corrupted: block checksum mismatch at offset ", offset));
  }
  if (type == 0) {
    *contents = raw;
    return absl::OkStatus();
  }
  if (type != 1) return BadTable(absl::StrCat("unknown block type ", type));
  size_t length = 0;
  if (!snappy::GetUncompressedLength(raw.data(), raw.size(), &length) ||
      length > kMaxSnappyExpansion * raw.size() + 64 ||
      !snappy::Uncompress(raw.data(), raw.size(), storage)) {
    return BadTable(
        absl::StrCat("block at offset ", offset, " is not valid Snappy data"));
  }
  *contents = *storage;
  return absl::OkStatus();
}

// The pre-check described above: the footer's two handles, then every data-block handle
// stored in the index block.
absl::Status CheckBlockHandles(absl::string_view file) {
  if (file.size() < kFooterBytes) return absl::OkStatus();  // leveldb says "too short"
  // Not a table at all (no leveldb magic number): leveldb says so, INVALID_ARGUMENT.
  uint64_t magic = 0;
  for (int k = 7; k >= 0; --k) {
    magic = (magic << 8) | static_cast<uint8_t>(file[file.size() - 8 + k]);
  }
  if (magic != 0xdb4775248b80fb57ull) return absl::OkStatus();
  absl::string_view footer = file.substr(file.size() - kFooterBytes);
  absl::string_view ignored;
  std::string storage;
  RETURN_IF_ERROR(CheckBlockHandle(file, &footer, &ignored, &storage));  // metaindex
  absl::string_view index;
  std::string index_storage;
  RETURN_IF_ERROR(CheckBlockHandle(file, &footer, &index, &index_storage));
  // Block layout: entries, then num_restarts fixed32 offsets, then num_restarts.
  if (index.size() < 4) return BadTable("index block too short");
  uint32_t num_restarts = 0;
  std::memcpy(&num_restarts, index.data() + index.size() - 4, 4);  // little-endian host
  if (num_restarts > (index.size() - 4) / 4) return BadTable("bad index block");
  absl::string_view entries =
      index.substr(0, index.size() - 4 - 4 * size_t{num_restarts});
  while (!entries.empty()) {
    uint64_t shared = 0, non_shared = 0, value_length = 0;
    if (!GetVarint(&entries, &shared, 5) || !GetVarint(&entries, &non_shared, 5) ||
        !GetVarint(&entries, &value_length, 5) || non_shared > entries.size() ||
        value_length > entries.size() - non_shared) {
      return BadTable("bad index block entry");
    }
    entries.remove_prefix(non_shared);
    absl::string_view handle = entries.substr(0, value_length);
    entries.remove_prefix(value_length);
    absl::string_view block;
    RETURN_IF_ERROR(CheckBlockHandle(file, &handle, &block, &storage));
  }
  return absl::OkStatus();
}

std::string Quote(absl::string_view key) {
  return absl::StrCat("'", absl::CEscape(key), "'");
}

// A V1 checkpoint is the same table format, but its "" value is a SavedTensorSlices
// whose `meta` lists the tensors.
bool IsV1HeaderValue(absl::string_view value) {
  tensorflow::SavedTensorSlices sts;
  return sts.ParseFromArray(value.data(), static_cast<int>(value.size())) &&
         sts.has_meta() && sts.meta().tensor_size() > 0 &&
         sts.GetReflection()->GetUnknownFields(sts).empty();
}

// The checksum of a DT_STRING tensor. Its bytes are: one varint64 length per element,
// the 4-byte little-endian masked CRC32C of those lengths, then the elements' bytes.
// TensorFlow's checksum covers each length as a 4-byte little-endian integer (the low 32
// bits, not the varint stored), then the 4 checksum bytes, then the elements; the stored
// length checksum covers the same 4-byte lengths. (Worked out on the real DT_STRING
// tensors in the test data.)
absl::StatusOr<uint32_t> StringTensorCrc(const std::string& name,
                                         const tensorflow::BundleEntryProto& entry,
                                         absl::string_view bytes) {
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("string tensor ", Quote(name), " is corrupted: ", why));
  };
  int64_t elements = 1;
  for (const auto& dim : entry.shape().dim()) {
    if (dim.size() < 0) return corrupt("its shape in the index has an unknown dimension");
    elements *= dim.size();
    if (elements > static_cast<int64_t>(bytes.size())) {
      return corrupt("more elements than bytes");
    }
  }
  uint32_t crc = 0;
  uint64_t total = 0;
  size_t pos = 0;
  for (int64_t i = 0; i < elements; ++i) {
    uint64_t len = 0;
    int shift = 0;
    while (true) {
      if (pos >= bytes.size() || shift > 63) return corrupt("truncated element length");
      const uint8_t b = static_cast<uint8_t>(bytes[pos++]);
      len |= static_cast<uint64_t>(b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) == 0) break;
    }
    char le[4];
    for (int k = 0; k < 4; ++k) le[k] = static_cast<char>((len >> (8 * k)) & 0xff);
    crc = Crc32c(absl::string_view(le, 4), crc);
    total += len;
  }
  if (bytes.size() - pos < 4) return corrupt("truncated length checksum");
  const absl::string_view checksum = bytes.substr(pos, 4);
  uint32_t stored = 0;
  for (int k = 3; k >= 0; --k) stored = (stored << 8) | static_cast<uint8_t>(checksum[k]);
  if (stored != MaskCrc32c(crc))
    return corrupt("element lengths do not match their checksum");
  crc = Crc32c(checksum, crc);
  pos += 4;
  if (total != bytes.size() - pos)
    return corrupt("element lengths do not add up to its size");
  return MaskCrc32c(Crc32c(bytes.substr(pos), crc));
}

}  // namespace

absl::StatusOr<BundleIndex> ReadBundleIndex(absl::string_view index_bytes) {
  RETURN_IF_ERROR(CheckBlockHandles(index_bytes));
  MemoryFile file(index_bytes);
  leveldb::Options options;
  options.paranoid_checks = true;  // Verify the checksums of the index and meta blocks.
  leveldb::Table* raw_table = nullptr;
  leveldb::Status s =
      leveldb::Table::Open(options, &file, index_bytes.size(), &raw_table);
  if (!s.ok()) return FromLeveldb(s);
  std::unique_ptr<leveldb::Table> table(raw_table);

  leveldb::ReadOptions read_options;
  read_options.verify_checksums = true;
  read_options.fill_cache = false;
  std::unique_ptr<leveldb::Iterator> it(table->NewIterator(read_options));

  BundleIndex out;
  bool have_header = false;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const absl::string_view key(it->key().data(), it->key().size());
    const absl::string_view value(it->value().data(), it->value().size());
    if (key.empty()) {
      if (IsV1HeaderValue(value)) {
        return absl::InvalidArgumentError(
            "this is a V1 checkpoint (SaverDef.version V1, a table of "
            "SavedTensorSlices); "
            "V1 checkpoints are not supported: re-save it with a V2 Saver");
      }
      if (!out.header.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
          !out.header.GetReflection()->GetUnknownFields(out.header).empty()) {
        return absl::InvalidArgumentError(
            "checkpoint index header (the entry with the empty key) does not parse as a "
            "BundleHeaderProto");
      }
      have_header = true;
      continue;
    }
    tensorflow::BundleEntryProto entry;
    if (!entry.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint index entry ", Quote(key),
                       " does not parse as a BundleEntryProto"));
    }
    out.entries.emplace_back(std::string(key), std::move(entry));
  }
  if (!it->status().ok()) return FromLeveldb(it->status());
  if (!have_header) {
    return absl::InvalidArgumentError(
        "checkpoint index has no header entry (the empty key holding a "
        "BundleHeaderProto); "
        "it is not a TensorFlow V2 checkpoint index");
  }
  return out;
}

absl::Status ValidateBundle(const BundleIndex& index, int num_data_files,
                            const std::map<int, int64_t>& shard_sizes) {
  const int n = index.header.num_shards();
  if (n != num_data_files) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint index expects ", n, " data file(s) (", DataFileName(0, n > 0 ? n : 1),
        " ...) but ", num_data_files, " were given"));
  }
  for (int shard = 0; shard < n; ++shard) {
    if (shard_sizes.count(shard) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("data file ", DataFileName(shard, n), " is missing"));
    }
  }
  for (const auto& [shard, size] : shard_sizes) {
    if (shard < 0 || shard >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("data shard ", shard, " is outside the index's ", n, " shard(s)"));
    }
    if (size < 0) {
      return absl::InvalidArgumentError(absl::StrCat("data file ", DataFileName(shard, n),
                                                     " has negative size ", size));
    }
  }
  for (const auto& [name, entry] : index.entries) {
    if (entry.slices_size() > 0)
      continue;  // Partitioned: the slices' entries hold the bytes.
    if (entry.shard_id() < 0 || entry.shard_id() >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quote(name), " is in shard ", entry.shard_id(),
                       ", but the index has ", n, " shard(s)"));
    }
    const int64_t shard_size = shard_sizes.at(entry.shard_id());
    if (entry.offset() < 0 || entry.size() < 0 || entry.offset() > shard_size ||
        entry.size() > shard_size - entry.offset()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quote(name), " occupies bytes [", entry.offset(), ", +",
                       entry.size(), ") of ", DataFileName(entry.shard_id(), n),
                       ", which has only ", shard_size, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyTensorCrc(const std::string& name,
                             const tensorflow::BundleEntryProto& entry,
                             absl::string_view bytes) {
  if (static_cast<int64_t>(bytes.size()) != entry.size()) {
    return absl::DataLossError(absl::StrCat("tensor ", Quote(name), " has ", bytes.size(),
                                            " bytes; the index says ", entry.size()));
  }
  uint32_t actual = 0;
  switch (entry.dtype()) {
    case tensorflow::DT_STRING: {
      ASSIGN_OR_RETURN(actual, StringTensorCrc(name, entry, bytes));
      break;
    }
    case tensorflow::DT_VARIANT:
      return absl::UnimplementedError(
          absl::StrCat("tensor ", Quote(name),
                       " is a DT_VARIANT tensor, whose checksum is not checked"));
    default:
      actual = MaskCrc32c(Crc32c(bytes));
  }
  if (actual != entry.crc32c()) {
    return absl::DataLossError(absl::StrCat("tensor ", Quote(name),
                                            " is corrupted: masked CRC32C ", actual,
                                            ", the index says ", entry.crc32c()));
  }
  return absl::OkStatus();
}

}  // namespace mgreg
