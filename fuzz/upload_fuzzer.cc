// The upload protocol driven by untrusted clients: a sequence of BeginUpload, PutFile
// streams (header, data, existing_chunk and existing_chunks messages), GetUpload,
// CommitUpload and AbortUpload decoded from the input, run against a RegistryService over
// an in-memory store (no network). Invariants: every committed step reads back with the
// sizes and SHA-256 of its manifest, and nothing is readable of a step that was never
// committed.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "fuzz/fuzz_input.h"
#include "fuzz/fuzz_target.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "leveldb/table_builder.h"
#include "server/core/put_file_message.h"
#include "server/core/registry_service.h"
#include "storage/store.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"

namespace mgreg::fuzz {

namespace {

constexpr size_t kChunkBytes = 16;  // small, so short inputs cross chunk boundaries

// A leveldb::WritableFile into a string, for building a .index in memory.
class StringFile : public leveldb::WritableFile {
 public:
  explicit StringFile(std::string* out) : out_(out) {}
  leveldb::Status Append(const leveldb::Slice& data) override {
    out_->append(data.data(), data.size());
    return leveldb::Status::OK();
  }
  leveldb::Status Close() override { return leveldb::Status::OK(); }
  leveldb::Status Flush() override { return leveldb::Status::OK(); }
  leveldb::Status Sync() override { return leveldb::Status::OK(); }

 private:
  std::string* out_;
};

// A valid one-shard checkpoint: .index with one float tensor `w` of kDataBytes bytes at
// offset 0 of data-00000-of-00001, and a tiny .meta.
constexpr int kDataBytes = 40;

std::string DataContent() {
  std::string s(kDataBytes, '\0');
  for (int i = 0; i < kDataBytes; ++i) s[i] = static_cast<char>(i * 7 + 3);
  return s;
}

std::string IndexContent() {
  std::string out;
  StringFile file(&out);
  leveldb::Options options;
  options.compression = leveldb::kNoCompression;
  leveldb::TableBuilder builder(options, &file);
  tensorflow::BundleHeaderProto header;
  header.set_num_shards(1);
  builder.Add("", header.SerializeAsString());
  tensorflow::BundleEntryProto entry;
  entry.set_dtype(tensorflow::DT_FLOAT);
  entry.mutable_shape()->add_dim()->set_size(kDataBytes / 4);
  entry.set_shard_id(0);
  entry.set_offset(0);
  entry.set_size(kDataBytes);
  entry.set_crc32c(MaskCrc32c(Crc32c(DataContent())));
  builder.Add("w", entry.SerializeAsString());
  FUZZ_CHECK(builder.Finish().ok());
  return out;
}

std::string MetaContent() {
  tensorflow::MetaGraphDef meta;
  meta.mutable_meta_info_def()->set_tensorflow_version("1.15.0");
  tensorflow::NodeDef* node = meta.mutable_graph_def()->add_node();
  node->set_name("w");
  node->set_op("VariableV2");
  return meta.SerializeAsString();
}

// File names a client might send: the valid ones first.
const char* const kNames[] = {"index",
                              "meta",
                              "data-00000-of-00001",
                              "data-00000-of-00002",
                              "data-00001-of-00002",
                              "data-1-of-2",
                              "../index",
                              ""};
constexpr size_t kNumNames = sizeof(kNames) / sizeof(kNames[0]);

// The true content of each name (what a well-behaved client would send).
const std::string& Content(const std::string& name) {
  static const auto* contents = new std::map<std::string, std::string>{
      {"index", IndexContent()},
      {"meta", MetaContent()},
      {"data-00000-of-00001", DataContent()},
      {"data-00000-of-00002", std::string(20, 'a')},
      {"data-00001-of-00002", std::string(33, 'b')},
  };
  static const std::string kEmpty;
  auto it = contents->find(name);
  return it == contents->end() ? kEmpty : it->second;
}

const char* const kModels[] = {"m", "team-a/m", "m", "bad name", ""};
const char* const kBasenames[] = {"model.ckpt", "ckpt", "", "a/b"};

struct Uploaded {
  std::string id;
  std::string model;
  int64_t step = 0;
};

// Reads a whole committed file back and checks it against its FileInfo.
void CheckReadable(RegistryService& service, const v1::Checkpoint& cp) {
  for (const v1::FileInfo& f : cp.files()) {
    v1::ReadFileRequest req;
    req.set_model(cp.model());
    req.set_step(cp.step());
    req.set_name(f.name());
    absl::StatusOr<std::unique_ptr<MessageSource<v1::FileChunk>>> source =
        service.ReadFile(req);
    FUZZ_CHECK(source.ok());
    Sha256 hash;
    ChunkedSha256 chunked;  // the server records it for every file (issue 17)
    int64_t total = 0;
    v1::FileChunk chunk;
    while (true) {
      absl::StatusOr<bool> more = (*source)->Next(&chunk);
      FUZZ_CHECK(more.ok());
      if (!*more) break;
      FUZZ_CHECK(chunk.offset() == total);
      hash.Update(chunk.data());
      chunked.Update(chunk.data());
      total += static_cast<int64_t>(chunk.data().size());
    }
    FUZZ_CHECK(total == f.size());
    FUZZ_CHECK(hash.HexDigest() == f.sha256());
    FUZZ_CHECK(chunked.HexDigest() == f.chunked_sha256());
  }
}

}  // namespace

int FuzzOne(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  std::unique_ptr<Store> store = NewMemoryStore();
  RegistryServiceOptions options;
  options.chunk_bytes = kChunkBytes;
  options.export_cache_bytes = 1 << 16;
  RegistryService service(store.get(), options);
  std::vector<Uploaded> uploads;
  std::map<std::pair<std::string, int64_t>, bool> committed;

  auto upload_id = [&]() -> std::string {
    const uint8_t b = in.Byte();
    if (uploads.empty() || b >= 0xf0) return b == 0xff ? in.Bytes(40) : "no-such-upload";
    return uploads[b % uploads.size()].id;
  };

  for (int op = 0; op < 64 && !in.empty(); ++op) {
    switch (in.Pick(6)) {
      case 0: {  // BeginUpload
        v1::BeginUploadRequest req;
        req.set_model(kModels[in.Pick(5)]);
        req.set_step(static_cast<int8_t>(in.Byte()));
        req.set_basename(kBasenames[in.Pick(4)]);
        const uint8_t files = in.Byte();
        req.set_overwrite(files & 0x80);
        for (int i = 0; i < 7; ++i) {
          if (!(files & (1u << i))) continue;
          const std::string name = kNames[i];
          v1::FileInfo* f = req.add_files();
          f->set_name(name);
          const std::string& content = Content(name);
          const uint8_t how = in.Byte();
          // Mostly the truth; sometimes a wrong size or digest, as a buggy client sends.
          f->set_size(how % 8 == 1
                          ? static_cast<int64_t>(how) - 100
                          : static_cast<int64_t>(content.size()) + (how % 8 == 2));
          f->set_sha256(how % 8 == 3   ? std::string(64, 'f')
                        : how % 8 == 4 ? "xyz"
                                       : Sha256Hex(content));
        }
        if (in.Bool()) (*req.mutable_metadata())["loss"] = in.Bytes(8);
        absl::StatusOr<v1::Upload> upload = service.BeginUpload(req);
        if (upload.ok())
          uploads.push_back({upload->upload_id(), req.model(), req.step()});
        break;
      }
      case 1: {  // PutFile: a header, then data / existing_chunk messages, then the end
        v1::PutFileRequest::Header header;
        header.set_upload_id(upload_id());
        const std::string name = kNames[in.Pick(kNumNames)];
        header.set_name(name);
        const std::string& content = Content(name);
        const uint8_t offset_kind = in.Byte();
        int64_t offset = 0;
        if (offset_kind % 4 == 1) offset = kChunkBytes * (offset_kind >> 4);
        if (offset_kind % 4 == 2) offset = -static_cast<int64_t>(offset_kind);
        header.set_offset(offset);
        if (offset_kind & 0x08) {
          header.set_size(static_cast<int64_t>(content.size()));
          header.set_sha256(Sha256Hex(content));
        }
        absl::StatusOr<std::unique_ptr<FileSink>> sink = service.OpenFileSink(header);
        if (!sink.ok()) break;
        size_t pos = offset > 0 ? static_cast<size_t>(offset) : 0;
        // The next `n` bytes of the true content from pos (fewer at its end), taken.
        const auto take = [&](size_t n) {
          const std::string piece = pos < content.size() ? content.substr(pos, n) : "";
          pos += piece.size();
          return piece;
        };
        const int messages = in.Byte() % 8;
        bool failed = false;
        for (int m = 0; m < messages && !failed; ++m) {
          const uint8_t kind = in.Byte();
          v1::PutFileRequest message;
          if (kind % 4 == 0) {  // the next bytes of the true content
            message.set_data(take(kind >> 2));
          } else if (kind % 4 == 1) {  // bytes from the input
            message.set_data(in.Bytes(64));
          } else if (kind % 4 == 2) {
            // The true next chunk as an existing_chunk, or the next 1-7 true chunks
            // as existing_chunks.
            const int batch = (kind >> 2) % 8;
            for (int c = 0; c < std::max(batch, 1); ++c) {
              const std::string chunk = Sha256Raw(take(kChunkBytes));
              if (batch == 0) message.set_existing_chunk(chunk);
              if (batch > 0) message.add_existing_chunks(chunk);
            }
          } else {  // an arbitrary "digest", alone or after a true chunk in a batch
            if ((kind >> 2) % 2 == 0) {
              message.set_existing_chunk(in.Bytes(40));
            } else {
              message.add_existing_chunks(Sha256Raw(take(kChunkBytes)));
              message.add_existing_chunks(in.Bytes(40));
            }
          }
          failed = !AppendPutFileMessage(**sink, message).ok();
        }
        if (!failed) (*sink)->Finish().IgnoreError();
        break;
      }
      case 2: {  // CommitUpload
        v1::CommitUploadRequest req;
        req.set_upload_id(upload_id());
        absl::StatusOr<v1::Checkpoint> cp = service.CommitUpload(req);
        if (cp.ok()) {
          committed[{cp->model(), cp->step()}] = true;
          CheckReadable(service, *cp);
        }
        break;
      }
      case 3: {  // AbortUpload
        v1::AbortUploadRequest req;
        req.set_upload_id(upload_id());
        service.AbortUpload(req).IgnoreError();
        break;
      }
      case 4: {  // GetUpload
        v1::GetUploadRequest req;
        req.set_upload_id(upload_id());
        absl::StatusOr<v1::Upload> up = service.GetUpload(req);
        if (up.ok()) {
          for (const v1::UploadFile& f : up->files()) {
            FUZZ_CHECK(f.held_bytes() >= 0 && f.held_bytes() <= f.file().size());
          }
        }
        break;
      }
      default: {  // Read the latest of a model: only committed steps are visible
        v1::GetLatestCheckpointRequest req;
        req.set_model(kModels[in.Pick(2)]);
        absl::StatusOr<v1::Checkpoint> cp = service.GetLatestCheckpoint(req);
        if (cp.ok()) {
          FUZZ_CHECK(committed.count({cp->model(), cp->step()}) == 1);
          CheckReadable(service, *cp);
        }
        break;
      }
    }
  }
  return 0;
}

}  // namespace mgreg::fuzz
