// The models list and the model page.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/web/svg_plot.h"
#include "server/web/web_pages.h"
#include "server/web/web_util.h"

namespace mgreg::web {

// Shared with web_step.cc.
absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// A commit time as the pages show it: relative (kept current by app.js) and absolute.
std::string TimeHtml(const google::protobuf::Timestamp& ts, absl::Time now) {
  const absl::Time t = TimeOf(ts);
  return absl::StrCat("<time class=\"ago\" datetime=\"", FormatRfc3339(t), "\">",
                      FormatAgo(t, now), "</time> <span class=\"abs\">", FormatUtc(t),
                      "</span>");
}

std::string ModelHref(const std::string& model) {
  return BuildUrl("/model", {{"name", model}});
}

std::string StepHref(const std::string& model, int64_t step) {
  return BuildUrl("/step", {{"model", model}, {"step", absl::StrCat(step)}});
}

namespace {

std::string AliasesHtml(const google::protobuf::Map<std::string, int64_t>& aliases,
                        const std::string& model) {
  std::map<std::string, int64_t> sorted(aliases.begin(), aliases.end());
  std::string out;
  for (const auto& [name, step] : sorted) {
    absl::StrAppend(&out, "<a class=\"alias\" href=\"", HtmlEscape(StepHref(model, step)),
                    "\">", HtmlEscape(name), " → ", step, "</a> ");
  }
  return out;
}

void AliasesJson(JsonWriter& j,
                 const google::protobuf::Map<std::string, int64_t>& aliases) {
  std::map<std::string, int64_t> sorted(aliases.begin(), aliases.end());
  j.Key("aliases").BeginObject();
  for (const auto& [name, step] : sorted) j.Member(name, step);
  j.EndObject();
}

}  // namespace

absl::StatusOr<WebPages::Response> WebPages::ModelsPage(const Request& request) {
  const std::string prefix = request.Param("prefix");
  ASSIGN_OR_RETURN(const int page_size,
                   PageSizeParam(request, options_.models_page_size));
  // A token limited to some models skips the others: read on until the page is full
  // (a bounded number of rounds, so a page may come out short, never wrong).
  std::vector<v1::ModelSummary> models;
  std::string token = request.Param("page_token");
  for (int round = 0; round < 20 && static_cast<int>(models.size()) < page_size;
       ++round) {
    v1::ListModelsRequest list;
    list.set_prefix(prefix);
    list.set_page_token(token);
    list.set_page_size(page_size - static_cast<int>(models.size()));
    ASSIGN_OR_RETURN(v1::ListModelsResponse page,
                     service_->ListModels(list, [&](absl::string_view model) {
                       return MayRead(request, std::string(model));
                     }));
    for (v1::ModelSummary& m : *page.mutable_models()) models.push_back(std::move(m));
    token = page.next_page_token();
    if (token.empty()) break;
  }

  const absl::Time now = absl::Now();
  JsonWriter j;
  j.BeginObject().Member("prefix", prefix).Key("models").BeginArray();
  std::string rows;
  for (const v1::ModelSummary& m : models) {
    v1::GetLatestCheckpointRequest latest_request;
    latest_request.set_model(m.name());
    absl::StatusOr<v1::Checkpoint> latest = service_->GetLatestCheckpoint(latest_request);
    v1::GetModelRequest model_request;
    model_request.set_model(m.name());
    absl::StatusOr<v1::Model> model = service_->GetModel(model_request);
    // A model deleted between the listing and now is left out.
    if (!latest.ok() || !model.ok()) continue;
    j.BeginObject()
        .Member("name", m.name())
        .Member("latest_step", m.latest_step())
        .Member("latest_commit_time", FormatRfc3339(TimeOf(latest->commit_time())))
        .Member("latest_bytes", latest->total_bytes())
        .Member("checkpoint_count", m.checkpoint_count());
    AliasesJson(j, model->aliases());
    j.EndObject();
    absl::StrAppend(
        &rows, "<tr><td class=\"name\"><a href=\"", HtmlEscape(ModelHref(m.name())),
        "\">", HtmlEscape(m.name()), "</a></td><td class=\"num\"><a href=\"",
        HtmlEscape(StepHref(m.name(), m.latest_step())), "\">", m.latest_step(),
        "</a></td><td>", TimeHtml(latest->commit_time(), now), "</td><td class=\"num\">",
        FormatBytes(latest->total_bytes()), "</td><td class=\"num\">",
        m.checkpoint_count(), "</td><td>", AliasesHtml(model->aliases(), m.name()),
        "</td></tr>");
  }
  j.EndArray().Member("next_page_token", token).EndObject();

  Response r;
  if (request.json) {
    r.content_type = "application/json";
    r.body = j.Take();
    return r;
  }
  std::string body = absl::StrCat(
      "<h1>Models</h1><form class=\"filter\" method=\"get\" action=\"/\">"
      "<label>Name starts with <input type=\"search\" name=\"prefix\" value=\"",
      HtmlEscape(prefix), "\"></label><button type=\"submit\">Filter</button></form>");
  if (models.empty()) {
    absl::StrAppend(
        &body, "<p class=\"empty\">No models",
        prefix.empty() ? "" : absl::StrCat(" starting with “", HtmlEscape(prefix), "”"),
        request.Param("page_token").empty() ? "" : " on this page", ".</p>");
  } else {
    absl::StrAppend(&body,
                    "<table id=\"models\"><thead><tr><th>Model</th><th>Latest step</th>"
                    "<th>Committed</th><th>Size</th><th>Steps</th><th>Aliases</th></tr>"
                    "</thead><tbody>",
                    rows, "</tbody></table>");
  }
  std::string nav;
  if (!request.Param("page_token").empty()) {
    absl::StrAppend(&nav, "<a href=\"", HtmlEscape(BuildUrl("/", {{"prefix", prefix}})),
                    "\">First page</a> ");
  }
  if (!token.empty()) {
    absl::StrAppend(
        &nav, "<a id=\"next-page\" href=\"",
        HtmlEscape(BuildUrl("/", {{"prefix", prefix},
                                  {"page_token", token},
                                  {"page_size", request.Param("page_size")}})),
        "\">Next page →</a>");
  }
  if (!nav.empty()) absl::StrAppend(&body, "<p class=\"pages\">", nav, "</p>");
  r.body = Layout(request, "Models", body);
  return r;
}

absl::StatusOr<WebPages::Response> WebPages::ModelPage(const Request& request) {
  const std::string name = request.Param("name");
  v1::GetModelRequest model_request;
  model_request.set_model(name);
  ASSIGN_OR_RETURN(const v1::Model model, service_->GetModel(model_request));
  ASSIGN_OR_RETURN(const int page_size, PageSizeParam(request, options_.steps_page_size));
  std::optional<int64_t> before;
  if (const std::string text = request.Param("before"); !text.empty()) {
    int64_t b = 0;
    if (!absl::SimpleAtoi(text, &b)) {
      return absl::InvalidArgumentError(
          absl::StrCat("before '", text, "' is not a step number"));
    }
    before = b;
  }

  // Every step (records only, no file bytes): the plots span all of them, and a step's
  // new bytes depend on the steps before it.
  std::vector<v1::Checkpoint> steps;
  v1::ListCheckpointsRequest list;
  list.set_model(name);
  list.set_page_size(1000);
  for (;;) {
    absl::StatusOr<v1::ListCheckpointsResponse> page = service_->ListCheckpoints(list);
    if (!page.ok() && page.status().code() == absl::StatusCode::kNotFound) break;
    if (!page.ok()) return page.status();
    for (v1::Checkpoint& c : *page->mutable_checkpoints()) steps.push_back(std::move(c));
    if (page->next_page_token().empty()) break;
    list.set_page_token(page->next_page_token());
  }

  // New bytes: files whose content no earlier step of the model holds (the same .meta
  // at every step counts once). Plots: every metadata value that is a finite number.
  std::vector<int64_t> new_bytes(steps.size());
  std::map<std::string, std::vector<PlotPoint>> series;
  std::vector<PlotPoint> sizes;
  {
    std::set<std::string> seen;
    for (size_t i = 0; i < steps.size(); ++i) {
      for (const v1::FileInfo& f : steps[i].files()) {
        // Records written since chunked digests all carry one; older ones the sha256.
        const std::string key = f.chunked_sha256().empty()
                                    ? f.sha256()
                                    : absl::StrCat("chunked-", f.chunked_sha256());
        if (seen.insert(key).second) new_bytes[i] += f.size();
      }
      sizes.push_back({steps[i].step(), static_cast<double>(steps[i].total_bytes())});
      for (const auto& [key, value] : steps[i].metadata()) {
        double v;
        if (absl::SimpleAtod(value, &v) && std::isfinite(v)) {
          series[key].push_back({steps[i].step(), v});
        }
      }
    }
  }
  // This page: newest first, below `before`.
  std::vector<size_t> shown;
  for (size_t i = steps.size(); i-- > 0 && static_cast<int>(shown.size()) < page_size;) {
    if (!before.has_value() || steps[i].step() < *before) shown.push_back(i);
  }
  std::optional<int64_t> next_before;
  if (!shown.empty() && shown.back() > 0) next_before = steps[shown.back()].step();

  const absl::Time now = absl::Now();
  JsonWriter j;
  j.BeginObject().Key("model").BeginObject();
  j.Member("name", model.name())
      .Member("latest_step", model.latest_step())
      .Member("checkpoint_count", model.checkpoint_count());
  j.Key("retention")
      .BeginObject()
      .Member("max_to_keep", static_cast<int64_t>(model.retention().max_to_keep()))
      .Member("keep_every_n_hours", model.retention().keep_every_n_hours())
      .EndObject();
  AliasesJson(j, model.aliases());
  j.EndObject().Key("steps").BeginArray();
  std::string rows;
  for (size_t i : shown) {
    const v1::Checkpoint& c = steps[i];
    std::map<std::string, std::string> metadata(c.metadata().begin(), c.metadata().end());
    j.BeginObject()
        .Member("step", c.step())
        .Member("commit_time", FormatRfc3339(TimeOf(c.commit_time())))
        .Member("total_bytes", c.total_bytes())
        .Member("new_bytes", new_bytes[i])
        .Member("files", c.files_size())
        .Member("pinned", c.pinned())
        .Member("preserved", c.preserved());
    j.Key("aliases").BeginArray();
    for (const std::string& a : c.aliases()) j.String(a);
    j.EndArray().Key("metadata").BeginObject();
    for (const auto& [k, v] : metadata) j.Member(k, v);
    j.EndObject().EndObject();

    std::string flags;
    if (c.pinned()) flags += "<span class=\"tag pinned\">pinned</span> ";
    if (c.preserved())
      flags += "<span class=\"tag preserved\">kept every N hours</span> ";
    for (const std::string& a : c.aliases()) {
      absl::StrAppend(&flags, "<span class=\"tag alias\">", HtmlEscape(a), "</span> ");
    }
    std::string meta;
    for (const auto& [k, v] : metadata) {
      absl::StrAppend(&meta, "<span class=\"kv\"><span class=\"k\">", HtmlEscape(k),
                      "</span>=<span class=\"v\">", HtmlEscape(v), "</span></span> ");
    }
    absl::StrAppend(
        &rows, "<tr data-step=\"", c.step(), "\"><td class=\"num\"><a href=\"",
        HtmlEscape(StepHref(name, c.step())), "\">", c.step(), "</a></td><td>",
        TimeHtml(c.commit_time(), now), "</td><td class=\"num\">",
        FormatBytes(c.total_bytes()), "</td><td class=\"num\">",
        FormatBytes(new_bytes[i]), "</td><td class=\"num\">", c.files_size(), "</td><td>",
        flags, "</td><td class=\"meta\">", meta, "</td></tr>");
  }
  j.EndArray();
  if (next_before.has_value()) {
    j.Member("next_before", *next_before);
  } else {
    j.Key("next_before").Null();
  }
  j.Key("plots").BeginArray();
  auto plot_json = [&](const std::string& key, const std::vector<PlotPoint>& points) {
    j.BeginObject().Member("key", key).Key("points").BeginArray();
    for (const PlotPoint& p : points)
      j.BeginArray().Int(p.step).Double(p.value).EndArray();
    j.EndArray().EndObject();
  };
  for (const auto& [key, points] : series) plot_json(key, points);
  if (!sizes.empty()) plot_json("step size (bytes)", sizes);
  j.EndArray().EndObject();

  Response r;
  if (request.json) {
    r.content_type = "application/json";
    r.body = j.Take();
    return r;
  }
  const v1::RetentionPolicy& policy = model.retention();
  std::string retention =
      policy.max_to_keep() == 0
          ? "keeps every step"
          : absl::StrCat("keeps the newest ", policy.max_to_keep(), " steps");
  if (policy.keep_every_n_hours() > 0) {
    absl::StrAppend(&retention, ", and one every ",
                    FormatNumber(policy.keep_every_n_hours()), " h forever");
  }
  std::string body = absl::StrCat(
      "<p class=\"crumbs\"><a href=\"/\">Models</a> /</p><h1 id=\"model-name\">",
      HtmlEscape(model.name()), "</h1><dl class=\"facts\"><dt>Steps</dt><dd>",
      model.checkpoint_count(), "</dd><dt>Latest</dt><dd>",
      model.checkpoint_count() > 0
          ? absl::StrCat("<a href=\"", HtmlEscape(StepHref(name, model.latest_step())),
                         "\">", model.latest_step(), "</a>")
          : "—",
      "</dd><dt>Aliases</dt><dd>", AliasesHtml(model.aliases(), name),
      "</dd><dt>Retention</dt><dd id=\"retention\">", HtmlEscape(retention),
      "</dd></dl>");
  if (!series.empty() || !sizes.empty()) {
    absl::StrAppend(&body, "<h2>Plots</h2><div class=\"plots\">");
    auto add_plot = [&](const std::string& key, const std::vector<PlotPoint>& points,
                        bool bytes) {
      PlotOptions o;
      o.title = key;
      o.bytes = bytes;
      absl::StrAppend(&body, "<figure class=\"plot-box\"><figcaption>", HtmlEscape(key),
                      "</figcaption>", RenderSvgPlot(points, o), "</figure>");
    };
    for (const auto& [key, points] : series) add_plot(key, points, false);
    if (!sizes.empty()) add_plot("step size", sizes, true);
    absl::StrAppend(&body, "</div>");
  }
  absl::StrAppend(&body, "<h2>Steps</h2>");
  if (shown.empty()) {
    absl::StrAppend(&body, "<p class=\"empty\">No steps", before ? " on this page" : "",
                    ".</p>");
  } else {
    absl::StrAppend(
        &body,
        "<table id=\"steps\"><thead><tr><th>Step</th><th>Committed</th>"
        "<th>Size</th><th title=\"bytes of files no earlier step of this model "
        "holds\">New bytes</th><th>Files</th><th></th><th>Metadata</th></tr>"
        "</thead><tbody>",
        rows, "</tbody></table>");
  }
  std::string nav;
  if (before.has_value()) {
    absl::StrAppend(&nav, "<a href=\"", HtmlEscape(ModelHref(name)), "\">Newest</a> ");
  }
  if (next_before.has_value()) {
    absl::StrAppend(
        &nav, "<a id=\"older\" href=\"",
        HtmlEscape(BuildUrl("/model", {{"name", name},
                                       {"before", absl::StrCat(*next_before)},
                                       {"page_size", request.Param("page_size")}})),
        "\">Older steps →</a>");
  }
  if (!nav.empty()) absl::StrAppend(&body, "<p class=\"pages\">", nav, "</p>");
  r.body = Layout(request, model.name(), body);
  return r;
}

}  // namespace mgreg::web
