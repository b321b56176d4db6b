#include "tests/testing/rados_test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mgreg::testing {

std::string TestCephConf() {
  const char* env = std::getenv("MGREG_TEST_CEPH_CONF");
  return env != nullptr ? env : "";
}

std::string FreshTestNamespace(absl::string_view prefix) {
  return absl::StrCat(prefix, "-", std::random_device{}(), "-", std::random_device{}());
}

RadosStoreOptions TestStoreOptions(const std::string& ns) {
  RadosStoreOptions o;
  o.ceph_conf = TestCephConf();
  o.pool = kTestCephPool;
  o.rados_namespace = ns;
  o.timeout_seconds = 20;
  return o;
}

std::unique_ptr<Store> OpenTestStoreOrFail(const RadosStoreOptions& options) {
  auto s = OpenRadosStore(options);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

absl::Status ConnectToCluster(const std::string& conf_path, librados::Rados* rados,
                              int timeout_seconds) {
  auto fail = [&](const char* what, int r) {
    return absl::UnavailableError(
        absl::StrCat(what, " (conf ", conf_path, "): ", std::strerror(-r)));
  };
  int r = rados->init2("client.admin", "ceph", 0);
  if (r < 0) return fail("librados init2", r);
  r = rados->conf_read_file(conf_path.c_str());
  if (r < 0) return fail("reading the Ceph configuration", r);
  const std::string t = std::to_string(timeout_seconds);
  for (const char* option :
       {"client_mount_timeout", "rados_osd_op_timeout", "rados_mon_op_timeout"}) {
    r = rados->conf_set(option, t.c_str());
    if (r < 0) return fail(option, r);
  }
  r = rados->connect();
  if (r < 0) return fail("connecting to the Ceph cluster", r);
  return absl::OkStatus();
}

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace mgreg::testing
