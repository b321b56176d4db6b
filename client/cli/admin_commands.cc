// The operator's commands: admin backup, admin health, admin check.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/command.h"
#include "client/cli/output.h"
#include "common/status_macros.h"

namespace mgreg::cli {
namespace {

absl::Status Backup(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::BackupResponse r, client->Backup(args[0]));
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.out() << "backed up " << r.checkpoints() << " steps (revision " << r.revision()
            << ") into " << r.dir() << " on the server\n";
  return absl::OkStatus();
}

absl::Status Check(const std::vector<std::string>&, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::CheckStoreResponse r, client->CheckStore());
  if (ctx.json()) {
    RETURN_IF_ERROR(ctx.PrintJson(r));
  } else {
    ctx.out() << (r.consistent() ? "consistent" : "INCONSISTENT") << ": " << r.models()
              << " models, " << r.checkpoints() << " steps, " << r.files() << " files, "
              << r.blobs() << " blobs, " << r.chunks() << " chunks ("
              << HumanBytes(r.chunk_bytes()) << "), " << r.staged_chunks()
              << " chunks in open uploads, " << r.events() << " events, revision "
              << r.revision() << "\n";
    for (const std::string& p : r.problems()) ctx.out() << "problem: " << p << "\n";
  }
  if (!r.consistent()) {
    return absl::DataLossError(absl::StrCat("the store has ", r.problems_size(),
                                            " inconsistencies (listed above)"));
  }
  return absl::OkStatus();
}

absl::Status Health(const std::vector<std::string>&, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(std::string status,
                   client->CheckHealth(ctx.options().Value("service").value_or("")));
  ctx.out() << (ctx.json() ? absl::StrCat("{\"status\": \"", status, "\"}") : status)
            << "\n";
  if (status != "SERVING") {
    return absl::UnavailableError(absl::StrCat("the server reports ", status));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> AdminCommands() {
  const std::vector<Option> common = Join({{JsonOption()}, ConnectionOptions()});
  return {
      {"admin backup", "DIR", "",
       "consistent copy of the server's store into DIR (a new\n"
       "directory on the server's machine); restore: mgreg-server\n--data-dir DIR",
       1, 1, common, Backup},
      {"admin health", "", "[--service S]",
       "the server's grpc.health.v1 status; exit 0 only if SERVING", 0, 0,
       Join({{{"service", "S", "the status of service S (default: the whole server)"}},
             common}),
       Health},
      {"admin check", "", "",
       "verify the store's invariants (refcounts, missing or leaked\n"
       "chunks, model records, aliases, events); exit 1 on any problem",
       0, 0, common, Check},
  };
}

}  // namespace mgreg::cli
