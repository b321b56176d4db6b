// The commands that change what the registry keeps: retention, pin/unpin, aliases,
// delete.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cli/command.h"
#include "client/cli/output.h"
#include "common/status_macros.h"

namespace mgreg::cli {
namespace {

absl::Status Retention(const std::vector<std::string>& args, Context& ctx) {
  const ParsedOptions& o = ctx.options();
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  v1::Model model;
  if (o.Has("max-to-keep") || o.Has("keep-every-n-hours")) {
    ASSIGN_OR_RETURN(int max_to_keep, IntOption(o, "max-to-keep", 0));
    double hours = 0;
    if (auto h = o.Value("keep-every-n-hours")) {
      if (!absl::SimpleAtod(*h, &hours) || !(hours >= 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--keep-every-n-hours '", *h, "' is not a number >= 0"));
      }
    }
    ASSIGN_OR_RETURN(
        model, client->SetRetention(args[0], max_to_keep, hours, o.Has("allow-missing")));
  } else {
    ASSIGN_OR_RETURN(model, client->GetModel(args[0]));
  }
  if (ctx.json()) return ctx.PrintJson(model.retention());
  ctx.out() << "model " << args[0] << ": max_to_keep " << model.retention().max_to_keep()
            << " (0 = keep all), keep_every_n_hours "
            << model.retention().keep_every_n_hours() << " (0 = none)\n";
  return absl::OkStatus();
}

absl::Status Pin(const std::vector<std::string>& args, Context& ctx, bool pinned) {
  ASSIGN_OR_RETURN(int64_t step, ParseStep(args[1]));
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Checkpoint c, client->PinCheckpoint(args[0], step, pinned));
  if (ctx.json()) return ctx.PrintJson(c);
  ctx.out() << (pinned ? "pinned " : "unpinned ") << c.model() << " step " << c.step()
            << "\n";
  return absl::OkStatus();
}

// The aliases of `model`, one "name -> step" a line, sorted.
absl::Status PrintAliases(const v1::Model& model, Context& ctx) {
  if (ctx.json()) return ctx.PrintJson(model);
  std::map<std::string, int64_t> sorted(model.aliases().begin(), model.aliases().end());
  for (const auto& [name, step] : sorted) ctx.out() << name << " -> " << step << "\n";
  return absl::OkStatus();
}

absl::Status AliasSet(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(int64_t step, ParseStep(args[2]));
  ASSIGN_OR_RETURN(v1::Model model, client->SetAlias(args[0], args[1], step));
  return PrintAliases(model, ctx);
}

absl::Status AliasRemove(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Model model, client->RemoveAlias(args[0], args[1]));
  return PrintAliases(model, ctx);
}

absl::Status AliasList(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Model model, client->GetModel(args[0]));
  return PrintAliases(model, ctx);
}

absl::Status Delete(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(int64_t step, ParseStep(args[1]));
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(int64_t freed, client->DeleteCheckpoint(args[0], step));
  if (ctx.json()) {
    v1::DeleteCheckpointResponse r;
    r.set_freed_bytes(freed);
    return ctx.PrintJson(r);
  }
  ctx.out() << "deleted " << args[0] << " step " << step << " (" << HumanBytes(freed)
            << " freed)\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> SettingsCommands() {
  const std::vector<Option> common = Join({{JsonOption()}, ConnectionOptions()});
  return {
      {"delete", "MODEL STEP", "", "delete a step", 2, 2, common, Delete},
      {"retention", "MODEL",
       "[--max-to-keep N] [--keep-every-n-hours H] [--allow-missing]",
       "show or set the retention policy (CheckpointManager's);\n"
       "--allow-missing sets it before the model's first push",
       1, 1,
       Join({{{"max-to-keep", "N", "keep the newest N steps (0: all)"},
              {"keep-every-n-hours", "H", "also keep one step every H hours (0: none)"},
              {"allow-missing", "", "set it even if the model has no step yet"}},
             common}),
       Retention},
      {"pin", "MODEL STEP", "", "protect a step from retention", 2, 2, common,
       [](const std::vector<std::string>& args, Context& ctx) {
         return Pin(args, ctx, true);
       }},
      {"unpin", "MODEL STEP", "", "stop protecting a step from retention", 2, 2, common,
       [](const std::vector<std::string>& args, Context& ctx) {
         return Pin(args, ctx, false);
       }},
      {"alias set", "MODEL NAME STEP", "", "point alias NAME at a step", 3, 3, common,
       AliasSet},
      {"alias rm", "MODEL NAME", "", "remove alias NAME", 2, 2, common, AliasRemove},
      {"alias list", "MODEL", "", "the model's aliases and their steps", 1, 1, common,
       AliasList},
  };
}

}  // namespace mgreg::cli
