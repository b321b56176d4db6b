#include "tests/testing/rados_test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mgreg::testing {

std::string TestCephConf() {
  const char* env = std::getenv("MGREG_TEST_CEPH_CONF");
  return env != nullptr ? env : "";
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
