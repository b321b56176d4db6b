// The mgreg C++ client: push checkpoints, ask for the latest one, list, fetch filtered
// graphs and restore checkpoints into a directory TensorFlow loads as is.
//
// Every method returns the server's status unchanged in code and message (NOT_FOUND,
// ALREADY_EXISTS, ...), or a local error (INVALID_ARGUMENT for a bad prefix, NOT_FOUND
// for a missing local file, DATA_LOSS when downloaded bytes fail their SHA-256).
//
// Thread safety: a Client may be used from several threads at once.
#ifndef MGREG_CLIENT_CLIENT_H_
#define MGREG_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mgreg/v1/registry.pb.h"
#include "tensorflow/python/training/checkpoint_state.pb.h"

namespace mgreg {

namespace v1 {
class Registry;
}

struct ClientOptions {
  // host:port of the server.
  std::string target = "127.0.0.1:8470";
  // Largest gRPC message sent or received.
  int max_message_bytes = 16 << 20;
  // Deadline of unary calls (streams have none: they can last long).
  absl::Duration unary_timeout = absl::Seconds(60);
  // Largest PutFile data message: two 1 MiB chunks, which the server hashes together.
  size_t upload_message_bytes = 2u << 20;
  // Bearer token sent with every call ("authorization: Bearer <token>"); empty: none.
  std::string token;
  // TLS: set use_tls, and ca_cert_pem to trust a private CA (empty: the system roots).
  // cert_pem and key_pem present a client certificate (mutual TLS).
  bool use_tls = false;
  std::string ca_cert_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Called with the bytes done and the total of a long transfer.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// The files of a local checkpoint prefix, as `mgreg push` would upload them.
struct LocalCheckpoint {
  std::string directory;
  std::string basename;         // "model.ckpt"
  std::optional<int64_t> step;  // from the prefix, if it ends in -<step>
  // name ("index", "meta", "data-00000-of-00001") -> local path
  std::map<std::string, std::string> files;
};
// Finds `<prefix>.index`, every `<prefix>.data-NNNNN-of-MMMMM` and `<prefix>.meta`.
// INVALID_ARGUMENT for a malformed prefix; NOT_FOUND if there is no .index or no data
// file, naming what is missing.
absl::StatusOr<LocalCheckpoint> FindLocalCheckpoint(const std::string& prefix);

// The files of a local SavedModel version directory (a TF Serving version:
// saved_model.pb or .pbtxt, variables/, assets/, assets.extra/, fingerprint.pb, ...), as
// `mgreg push` would upload them: every file of the tree, named by its path inside it.
struct LocalSavedModel {
  std::string directory;
  std::optional<int64_t>
      version;  // from the directory's name, if all digits ("00000123")
  // name ("variables/variables.index") -> local path
  std::map<std::string, std::string> files;
};
// NOT_FOUND naming both files looked for if `dir` holds neither saved_model.pb nor
// saved_model.pbtxt, or naming the variables files missing; INVALID_ARGUMENT for a
// symbolic link pointing outside `dir` (or to a directory), a name with "..", control
// characters or a special file (socket, fifo).
absl::StatusOr<LocalSavedModel> FindLocalSavedModel(const std::string& dir);

// Which step of a model a read names: a step number, an alias, or (neither) the latest.
struct StepRef {
  std::optional<int64_t> step;
  std::string alias;

  StepRef() = default;
  StepRef(std::nullopt_t) {}                      // NOLINT: implicit on purpose
  StepRef(int64_t s) : step(s) {}                 // NOLINT
  StepRef(std::optional<int64_t> s) : step(s) {}  // NOLINT
  static StepRef Alias(std::string name) {
    StepRef r;
    r.alias = std::move(name);
    return r;
  }
};

// What a push sent, for callers who want to see the deduplication at work.
struct PushStats {
  // File bytes sent over the network.
  int64_t bytes_sent = 0;
  // Bytes of whole files the server already held (not sent).
  int64_t bytes_deduplicated_files = 0;
  // Bytes of chunks the server already held inside files it did not hold (not sent).
  int64_t bytes_deduplicated_chunks = 0;
};

struct PushOptions {
  // Defaults to the step in the prefix (the version in a SavedModel directory's name).
  std::optional<int64_t> step;
  bool overwrite = false;
  // With overwrite: also replace a step that is pinned or named by an alias.
  bool force = false;
  std::map<std::string, std::string> metadata;
  ProgressFn progress;
  // When the model already has a step, chunks of changed files that the server holds
  // (e.g. frozen layers) are not sent again.
  bool deduplicate_chunks = true;
  // Filled in when not null.
  PushStats* stats = nullptr;
};

struct RestoreOptions {
  // Defaults to the latest step.
  std::optional<int64_t> step;
  // Instead of step: the step this alias names.
  std::string alias;
  // Applied to the restored .meta; default = the stored bytes. Checkpoints only: a
  // SavedModel version is restored as stored (INVALID_ARGUMENT otherwise).
  v1::GraphOptions graph_options;
  ProgressFn progress;
  // Keep at most this many checkpoints listed in the directory's `checkpoint` file
  // (the restored one included); the files of those dropped are deleted after the
  // switch. 0 keeps every one listed whose files are still there. Entries of the
  // `checkpoint` file outside `dir` (absolute paths elsewhere, "..") are not the
  // directory's own: never deleted, not counted, and no longer listed.
  int keep_last = 0;
  // SavedModel steps: keep_last keeps the restored version and the newest keep_last - 1
  // other version directories of the base path (0: every one). With this set, versions
  // newer than the restored one are removed too, so that TF Serving (which serves the
  // highest version) serves it: what following an alias that moved back needs.
  bool remove_newer_versions = false;
  // Called once per restore with a message for the user when the directory's
  // `checkpoint` file lists entries outside it (see keep_last).
  std::function<void(const std::string&)> on_warning;
};

// A server stream of watch events. Next() blocks; Cancel() may be called from another
// thread to end it.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // The next event; false when the stream has ended (then call Finish).
  virtual bool Next(v1::WatchEvent* event) = 0;
  // Why the stream ended (CANCELLED after Cancel()).
  virtual absl::Status Finish() = 0;
  virtual void Cancel() = 0;
};

class Client {
 public:
  // Creates a channel to options.target. Does not wait for the server.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();

  // The channel and the one call helper (client/client_impl.h), for the client's own
  // files; opaque to callers.
  struct Impl;

  // Uploads the checkpoint at `prefix` as (model, step) and commits it. Files the
  // server already holds are not sent again. Idempotent for identical content.
  // `prefix` may also be a SavedModel version directory: then it is PushSavedModel.
  // NOT_FOUND, naming the files looked for, if it is neither.
  absl::StatusOr<v1::Checkpoint> Push(const std::string& model, const std::string& prefix,
                                      const PushOptions& options);
  // Uploads the SavedModel version directory `dir` (FindLocalSavedModel) as one step of
  // kind SAVED_MODEL, (model, options.step or the version in the directory's name),
  // with the same deduplication, resume and atomic commit as Push.
  absl::StatusOr<v1::Checkpoint> PushSavedModel(const std::string& model,
                                                const std::string& dir,
                                                const PushOptions& options);

  // The multi-writer upload, one call per step of it.
  absl::StatusOr<v1::Upload> BeginUpload(const v1::BeginUploadRequest& request);
  // Sends local file `path` as `name`, resuming at the bytes the server holds, in one
  // pass: read, hashed and sent together, chunks the server holds named instead of
  // sent. A file the upload does not list is announced by its header: with its digest
  // when it fits one pipeline window, else its digest comes at the end.
  absl::StatusOr<v1::PutFileResponse> PutFile(const std::string& upload_id,
                                              const std::string& name,
                                              const std::string& path,
                                              const ProgressFn& progress = nullptr);
  absl::StatusOr<v1::Upload> GetUpload(const std::string& upload_id);
  absl::StatusOr<v1::Checkpoint> CommitUpload(const std::string& upload_id);
  absl::Status AbortUpload(const std::string& upload_id);

  absl::StatusOr<v1::Checkpoint> GetLatestCheckpoint(const std::string& model);
  absl::StatusOr<v1::Checkpoint> GetCheckpoint(const std::string& model, int64_t step);
  // The step `ref` names (a step, an alias, or the latest).
  absl::StatusOr<v1::Checkpoint> ResolveCheckpoint(const std::string& model,
                                                   const StepRef& ref);
  absl::StatusOr<v1::ListModelsResponse> ListModels(int page_size,
                                                    const std::string& page_token);
  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(
      const std::string& model, int page_size, const std::string& page_token);
  // Returns the bytes freed.
  absl::StatusOr<int64_t> DeleteCheckpoint(const std::string& model, int64_t step);

  // Writes the MetaGraphDef of (model, step or latest) with `options` applied to
  // `out_path` (atomically, verified against the server's SHA-256).
  absl::StatusOr<v1::MetaGraphInfo> FetchGraph(const std::string& model,
                                               const StepRef& step,
                                               const v1::GraphOptions& options,
                                               const std::string& out_path);
  // The same, into memory (verified against the server's SHA-256).
  absl::StatusOr<v1::MetaGraphInfo> FetchGraphBytes(const std::string& model,
                                                    const StepRef& step,
                                                    const v1::GraphOptions& options,
                                                    std::string* out);

  // Writes `<basename>-<step>.index`, `.data-*`, `.meta` (filtered if asked) into `dir`
  // and updates its `checkpoint` state file so that tf.train.latest_checkpoint(dir)
  // returns the restored prefix. Each file is verified against its SHA-256 before it is
  // renamed into place; files already there with the right digest are kept. Nothing is
  // ever written or deleted outside `dir`. On failure the files this call created are
  // removed and the state file is unchanged.
  // FAILED_PRECONDITION if `dir` cannot be created or written, before any download;
  // INVALID_ARGUMENT, before anything is written, if the server's answer names a file
  // outside `dir` (absolute, '/', "..") or a file twice; FAILED_PRECONDITION where the
  // graph cannot be exported with graph_options (TensorFlow raises); local file-system
  // errors with the path: RESOURCE_EXHAUSTED (disk full), INVALID_ARGUMENT (name too
  // long), PERMISSION_DENIED, FAILED_PRECONDITION (others).
  //
  // A SavedModel step is restored as RestoreSavedModel does, with `dir` the base path.
  absl::StatusOr<v1::Checkpoint> Restore(const std::string& model, const std::string& dir,
                                         const RestoreOptions& options);

  // Writes SavedModel step (model, options.step / alias / latest) as TF Serving's version
  // directory `base`/<step>/, complete: every file downloaded into a hidden staging
  // directory in `base`, verified by SHA-256 and fsynced (files and directories), then
  // renamed into place in one step (an existing version with other content is swapped
  // out atomically). A version already there with exactly these files is left as is.
  // Then applies options.keep_last / remove_newer_versions to the other versions.
  // Nothing is written outside `base`; on failure nothing of the new version is left.
  // FAILED_PRECONDITION for a checkpoint step or a `base` that cannot be written;
  // INVALID_ARGUMENT, before anything is written, for names outside the version
  // directory (see SavedModelFilePaths) or graph options; local file-system errors as
  // for Restore.
  absl::StatusOr<v1::Checkpoint> RestoreSavedModel(const std::string& model,
                                                   const std::string& base,
                                                   const RestoreOptions& options);

  // The server's grpc.health.v1 status for `service` ("" = the whole server):
  // "SERVING", "NOT_SERVING", ... UNAVAILABLE if the server cannot be reached.
  absl::StatusOr<std::string> CheckHealth(const std::string& service = "");

  // Writes a consistent copy of the server's store into `dir` on the server's machine
  // (which must not exist yet). Needs an admin token when tokens are configured.
  absl::StatusOr<v1::BackupResponse> Backup(const std::string& dir);
  // The server's consistency report (Store::Check). Needs an admin token when tokens
  // are configured. Has no deadline: the check reads the whole store.
  absl::StatusOr<v1::CheckStoreResponse> CheckStore();

  // Retention, pins and aliases (see the RPCs in registry.proto).
  absl::StatusOr<v1::Model> GetModel(const std::string& model);
  // NOT_FOUND for a model the server knows nothing of, unless `allow_missing` (a policy
  // set before the model's first push).
  absl::StatusOr<v1::Model> SetRetention(const std::string& model, int max_to_keep,
                                         double keep_every_n_hours,
                                         bool allow_missing = false);
  absl::StatusOr<v1::Checkpoint> PinCheckpoint(const std::string& model, int64_t step,
                                               bool pinned);
  absl::StatusOr<v1::Model> SetAlias(const std::string& model, const std::string& alias,
                                     int64_t step);
  absl::StatusOr<v1::Model> RemoveAlias(const std::string& model,
                                        const std::string& alias);

  // The tensors of a checkpoint, optionally verified against their CRC32C.
  absl::StatusOr<v1::InspectCheckpointResponse> InspectCheckpoint(
      const std::string& model, const StepRef& step, bool verify);
  // TensorFlow's CheckpointState of a model, as CheckpointManager writes it.
  absl::StatusOr<tensorflow::CheckpointState> GetCheckpointState(
      const std::string& model);
  // One collection of a step's graph, decoded by the server (with the collection kinds
  // its config registers). `tags` choose a SavedModel's graph.
  absl::StatusOr<v1::GetCollectionResponse> GetCollection(
      const std::string& model, const StepRef& step, const std::string& key,
      const std::vector<std::string>& tags = {});

  // Opens a watch (see WatchCheckpoints). Errors arrive through the stream's Finish().
  std::unique_ptr<WatchStream> Watch(const v1::WatchCheckpointsRequest& request);

 private:
  explicit Client(const ClientOptions& options);
  // Streams a graph into `sink`; returns the header the server sent.
  absl::StatusOr<v1::MetaGraphInfo> StreamGraph(
      const std::string& model, const StepRef& step, const v1::GraphOptions& options,
      const std::function<absl::Status(absl::string_view)>& sink);
  // Sends local file `path` as `name` of the upload over one PutFile call, read and
  // hashed as it goes (client/pipelined_upload.h): from state->held_bytes() when the
  // upload lists the file (`state`; its digest given at the end if it was announced
  // without one), else announced by the header with its size and, for a file larger
  // than one pipeline window unless `digest_first`, its digest at the end (else in the
  // header, digested first). Chunks `find_chunks` (if set) says the server holds are
  // named, not sent: several in one message when `batch_names` (the upload says the
  // server accepts_existing_chunks), else one per message. Adds what it sent and
  // skipped to `stats`.
  absl::StatusOr<v1::PutFileResponse> SendFile(
      const std::string& upload_id, const std::string& name, const std::string& path,
      const v1::UploadFile* state, bool digest_first,
      const std::function<absl::StatusOr<std::vector<bool>>(
          const std::vector<std::string>&)>& find_chunks,
      bool batch_names, const ProgressFn& progress, PushStats* stats);
  // FindChunks for `upload` (which of the given chunk digests the server holds), when
  // its chunks are the 1 MiB pieces the client hashes; else none (every byte is sent).
  std::function<absl::StatusOr<std::vector<bool>>(const std::vector<std::string>&)>
  ChunkFinder(const v1::Upload& upload);
  // The upload Push and PushSavedModel share: `begin` without files, then `files`
  // (name -> local path) announced, deduplicated, sent and committed.
  absl::StatusOr<v1::Checkpoint> PushFiles(
      v1::BeginUploadRequest begin, const std::map<std::string, std::string>& files,
      const PushOptions& options);
  // RestoreSavedModel of a resolved step.
  absl::StatusOr<v1::Checkpoint> RestoreVersion(const v1::Checkpoint& checkpoint,
                                                const std::string& base,
                                                const RestoreOptions& options);
  absl::Status DownloadFile(const v1::Checkpoint& checkpoint, const v1::FileInfo& file,
                            const std::string& path, const ProgressFn& progress,
                            int64_t progress_base, int64_t progress_total);

  std::unique_ptr<Impl> impl_;
};

}  // namespace mgreg

#endif  // MGREG_CLIENT_CLIENT_H_
