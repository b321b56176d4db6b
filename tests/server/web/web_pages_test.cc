// The web pages over real HTTP on 127.0.0.1:0 against a real server holding the real
// TensorFlow checkpoint of tfx (2502 nodes, 60 tensors): HTML, ?format=json, escaping,
// downloads, events, tokens and the read-only rule.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/http_client.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kTfxPrefix[] =
    "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000";
constexpr char kWriterToken[] = "writer-secret";
constexpr char kTeamAToken[] = "team-a-reader-secret";

config::v1::Token MakeToken(const std::string& name, const std::string& secret,
                            config::v1::Role role, const std::string& prefix = "") {
  config::v1::Token t;
  t.set_name(name);
  t.set_sha256(Sha256Hex(secret));
  t.set_role(role);
  if (!prefix.empty()) t.add_model_prefixes(prefix);
  return t;
}

class WebPagesTest : public ::testing::Test {
 protected:
  void Start(bool with_tokens = false) {
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.in_memory = true;
    options.metrics_listen_address = "127.0.0.1:0";
    // Several chunks per .meta: the graph summary streams across chunk boundaries.
    options.service.chunk_bytes = 64 << 10;
    if (with_tokens) {
      *options.tokens.Add() = MakeToken("writer", kWriterToken, config::v1::ROLE_WRITER);
      *options.tokens.Add() =
          MakeToken("team-a", kTeamAToken, config::v1::ROLE_READER, "team-a/");
    }
    auto server = RegistryServer::BuildAndStart(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->metrics_port();
    ClientOptions client_options;
    client_options.target = server_->address();
    if (with_tokens) client_options.token = kWriterToken;
    auto client = Client::Connect(client_options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  v1::Checkpoint Push(const std::string& model, int64_t step,
                      std::map<std::string, std::string> metadata = {}) {
    PushOptions options;
    options.step = step;
    options.metadata = std::move(metadata);
    auto pushed = client_->Push(model, TestdataPath(kTfxPrefix), options);
    EXPECT_TRUE(pushed.ok()) << pushed.status();
    return pushed.ok() ? *pushed : v1::Checkpoint();
  }

  // GET `path` (which must answer 200 with JSON) parsed.
  Struct Json(const std::string& path, const std::vector<std::string>& headers = {}) {
    HttpResponse r = HttpGet(port_, path, headers);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_EQ(r.Header("Content-Type"), "application/json");
    Struct out;
    auto parsed = google::protobuf::util::JsonStringToMessage(r.body, &out);
    EXPECT_TRUE(parsed.ok()) << parsed.ToString() << " in " << r.body;
    return out;
  }

  TempDir tmp_;
  std::unique_ptr<RegistryServer> server_;
  std::unique_ptr<Client> client_;
  int port_ = 0;
};

const Value& Field(const Struct& s, const std::string& key) {
  static const Value kMissing;
  auto it = s.fields().find(key);
  return it == s.fields().end() ? kMissing : it->second;
}

TEST_F(WebPagesTest, ModelsPageListsEachModelWithItsLatestStepAndFiltersByPrefix) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("team-a/resnet", 1000);
  Push("team-a/resnet", 2000);
  Push("team-b/bert", 500);
  ASSERT_TRUE(client_->SetAlias("team-a/resnet", "production", 1000).ok());

  HttpResponse page = HttpGet(port_, "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_TRUE(absl::StrContains(page.body, ">team-a/resnet</a>"));
  EXPECT_TRUE(absl::StrContains(page.body, ">team-b/bert</a>"));
  EXPECT_TRUE(absl::StrContains(page.body, "production → 1000"));

  Struct all = Json("/?format=json");
  const auto& models = Field(all, "models").list_value().values();
  ASSERT_EQ(models.size(), 2);
  const Struct& resnet = models[0].struct_value();
  EXPECT_EQ(Field(resnet, "name").string_value(), "team-a/resnet");
  EXPECT_EQ(Field(resnet, "latest_step").number_value(), 2000);
  EXPECT_EQ(Field(resnet, "checkpoint_count").number_value(), 2);
  EXPECT_EQ(Field(resnet, "latest_bytes").number_value(), 786034 + 2710 + 126216);
  EXPECT_EQ(Field(Field(resnet, "aliases").struct_value(), "production").number_value(),
            1000);
  EXPECT_FALSE(Field(resnet, "latest_commit_time").string_value().empty());

  Struct b = Json("/?format=json&prefix=team-b/");
  ASSERT_EQ(Field(b, "models").list_value().values_size(), 1);
  EXPECT_EQ(Field(Field(b, "models").list_value().values(0).struct_value(), "name")
                .string_value(),
            "team-b/bert");
  // The page token of one prefix's listing is refused for another.
  Struct first_a = Json("/?format=json&page_size=1&prefix=team-");
  const std::string token_a = Field(first_a, "next_page_token").string_value();
  ASSERT_FALSE(token_a.empty());
  EXPECT_EQ(
      HttpGet(port_, "/?format=json&page_size=1&prefix=team-b/&page_token=" + token_a)
          .status,
      400);
  EXPECT_EQ(HttpGet(port_, "/?format=json&prefix=team%FF").status, 400);
  Struct none = Json("/?format=json&prefix=team-c");
  EXPECT_EQ(Field(none, "models").list_value().values_size(), 0);
}

TEST_F(WebPagesTest, ModelsPagePaginatesWithPageTokensInNameOrder) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  for (const char* m : {"m1", "m2", "m3", "m4", "m5"}) Push(m, 1);
  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    Struct page = Json(absl::StrCat("/?format=json&page_size=2&page_token=", token));
    EXPECT_LE(Field(page, "models").list_value().values_size(), 2);
    for (const Value& m : Field(page, "models").list_value().values()) {
      names.push_back(Field(m.struct_value(), "name").string_value());
    }
    token = Field(page, "next_page_token").string_value();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(names, (std::vector<std::string>{"m1", "m2", "m3", "m4", "m5"}));
  EXPECT_EQ(pages, 3);
  // The HTML offers the next page.
  EXPECT_TRUE(
      absl::StrContains(HttpGet(port_, "/?page_size=2").body, "id=\"next-page\""));
  // A token of another prefix's listing is refused with the service's message.
  HttpResponse bad = HttpGet(port_, "/?format=json&page_size=2&page_token=garbage!");
  EXPECT_EQ(bad.status, 400);
  EXPECT_TRUE(absl::StrContains(bad.body, "INVALID_ARGUMENT")) << bad.body;
}

TEST_F(WebPagesTest, ModelPageShowsStepsNewestFirstAndPlotsEveryNumericMetadataKey) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("resnet", 1000, {{"loss", "0.9"}, {"note", "warmup"}});
  Push("resnet", 2000, {{"loss", "0.5"}, {"accuracy", "0.7"}});
  Push("resnet", 3000, {{"loss", "0.25"}, {"accuracy", "0.8"}});
  ASSERT_TRUE(client_->PinCheckpoint("resnet", 2000, true).ok());

  Struct page = Json("/model?name=resnet&format=json");
  const auto& steps = Field(page, "steps").list_value().values();
  ASSERT_EQ(steps.size(), 3);
  EXPECT_EQ(Field(steps[0].struct_value(), "step").number_value(), 3000);
  EXPECT_EQ(Field(steps[2].struct_value(), "step").number_value(), 1000);
  EXPECT_TRUE(Field(steps[1].struct_value(), "pinned").bool_value());
  // Identical files at every step: only the first step brought new bytes.
  EXPECT_EQ(Field(steps[2].struct_value(), "new_bytes").number_value(),
            Field(steps[2].struct_value(), "total_bytes").number_value());
  EXPECT_EQ(Field(steps[0].struct_value(), "new_bytes").number_value(), 0);

  std::map<std::string, std::vector<std::pair<double, double>>> plots;
  for (const Value& p : Field(page, "plots").list_value().values()) {
    auto& points = plots[Field(p.struct_value(), "key").string_value()];
    for (const Value& pt : Field(p.struct_value(), "points").list_value().values()) {
      points.emplace_back(pt.list_value().values(0).number_value(),
                          pt.list_value().values(1).number_value());
    }
  }
  EXPECT_EQ(plots["loss"], (std::vector<std::pair<double, double>>{
                               {1000, 0.9}, {2000, 0.5}, {3000, 0.25}}));
  EXPECT_EQ(plots["accuracy"].size(), 2);
  EXPECT_EQ(plots.count("note"), 0) << "a non-numeric key is not plotted";
  EXPECT_EQ(plots["step size (bytes)"].size(), 3);

  HttpResponse html = HttpGet(port_, "/model?name=resnet");
  ASSERT_EQ(html.status, 200);
  EXPECT_TRUE(absl::StrContains(html.body, "data-title=\"loss\" data-points=\"3\""));
  EXPECT_TRUE(absl::StrContains(html.body, "data-step=\"3000\" data-value=\"0.25\""));
  EXPECT_LT(html.body.find("data-step=\"3000\"><td"),
            html.body.find("data-step=\"1000\"><td"))
      << "newest first";

  // One step per page: "before" walks to older steps.
  Struct first = Json("/model?name=resnet&format=json&page_size=1");
  EXPECT_EQ(Field(first, "next_before").number_value(), 3000);
  Struct second = Json("/model?name=resnet&format=json&page_size=1&before=3000");
  EXPECT_EQ(Field(Field(second, "steps").list_value().values(0).struct_value(), "step")
                .number_value(),
            2000);
}

TEST_F(WebPagesTest, NamesAndMetadataAreHtmlEscapedOnEveryPage) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("xss", 7,
       {{"note", "<script>alert(1)</script>"}, {"<b>key", "\"quoted\" & 'single'"}});
  for (const std::string path :
       {"/model?name=xss", "/step?model=xss&step=7", "/events"}) {
    HttpResponse r = HttpGet(port_, path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_FALSE(absl::StrContains(r.body, "<script>alert")) << path;
    EXPECT_FALSE(absl::StrContains(r.body, "<b>key")) << path;
    if (path != "/events") {
      EXPECT_TRUE(absl::StrContains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;"))
          << path;
      EXPECT_TRUE(absl::StrContains(r.body, "&quot;quoted&quot; &amp; &#39;single&#39;"))
          << path;
    }
    // Scripts only from this server, never inline.
    EXPECT_TRUE(
        absl::StrContains(r.Header("Content-Security-Policy"), "script-src 'self'"));
    EXPECT_FALSE(absl::StrContains(r.Header("Content-Security-Policy"), "unsafe-inline"));
    EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
    const std::string kOnlyScript = "<script src=\"/static/app.js\" defer></script>";
    size_t at = 0;
    while ((at = r.body.find("<script", at)) != std::string::npos) {
      EXPECT_EQ(r.body.compare(at, kOnlyScript.size(), kOnlyScript), 0) << path;
      ++at;
    }
  }
  // JSON carries the value as data, with < and > escaped.
  HttpResponse json = HttpGet(port_, "/step?model=xss&step=7&format=json");
  EXPECT_TRUE(
      absl::StrContains(json.body, "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"));
  // A prefix typed into the filter comes back escaped.
  HttpResponse filter = HttpGet(port_, "/?prefix=%3Cimg%20src%3Dx%3E");
  EXPECT_TRUE(absl::StrContains(filter.body, "&lt;img src=x&gt;"));
  EXPECT_FALSE(absl::StrContains(filter.body, "<img src=x>"));
}

TEST_F(WebPagesTest, StepPageShowsFilesTensorsAndTheGraphSummaryOfTheRealCheckpoint) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("tfx", 1000, {{"loss", "0.5"}});
  Struct step = Json("/step?model=tfx&step=1000&format=json");
  EXPECT_EQ(Field(step, "basename").string_value(), "model.ckpt");
  const auto& files = Field(step, "files").list_value().values();
  ASSERT_EQ(files.size(), 3);
  // The C++ client pushes chunked digests only (values from the README's one-liner).
  std::map<std::string, std::string> sha, chunked;
  for (const Value& f : files) {
    const std::string name = Field(f.struct_value(), "name").string_value();
    sha[name] = Field(f.struct_value(), "sha256").string_value();
    chunked[name] = Field(f.struct_value(), "chunked_sha256").string_value();
  }
  EXPECT_EQ(chunked["meta"],
            "d77e731027d7f75d8b2e4dbaf561b9dce394709a7d728fb1e27e15746ceafefc");
  EXPECT_EQ(chunked["index"],
            "21e35f52fed0739be3732a78110fde21b5396e6439a71119c1a764b571fcc965");
  EXPECT_EQ(sha["meta"], "");
  // The graph's digest stays sha256sum's: the server computes it from the .meta it
  // parses.
  EXPECT_EQ(Field(step, "graph_sha256").string_value(),
            "b43144919b599daa5437867adc7949dac6833318b61d336587da5ea0a525457d");

  const Struct& tensors = Field(step, "tensors").struct_value();
  EXPECT_EQ(Field(tensors, "count").number_value(), 60);
  EXPECT_EQ(Field(tensors, "items").list_value().values_size(), 60);

  // DATA.md: 2502 nodes, 59 functions, /device:CPU:0 x241, variables bytes[60],
  // trainable_variables bytes[20], summaries node[15].
  const Struct& graph = Field(step, "graph").struct_value();
  EXPECT_EQ(Field(graph, "node_count").number_value(), 2502);
  EXPECT_EQ(Field(graph, "function_count").number_value(), 59);
  EXPECT_EQ(Field(graph, "bytes").number_value(), 786034);
  EXPECT_EQ(Field(Field(graph, "devices").struct_value(), "/device:CPU:0").number_value(),
            241);
  EXPECT_EQ(Field(Field(graph, "devices").struct_value(), "").number_value(), 2256);
  EXPECT_TRUE(Field(graph, "has_saver").bool_value());
  std::map<std::string, std::pair<std::string, double>> collections;
  for (const Value& c : Field(graph, "collections").list_value().values()) {
    collections[Field(c.struct_value(), "name").string_value()] = {
        Field(c.struct_value(), "kind").string_value(),
        Field(c.struct_value(), "size").number_value()};
  }
  EXPECT_EQ(collections["variables"], std::make_pair(std::string("bytes_list"), 60.0));
  EXPECT_EQ(collections["trainable_variables"],
            std::make_pair(std::string("bytes_list"), 20.0));
  EXPECT_EQ(collections["summaries"], std::make_pair(std::string("node_list"), 15.0));

  HttpResponse html = HttpGet(port_, "/step?model=tfx&step=1000");
  ASSERT_EQ(html.status, 200);
  EXPECT_TRUE(absl::StrContains(html.body, "<dd id=\"node-count\">2502</dd>"));
  EXPECT_TRUE(absl::StrContains(html.body, "id=\"download-meta\""));
  // The alias form of the address reaches the same step.
  ASSERT_TRUE(client_->SetAlias("tfx", "production", 1000).ok());
  EXPECT_TRUE(absl::StrContains(HttpGet(port_, "/step?model=tfx&alias=production").body,
                                "<h1 id=\"step-title\">Step 1000</h1>"));
}

TEST_F(WebPagesTest, DownloadsAreTheStoredMetaAndTheServersFilteredExport) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("tfx", 1000);
  HttpResponse meta = HttpGet(port_, "/file?model=tfx&step=1000&name=meta");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.Header("Content-Length"), "786034");
  EXPECT_EQ(Sha256Hex(meta.body),
            "b43144919b599daa5437867adc7949dac6833318b61d336587da5ea0a525457d");
  EXPECT_TRUE(absl::StrContains(meta.Header("Content-Disposition"), "attachment"));

  HttpResponse exported =
      HttpGet(port_, "/graph?model=tfx&step=1000&clear_devices=1&collection=variables");
  ASSERT_EQ(exported.status, 200);
  v1::GraphOptions options;
  options.set_clear_devices(true);
  options.add_collection_list("variables");
  options.set_has_collection_list(true);
  std::string expected;
  ASSERT_TRUE(client_->FetchGraphBytes("tfx", 1000, options, &expected).ok());
  EXPECT_EQ(exported.body, expected) << "the same bytes mgreg graph writes";
  EXPECT_NE(exported.body, meta.body);

  HttpResponse missing =
      HttpGet(port_, "/file?model=tfx&step=1000&name=data-00009-of-00010");
  EXPECT_EQ(missing.status, 404);
  HttpResponse bad_scope = HttpGet(port_, "/graph?model=tfx&step=5&format=json");
  EXPECT_EQ(bad_scope.status, 404);
  EXPECT_TRUE(absl::StrContains(bad_scope.body, "\"code\":\"NOT_FOUND\""));
}

// Issue 15: a SavedModel step renders its files by path, each MetaGraphDef's tag set and
// signatures, its variables, and exports a MetaGraphDef by tags.
TEST_F(WebPagesTest, SavedModelStepPageShowsFilesVariablesAndTagSets) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  const std::string dir = TestdataPath(
      "serving/tensorflow_serving/servables/tensorflow/testdata/"
      "saved_model_half_plus_two_tf2_cpu/00000123");
  absl::StatusOr<v1::Checkpoint> pushed = client_->Push("resnet", dir, PushOptions());
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  Struct step = Json("/step?model=resnet&step=123&format=json");
  EXPECT_EQ(Field(step, "kind").string_value(), "saved_model")
      << HttpGet(port_, "/step?model=resnet&step=123&format=json").body;
  std::vector<std::string> names;
  for (const Value& f : Field(step, "files").list_value().values()) {
    names.push_back(Field(f.struct_value(), "name").string_value());
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "assets/foo.txt", "fingerprint.pb", "saved_model.pb",
                "variables/variables.data-00000-of-00001", "variables/variables.index"}));
  const Struct& sm = Field(step, "saved_model").struct_value();
  EXPECT_EQ(Field(sm, "proto").string_value(), "saved_model.pb");
  EXPECT_FALSE(sm.fields().count("error")) << Field(sm, "error").string_value();
  const auto& graphs = Field(sm, "meta_graphs").list_value().values();
  ASSERT_EQ(graphs.size(), 1);
  const Struct& g = graphs[0].struct_value();
  ASSERT_EQ(Field(g, "tags").list_value().values_size(), 1);
  EXPECT_EQ(Field(g, "tags").list_value().values(0).string_value(), "serve");
  EXPECT_EQ(Field(g, "node_count").number_value(),
            29);  // DATA.md: 29 nodes, 14 functions
  EXPECT_EQ(Field(g, "function_count").number_value(), 14);
  EXPECT_EQ(Field(g, "tensorflow_version").string_value(), "2.14.0");
  EXPECT_GT(Field(Field(step, "tensors").struct_value(), "count").number_value(), 0);

  HttpResponse html = HttpGet(port_, "/step?model=resnet&step=123");
  ASSERT_EQ(html.status, 200) << html.body;
  EXPECT_TRUE(absl::StrContains(html.body, "SavedModel (TF Serving version 123)"));
  EXPECT_TRUE(absl::StrContains(html.body, "<td>variables/variables.index</td>"));
  EXPECT_TRUE(absl::StrContains(html.body, "<td class=\"tags\">serve</td>"));
  EXPECT_TRUE(absl::StrContains(html.body, "serving_default"));
  EXPECT_TRUE(absl::StrContains(html.body, "id=\"download-saved-model\""));
  EXPECT_TRUE(absl::StrContains(html.body, "<h2>Variables</h2>"));
  EXPECT_FALSE(absl::StrContains(html.body, "class=\"error\""));

  HttpResponse exported =
      HttpGet(port_, "/graph?model=resnet&step=123&tags=serve&clear_devices=1");
  ASSERT_EQ(exported.status, 200) << exported.body;
  v1::GraphOptions options;
  options.set_clear_devices(true);
  options.add_tags("serve");
  std::string expected;
  ASSERT_TRUE(client_->FetchGraphBytes("resnet", 123, options, &expected).ok());
  EXPECT_EQ(exported.body, expected);
  HttpResponse stored = HttpGet(port_, "/file?model=resnet&step=123&name=saved_model.pb");
  ASSERT_EQ(stored.status, 200);
  EXPECT_EQ(stored.body, ReadFileOrDie(dir + "/saved_model.pb"));
}

TEST_F(WebPagesTest, EventsAfterARevisionHoldANewCommitAndAliasMove) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("resnet", 1000);
  Struct before = Json("/events?format=json");
  const double revision = Field(before, "revision").number_value();
  EXPECT_GE(revision, 1);
  ASSERT_EQ(Field(before, "events").list_value().values_size(), 1);

  Struct nothing = Json(absl::StrCat("/events?format=json&since=", revision));
  EXPECT_EQ(Field(nothing, "events").list_value().values_size(), 0);
  EXPECT_EQ(Field(nothing, "revision").number_value(), revision);

  Push("resnet", 2000);
  ASSERT_TRUE(client_->SetAlias("resnet", "production", 2000).ok());
  Struct after = Json(absl::StrCat("/events?format=json&since=", revision));
  const auto& events = Field(after, "events").list_value().values();
  ASSERT_EQ(events.size(), 2);
  // Newest first.
  EXPECT_EQ(Field(events[0].struct_value(), "type").string_value(), "alias set");
  EXPECT_EQ(Field(events[1].struct_value(), "type").string_value(), "committed");
  EXPECT_EQ(Field(events[1].struct_value(), "step").number_value(), 2000);
  EXPECT_EQ(Field(after, "revision").number_value(), revision + 2);

  HttpResponse html = HttpGet(port_, "/events");
  EXPECT_TRUE(
      absl::StrContains(html.body, absl::StrCat("data-revision=\"", revision + 2, "\"")));
  EXPECT_EQ(HttpGet(port_, "/events?since=abc").status, 400);
}

TEST_F(WebPagesTest, UnknownModelIsNotFoundAndMalformedParametersAreBadRequests) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("resnet", 1000);
  EXPECT_EQ(HttpGet(port_, "/model?name=nope").status, 404);
  EXPECT_EQ(HttpGet(port_, "/model?name=bad%20name").status, 400);
  EXPECT_EQ(HttpGet(port_, "/step?model=resnet&step=12").status, 404);
  HttpResponse bad = HttpGet(port_, "/step?model=resnet&step=x&format=json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_TRUE(absl::StrContains(bad.body, "give ?step=N or ?alias=NAME")) << bad.body;
  EXPECT_EQ(HttpGet(port_, "/model?name=resnet&before=soon").status, 400);
  EXPECT_EQ(HttpGet(port_, "/?page_size=-3").status, 400);
  EXPECT_EQ(HttpGet(port_, "/no-such-page").status, 404);
  // /metrics is still there, beside the pages.
  EXPECT_TRUE(absl::StrContains(HttpGet(port_, "/metrics").body, "mgreg_store_models 1"));
}

TEST_F(WebPagesTest, NoRequestChangesTheStore) {
  MGREG_REQUIRE_TESTDATA();
  Start();
  Push("resnet", 1000);
  const int64_t revision = server_->store()->GetStats()->revision;
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    for (const char* path : {"/", "/model?name=resnet", "/step?model=resnet&step=1000",
                             "/file?model=resnet&step=1000&name=meta", "/events"}) {
      HttpResponse r = HttpRequest(port_, method, path, {}, "step=1000");
      EXPECT_EQ(r.status, 405) << method << " " << path;
    }
  }
  EXPECT_EQ(server_->store()->GetStats()->revision, revision);
  EXPECT_TRUE(client_->GetCheckpoint("resnet", 1000).ok());
}

TEST_F(WebPagesTest, WithTokensPagesNeedAReadTokenAndShowOnlyItsModels) {
  MGREG_REQUIRE_TESTDATA();
  Start(/*with_tokens=*/true);
  Push("team-a/resnet", 1000);
  Push("team-b/bert", 1000);

  HttpResponse anonymous = HttpGet(port_, "/");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_TRUE(absl::StrContains(anonymous.body, "action=\"/login\""));
  EXPECT_FALSE(absl::StrContains(anonymous.body, "team-a/resnet"));
  HttpResponse anonymous_json = HttpGet(port_, "/?format=json");
  EXPECT_EQ(anonymous_json.status, 401);
  EXPECT_TRUE(absl::StrContains(anonymous_json.body, "\"code\":\"UNAUTHENTICATED\""));
  EXPECT_EQ(HttpGet(port_, "/events?format=json").status, 401);
  EXPECT_EQ(HttpGet(port_, "/file?model=team-a/resnet&step=1000&name=meta").status, 401);
  EXPECT_EQ(HttpGet(port_, "/?format=json", {"Authorization: Bearer wrong"}).status, 401);

  const std::vector<std::string> team_a = {
      absl::StrCat("Authorization: Bearer ", kTeamAToken)};
  Struct models = Json("/?format=json", team_a);
  ASSERT_EQ(Field(models, "models").list_value().values_size(), 1);
  EXPECT_EQ(Field(Field(models, "models").list_value().values(0).struct_value(), "name")
                .string_value(),
            "team-a/resnet");
  EXPECT_EQ(HttpGet(port_, "/model?name=team-a/resnet", team_a).status, 200);
  EXPECT_EQ(HttpGet(port_, "/model?name=team-b/bert", team_a).status, 403);
  EXPECT_EQ(HttpGet(port_, "/step?model=team-b/bert&step=1000", team_a).status, 403);
  EXPECT_EQ(HttpGet(port_, "/file?model=team-b/bert&step=1000&name=meta", team_a).status,
            403);
  Struct events = Json("/events?format=json&since=0", team_a);
  for (const Value& e : Field(events, "events").list_value().values()) {
    EXPECT_EQ(Field(e.struct_value(), "model").string_value(), "team-a/resnet");
  }
  EXPECT_EQ(Field(events, "events").list_value().values_size(), 1);
}

TEST_F(WebPagesTest, LoginSetsAnHttpOnlyCookieThatOpensThePages) {
  MGREG_REQUIRE_TESTDATA();
  Start(/*with_tokens=*/true);
  Push("team-a/resnet", 1000);
  const std::vector<std::string> form = {
      "Content-Type: application/x-www-form-urlencoded"};

  HttpResponse wrong = HttpRequest(port_, "POST", "/login", form, "token=nope&next=%2F");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_TRUE(absl::StrContains(wrong.body, "the token is not valid on this server"));
  EXPECT_TRUE(wrong.Header("Set-Cookie").empty());

  HttpResponse ok = HttpRequest(port_, "POST", "/login", form,
                                absl::StrCat("token=", kTeamAToken, "&next=%2Fevents"));
  EXPECT_EQ(ok.status, 303);
  EXPECT_EQ(ok.Header("Location"), "/events");
  const std::string cookie = ok.Header("Set-Cookie");
  EXPECT_TRUE(absl::StrContains(cookie, "HttpOnly"));
  EXPECT_TRUE(absl::StrContains(cookie, "SameSite=Strict"));
  const std::string pair = cookie.substr(0, cookie.find(';'));

  HttpResponse page = HttpGet(port_, "/", {absl::StrCat("Cookie: ", pair)});
  EXPECT_EQ(page.status, 200);
  EXPECT_TRUE(absl::StrContains(page.body, ">team-a/resnet</a>"));
  EXPECT_TRUE(absl::StrContains(page.body, "action=\"/logout\""));

  // Only local paths are followed after a login.
  HttpResponse away =
      HttpRequest(port_, "POST", "/login", form,
                  absl::StrCat("token=", kTeamAToken, "&next=//evil.example/"));
  EXPECT_EQ(away.Header("Location"), "/");
  HttpResponse out = HttpRequest(port_, "POST", "/logout", {}, "");
  EXPECT_EQ(out.status, 303);
  EXPECT_TRUE(absl::StrContains(out.Header("Set-Cookie"), "Max-Age=0"));
}

TEST_F(WebPagesTest, StaticFilesAreServedByTheServerItself) {
  Start();
  HttpResponse js = HttpGet(port_, "/static/app.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.Header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_TRUE(absl::StrContains(js.body, "followEvents"));
  EXPECT_FALSE(absl::StrContains(js.body, "innerHTML")) << "rows are built as text";
  HttpResponse css = HttpGet(port_, "/static/app.css");
  ASSERT_EQ(css.status, 200);
  EXPECT_EQ(css.Header("Content-Type"), "text/css; charset=utf-8");
  EXPECT_FALSE(absl::StrContains(css.body, "http"));  // nothing from the network
  HttpResponse empty = HttpGet(port_, "/");
  EXPECT_EQ(empty.status, 200);
  EXPECT_TRUE(absl::StrContains(empty.body, "No models"));
}

}  // namespace
}  // namespace mgreg::testing
