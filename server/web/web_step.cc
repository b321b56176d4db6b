// The step page and the events page.
#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/web/web_pages.h"
#include "server/web/web_util.h"

namespace mgreg::web {

// web_models.cc
absl::Time TimeOf(const google::protobuf::Timestamp& t);
std::string TimeHtml(const google::protobuf::Timestamp& ts, absl::Time now);
std::string ModelHref(const std::string& model);
std::string StepHref(const std::string& model, int64_t step);

namespace {

// Events per events-page response.
constexpr int kMaxEvents = 200;
// Events the page shows when it opens.
constexpr int64_t kRecentEvents = 50;

// The digest the step page shows for a file: "chunked <hex>" (what mgreg restore
// verifies), or "sha256 <hex>" for a file stored before chunked digests.
std::string ShownDigest(const v1::FileInfo& f) {
  return f.chunked_sha256().empty() ? absl::StrCat("sha256 ", f.sha256())
                                    : absl::StrCat("chunked ", f.chunked_sha256());
}

std::string ShapeText(const v1::TensorInfoEntry& t) {
  return absl::StrCat("[", absl::StrJoin(t.shape(), ", "), "]");
}

const char* EventTypeName(v1::WatchEvent::Type type) {
  switch (type) {
    case v1::WatchEvent::COMMITTED:
      return "committed";
    case v1::WatchEvent::DELETED:
      return "deleted";
    case v1::WatchEvent::ALIAS_SET:
      return "alias set";
    case v1::WatchEvent::ALIAS_REMOVED:
      return "alias removed";
    default:
      return "other";
  }
}

// A count table (op histogram, devices) of the `limit` largest entries.
std::string CountsHtml(const std::string& id, const char* what,
                       const std::map<std::string, int64_t>& counts, size_t limit) {
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out =
      absl::StrCat("<table id=\"", id, "\" class=\"compact\"><thead><tr><th>", what,
                   "</th><th>Nodes</th></tr></thead><tbody>");
  for (size_t i = 0; i < sorted.size() && i < limit; ++i) {
    absl::StrAppend(
        &out, "<tr><td>",
        sorted[i].first.empty() ? "<em>(none)</em>" : HtmlEscape(sorted[i].first),
        "</td><td class=\"num\">", sorted[i].second, "</td></tr>");
  }
  out += "</tbody></table>";
  if (sorted.size() > limit) {
    absl::StrAppend(&out, "<p class=\"hint\">and ", sorted.size() - limit, " more</p>");
  }
  return out;
}

// The form exporting the graph through /graph (a SavedModel's MetaGraphDef by `tags`).
std::string ExportFormHtml(const std::string& model, int64_t step,
                           const std::vector<std::string>& tags) {
  std::string hidden;
  for (const std::string& t : tags) {
    absl::StrAppend(&hidden, "<input type=\"hidden\" name=\"tags\" value=\"",
                    HtmlEscape(t), "\">");
  }
  return absl::StrCat(
      "<form class=\"export\" method=\"get\" action=\"/graph\">"
      "<input type=\"hidden\" name=\"model\" value=\"",
      HtmlEscape(model), "\"><input type=\"hidden\" name=\"step\" value=\"", step, "\">",
      hidden,
      "<label><input type=\"checkbox\" name=\"clear_devices\" value=\"1\"> clear "
      "devices</label><label><input type=\"checkbox\" name=\"strip_default_attrs\" "
      "value=\"1\"> strip default attrs</label><label><input type=\"checkbox\" "
      "name=\"clear_extraneous_savers\" value=\"1\"> clear extraneous savers</label>"
      "<label><input type=\"checkbox\" name=\"as_text\" value=\"1\"> as text</label>"
      "<label>export scope <input type=\"text\" name=\"export_scope\" "
      "placeholder=\"tower_0/\"></label><label>collection <input type=\"text\" "
      "name=\"collection\" placeholder=\"all\"></label>"
      "<button type=\"submit\">Export</button></form>");
}

// A SavedModel step's graph section: each MetaGraphDef (tag set, signatures, size) with
// an export form, and the stored SavedModel proto to download.
std::string SavedModelHtml(const v1::Checkpoint& c, const std::string& file_base,
                           const std::string& proto_name,
                           const std::vector<GraphSummary>& meta_graphs,
                           const absl::Status& status) {
  std::string out = "<h2>SavedModel</h2>";
  if (!status.ok()) {
    absl::StrAppend(&out, "<p class=\"error\">", HtmlEscape(status.message()), "</p>");
  }
  absl::StrAppend(&out,
                  "<table id=\"meta-graphs\"><thead><tr><th>Tags</th>"
                  "<th>Signatures</th><th>Nodes</th><th>Functions</th>"
                  "<th>TensorFlow</th><th>Size</th></tr></thead><tbody>");
  for (const GraphSummary& g : meta_graphs) {
    absl::StrAppend(
        &out, "<tr><td class=\"tags\">",
        g.tags.empty() ? "<em>(none)</em>" : HtmlEscape(absl::StrJoin(g.tags, ", ")),
        "</td><td>", HtmlEscape(absl::StrJoin(g.signatures, ", ")),
        "</td><td class=\"num\">", g.node_count, "</td><td class=\"num\">",
        g.function_count, "</td><td>",
        g.tensorflow_version.empty() ? "—" : HtmlEscape(g.tensorflow_version),
        "</td><td class=\"num\">", FormatBytes(g.bytes), "</td></tr>");
  }
  absl::StrAppend(&out, "</tbody></table>");
  for (const GraphSummary& g : meta_graphs) {
    absl::StrAppend(&out, "<h3>Export the MetaGraphDef tagged ",
                    HtmlEscape(absl::StrJoin(g.tags, ", ")), "</h3>",
                    ExportFormHtml(c.model(), c.step(), g.tags));
  }
  absl::StrAppend(&out, "<p><a class=\"download\" id=\"download-saved-model\" href=\"",
                  HtmlEscape(absl::StrCat(file_base, "&name=", UrlEncode(proto_name))),
                  "\">stored ", HtmlEscape(proto_name),
                  "</a> (byte-identical to what was pushed)</p>");
  return out;
}

}  // namespace

absl::StatusOr<std::vector<GraphSummary>> WebPages::SavedModelSummaries(
    const v1::Checkpoint& step, const std::string& proto_name) {
  if (proto_name != "saved_model.pb") {
    return absl::FailedPreconditionError(
        absl::StrCat("this SavedModel is stored in text format (", proto_name,
                     "): download it to read its MetaGraphDefs"));
  }
  v1::ReadFileRequest read;
  read.set_model(step.model());
  read.set_step(step.step());
  read.set_name(proto_name);
  ASSIGN_OR_RETURN(std::unique_ptr<MessageSource<v1::FileChunk>> source,
                   service_->ReadFile(read));
  return SummarizeSavedModel(*source);
}

absl::StatusOr<std::shared_ptr<const GraphSummary>> WebPages::Summary(
    const v1::Checkpoint& step) {
  if (auto cached = summaries_.Find(step.graph_sha256())) return cached;
  v1::ReadFileRequest read;
  read.set_model(step.model());
  read.set_step(step.step());
  read.set_name("meta");
  ASSIGN_OR_RETURN(std::unique_ptr<MessageSource<v1::FileChunk>> source,
                   service_->ReadFile(read));
  ASSIGN_OR_RETURN(GraphSummary summary, SummarizeMetaGraph(*source));
  auto shared = std::make_shared<const GraphSummary>(std::move(summary));
  summaries_.Insert(step.graph_sha256(), shared);
  return shared;
}

absl::StatusOr<WebPages::Response> WebPages::StepPage(const Request& request) {
  const std::string model = request.Param("model");
  v1::GetCheckpointRequest get;
  get.set_model(model);
  get.set_alias(request.Param("alias"));
  if (get.alias().empty()) {
    int64_t step = 0;
    if (!absl::SimpleAtoi(request.Param("step"), &step)) {
      return absl::InvalidArgumentError(
          absl::StrCat("step '", request.Param("step"),
                       "' is not a number; give ?step=N or ?alias=NAME"));
    }
    get.set_step(step);
  }
  ASSIGN_OR_RETURN(const v1::Checkpoint c, service_->GetCheckpoint(get));
  const std::string step_text = absl::StrCat(c.step());

  v1::InspectCheckpointRequest inspect;
  inspect.set_model(model);
  inspect.set_step(c.step());
  ASSIGN_OR_RETURN(const v1::InspectCheckpointResponse tensors,
                   service_->InspectCheckpoint(inspect));
  int64_t tensor_offset = 0;
  if (const std::string t = request.Param("tensor_offset"); !t.empty()) {
    if (!absl::SimpleAtoi(t, &tensor_offset) || tensor_offset < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor_offset '", t, "' is not a non-negative number"));
    }
  }
  ASSIGN_OR_RETURN(const int tensor_page,
                   PageSizeParam(request, options_.tensors_page_size));
  const int64_t tensor_end =
      std::min<int64_t>(tensors.tensors_size(), tensor_offset + tensor_page);

  const bool saved_model = c.kind() == v1::SAVED_MODEL;
  std::string proto_name;
  for (const v1::FileInfo& f : c.files()) {
    if (f.name() == "saved_model.pb" ||
        (f.name() == "saved_model.pbtxt" && proto_name.empty())) {
      proto_name = f.name();
    }
  }
  std::shared_ptr<const GraphSummary> graph;
  std::vector<GraphSummary> meta_graphs;
  absl::Status graph_status;
  if (saved_model) {
    absl::StatusOr<std::vector<GraphSummary>> s = SavedModelSummaries(c, proto_name);
    if (s.ok()) {
      meta_graphs = std::move(*s);
    } else {
      graph_status = s.status();
    }
  } else if (!c.graph_sha256().empty()) {
    absl::StatusOr<std::shared_ptr<const GraphSummary>> s = Summary(c);
    if (s.ok()) {
      graph = *s;
    } else {
      graph_status = s.status();
    }
  }

  const absl::Time now = absl::Now();
  const std::string file_base =
      BuildUrl("/file", {{"model", model}, {"step", step_text}});
  JsonWriter j;
  j.BeginObject()
      .Member("model", c.model())
      .Member("step", c.step())
      .Member("kind", saved_model ? "saved_model" : "checkpoint")
      .Member("basename", c.basename())
      .Member("commit_time", FormatRfc3339(TimeOf(c.commit_time())))
      .Member("total_bytes", c.total_bytes())
      .Member("pinned", c.pinned())
      .Member("preserved", c.preserved())
      .Member("graph_sha256", c.graph_sha256());
  j.Key("aliases").BeginArray();
  for (const std::string& a : c.aliases()) j.String(a);
  j.EndArray().Key("metadata").BeginObject();
  std::map<std::string, std::string> metadata(c.metadata().begin(), c.metadata().end());
  for (const auto& [k, v] : metadata) j.Member(k, v);
  j.EndObject().Key("files").BeginArray();
  std::string files;
  for (const v1::FileInfo& f : c.files()) {
    const std::string href = absl::StrCat(file_base, "&name=", UrlEncode(f.name()));
    j.BeginObject()
        .Member("name", f.name())
        .Member("size", f.size())
        .Member("sha256", f.sha256())
        .Member("chunked_sha256", f.chunked_sha256())
        .Member("download", href)
        .EndObject();
    absl::StrAppend(&files, "<tr><td>",
                    saved_model ? HtmlEscape(f.name())
                                : absl::StrCat(HtmlEscape(c.basename()), "-", c.step(),
                                               ".", HtmlEscape(f.name())),
                    "</td><td class=\"num\">", FormatBytes(f.size()),
                    "</td><td class=\"sha\">", HtmlEscape(ShownDigest(f)),
                    "</td><td><a class=\"download\" href=\"", HtmlEscape(href),
                    "\">download</a></td></tr>");
  }
  j.EndArray().Key("tensors").BeginObject();
  j.Member("count", static_cast<int64_t>(tensors.tensors_size()))
      .Member("num_shards", static_cast<int64_t>(tensors.num_shards()))
      .Member("offset", tensor_offset)
      .Key("items")
      .BeginArray();
  std::string tensor_rows;
  for (int64_t i = tensor_offset; i < tensor_end; ++i) {
    const v1::TensorInfoEntry& t = tensors.tensors(static_cast<int>(i));
    j.BeginObject()
        .Member("name", t.name())
        .Member("dtype", t.dtype())
        .Key("shape")
        .BeginArray();
    for (int64_t d : t.shape()) j.Int(d);
    j.EndArray()
        .Member("shard", static_cast<int64_t>(t.shard()))
        .Member("size", t.size())
        .EndObject();
    absl::StrAppend(&tensor_rows, "<tr><td class=\"tensor\">", HtmlEscape(t.name()),
                    "</td><td>", HtmlEscape(t.dtype()), "</td><td>", ShapeText(t),
                    "</td><td class=\"num\">", t.shard(), "</td><td class=\"num\">",
                    FormatBytes(t.size()), "</td></tr>");
  }
  j.EndArray().EndObject();
  j.Key("graph");
  if (graph != nullptr) {
    j.BeginObject()
        .Member("bytes", graph->bytes)
        .Member("node_count", graph->node_count)
        .Member("function_count", graph->function_count)
        .Member("tensorflow_version", graph->tensorflow_version)
        .Member("has_saver", graph->has_saver);
    j.Key("ops").BeginObject();
    for (const auto& [op, n] : graph->ops) j.Member(op, n);
    j.EndObject().Key("devices").BeginObject();
    for (const auto& [d, n] : graph->devices) j.Member(d, n);
    j.EndObject().Key("collections").BeginArray();
    for (const auto& col : graph->collections) {
      j.BeginObject()
          .Member("name", col.name)
          .Member("kind", col.kind)
          .Member("size", col.size);
      j.EndObject();
    }
    j.EndArray().Key("tags").BeginArray();
    for (const std::string& t : graph->tags) j.String(t);
    j.EndArray().Key("signatures").BeginArray();
    for (const std::string& s : graph->signatures) j.String(s);
    j.EndArray().EndObject();
  } else if (!graph_status.ok() && !saved_model) {
    j.BeginObject().Member("error", std::string(graph_status.message())).EndObject();
  } else {
    j.Null();
  }
  if (saved_model) {
    j.Key("saved_model").BeginObject().Member("proto", proto_name);
    if (!graph_status.ok()) j.Member("error", std::string(graph_status.message()));
    j.Key("meta_graphs").BeginArray();
    for (const GraphSummary& g : meta_graphs) {
      j.BeginObject().Key("tags").BeginArray();
      for (const std::string& t : g.tags) j.String(t);
      j.EndArray().Key("signatures").BeginArray();
      for (const std::string& sig : g.signatures) j.String(sig);
      j.EndArray()
          .Member("node_count", g.node_count)
          .Member("function_count", g.function_count)
          .Member("tensorflow_version", g.tensorflow_version)
          .Member("bytes", g.bytes)
          .EndObject();
    }
    j.EndArray().EndObject();
  }
  j.EndObject();

  Response r;
  if (request.json) {
    r.content_type = "application/json";
    r.body = j.Take();
    return r;
  }
  std::string flags;
  if (c.pinned()) flags += "<span class=\"tag pinned\">pinned</span> ";
  if (c.preserved()) flags += "<span class=\"tag preserved\">kept every N hours</span> ";
  for (const std::string& a : c.aliases()) {
    absl::StrAppend(&flags, "<span class=\"tag alias\">", HtmlEscape(a), "</span> ");
  }
  std::string meta;
  for (const auto& [k, v] : metadata) {
    absl::StrAppend(&meta, "<tr><td class=\"k\">", HtmlEscape(k), "</td><td class=\"v\">",
                    HtmlEscape(v), "</td></tr>");
  }
  std::string body = absl::StrCat(
      "<p class=\"crumbs\"><a href=\"/\">Models</a> / <a href=\"",
      HtmlEscape(ModelHref(model)), "\">", HtmlEscape(model), "</a> /</p>",
      "<h1 id=\"step-title\">Step ", c.step(), "</h1><p>", flags, "</p>",
      "<dl class=\"facts\"><dt>Committed</dt><dd>", TimeHtml(c.commit_time(), now),
      "</dd><dt>Size</dt><dd>", FormatBytes(c.total_bytes()),
      saved_model
          ? absl::StrCat("</dd><dt>Kind</dt><dd id=\"kind\">SavedModel (TF Serving "
                         "version ",
                         c.step(), ")")
          : absl::StrCat("</dd><dt>Prefix</dt><dd>", HtmlEscape(c.basename()), "-",
                         c.step()),
      "</dd><dt>Revision</dt><dd>", c.revision(), "</dd></dl>");
  if (!meta.empty()) {
    absl::StrAppend(&body,
                    "<h2>Metadata</h2><table id=\"metadata\" class=\"compact\"><tbody>",
                    meta, "</tbody></table>");
  }
  absl::StrAppend(
      &body,
      "<h2>Files</h2><table id=\"files\"><thead><tr><th>File</th><th>Size</th>"
      "<th title=\"chunked SHA-256 (README: Checking a restored file by hand); "
      "sha256sum's digest for files stored before it\">Digest</th><th></th></tr>"
      "</thead><tbody>",
      files, "</tbody></table>");

  if (saved_model) {
    absl::StrAppend(&body,
                    SavedModelHtml(c, file_base, proto_name, meta_graphs, graph_status));
  } else if (c.graph_sha256().empty()) {
    absl::StrAppend(&body,
                    "<h2>Graph</h2><p class=\"empty\">This step has no .meta.</p>");
  } else {
    absl::StrAppend(&body, "<h2>Graph</h2>");
    if (graph != nullptr) {
      std::string collections;
      for (const auto& col : graph->collections) {
        absl::StrAppend(&collections, "<tr><td>", HtmlEscape(col.name), "</td><td>",
                        col.kind, "</td><td class=\"num\">", col.size, "</td></tr>");
      }
      absl::StrAppend(
          &body,
          "<dl class=\"facts\" id=\"graph-facts\"><dt>Nodes</dt><dd id=\"node-count\">",
          graph->node_count, "</dd><dt>Functions</dt><dd>", graph->function_count,
          "</dd><dt>Size</dt><dd>", FormatBytes(graph->bytes),
          "</dd><dt>TensorFlow</dt><dd>",
          graph->tensorflow_version.empty() ? "—" : HtmlEscape(graph->tensorflow_version),
          "</dd><dt>Tags</dt><dd>",
          graph->tags.empty() ? "—" : HtmlEscape(absl::StrJoin(graph->tags, ", ")),
          "</dd><dt>Signatures</dt><dd>",
          graph->signatures.empty() ? "—"
                                    : HtmlEscape(absl::StrJoin(graph->signatures, ", ")),
          "</dd><dt>Saver</dt><dd>", graph->has_saver ? "yes" : "no", "</dd></dl>",
          "<div class=\"columns\"><div><h3>Ops</h3>",
          CountsHtml("ops", "Op", graph->ops, 40), "</div><div><h3>Devices</h3>",
          CountsHtml("devices", "Device", graph->devices, 40),
          "</div><div><h3>Collections</h3><table id=\"collections\" class=\"compact\">"
          "<thead><tr><th>Name</th><th>Kind</th><th>Items</th></tr></thead><tbody>",
          collections, "</tbody></table></div></div>");
    } else {
      absl::StrAppend(&body, "<p class=\"error\">", HtmlEscape(graph_status.message()),
                      "</p>");
    }
    absl::StrAppend(
        &body,
        "<h3>Download the graph</h3><p><a class=\"download\" id=\"download-meta\" "
        "href=\"",
        HtmlEscape(absl::StrCat(file_base, "&name=meta")),
        "\">stored .meta</a> (byte-identical to what was pushed)</p>",
        ExportFormHtml(model, c.step(), {}));
  }

  absl::StrAppend(&body, saved_model ? "<h2>Variables</h2><p>" : "<h2>Tensors</h2><p>",
                  tensors.tensors_size(), " tensors in ", tensors.num_shards(),
                  " shard(s)</p>");
  if (tensors.tensors_size() > 0) {
    absl::StrAppend(
        &body,
        "<table id=\"tensors\"><thead><tr><th>Name</th><th>Type</th><th>Shape</th>"
        "<th>Shard</th><th>Bytes</th></tr></thead><tbody>",
        tensor_rows, "</tbody></table>");
  }
  if (tensor_end < tensors.tensors_size()) {
    absl::StrAppend(
        &body, "<p class=\"pages\"><a href=\"",
        HtmlEscape(BuildUrl("/step", {{"model", model},
                                      {"step", step_text},
                                      {"tensor_offset", absl::StrCat(tensor_end)},
                                      {"page_size", request.Param("page_size")}})),
        "\">More tensors →</a></p>");
  }
  r.body = Layout(request, absl::StrCat(model, " step ", c.step()), body);
  return r;
}

absl::StatusOr<WebPages::Response> WebPages::EventsPage(const Request& request) {
  const std::string model = request.Param("model");
  const std::string since_text = request.Param("since");
  auto subscribe = [&](int64_t since) {
    v1::WatchCheckpointsRequest watch;
    if (model.empty()) {
      watch.set_all_models(true);
    } else {
      watch.set_model(model);
    }
    watch.set_since_revision(since);
    return service_->Watch(
        watch, [] {},
        [this, &request](absl::string_view m) {
          return MayRead(request, std::string(m));
        });
  };
  // Reads what the subscription has now (the backlog, up to kMaxEvents) and returns
  // the revision to continue from.
  std::vector<v1::WatchEvent> events;
  auto drain = [&](int64_t since) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(std::shared_ptr<WatchSubscription> sub, subscribe(since));
    int64_t revision = since;
    absl::Status status;
    while (static_cast<int>(events.size()) < kMaxEvents) {
      absl::StatusOr<std::optional<v1::WatchEvent>> e = sub->Next();
      if (!e.ok()) {
        status = e.status();
        break;
      }
      if (!e->has_value()) break;
      revision = std::max(revision, (*e)->revision());
      if ((*e)->type() == v1::WatchEvent::PROGRESS) break;
      events.push_back(std::move(**e));
    }
    service_->Unwatch(sub);
    RETURN_IF_ERROR(status);
    return revision;
  };

  int64_t revision = 0;
  if (since_text.empty()) {
    // The current revision, then the most recent events before it.
    ASSIGN_OR_RETURN(const int64_t current, drain(-1));
    absl::StatusOr<int64_t> recent = drain(std::max<int64_t>(0, current - kRecentEvents));
    // Older events may have left the store's window: then the page starts empty.
    if (!recent.ok() && recent.status().code() != absl::StatusCode::kOutOfRange) {
      return recent.status();
    }
    revision = recent.ok() ? std::max(*recent, current) : current;
  } else {
    int64_t since = 0;
    if (!absl::SimpleAtoi(since_text, &since) || since < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("since '", since_text,
                       "' is not a revision; use the revision of the last answer"));
    }
    ASSIGN_OR_RETURN(revision, drain(since));
  }

  const absl::Time now = absl::Now();
  JsonWriter j;
  j.BeginObject().Member("revision", revision).Key("events").BeginArray();
  std::string rows;
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    const v1::WatchEvent& e = *it;
    j.BeginObject()
        .Member("revision", e.revision())
        .Member("type", EventTypeName(e.type()))
        .Member("model", e.model())
        .Member("step", e.step())
        .Member("alias", e.alias())
        .Member("time", FormatRfc3339(TimeOf(e.time())))
        .Member("model_href", ModelHref(e.model()))
        .Member("step_href", StepHref(e.model(), e.step()))
        .EndObject();
    absl::StrAppend(&rows, "<tr data-revision=\"", e.revision(), "\"><td class=\"num\">",
                    e.revision(), "</td><td>", TimeHtml(e.time(), now), "</td><td>",
                    EventTypeName(e.type()), "</td><td><a href=\"",
                    HtmlEscape(ModelHref(e.model())), "\">", HtmlEscape(e.model()),
                    "</a></td><td class=\"num\"><a href=\"",
                    HtmlEscape(StepHref(e.model(), e.step())), "\">", e.step(),
                    "</a></td><td>", HtmlEscape(e.alias()), "</td></tr>");
  }
  j.EndArray().EndObject();

  Response r;
  if (request.json) {
    r.content_type = "application/json";
    r.body = j.Take();
    return r;
  }
  std::string body = absl::StrCat(
      "<h1>Events</h1><p class=\"live\"><span id=\"live-status\">live</span> · revision "
      "<span id=\"revision\">",
      revision, "</span></p><table id=\"events\" data-revision=\"", revision,
      "\" data-poll-ms=\"", options_.events_poll_ms, "\" data-model=\"",
      HtmlEscape(model),
      "\"><thead><tr><th>Revision</th><th>When</th><th>What</th><th>Model</th><th>Step</"
      "th>"
      "<th>Alias</th></tr></thead><tbody>",
      rows, "</tbody></table>");
  r.body = Layout(request, "Events", body);
  return r;
}

}  // namespace mgreg::web
