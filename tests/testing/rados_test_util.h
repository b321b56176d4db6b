// Helpers for the tests of the RADOS store: which Ceph cluster to use, and a librados
// connection to it with bounded timeouts.
#ifndef MGREG_TESTS_TESTING_RADOS_TEST_UTIL_H_
#define MGREG_TESTS_TESTING_RADOS_TEST_UTIL_H_

#include <memory>
#include <rados/librados.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "storage/rados/rados_store.h"

namespace mgreg::testing {

// The ceph.conf of the cluster the RADOS tests run against (MGREG_TEST_CEPH_CONF;
// scripts/test.sh starts one with scripts/ceph-dev.sh), or "" if unset. Its pool is
// `mgreg`.
std::string TestCephConf();
inline constexpr char kTestCephPool[] = "mgreg";

// Skips the current test, loudly, when no test cluster is configured.
#define MGREG_REQUIRE_CEPH()                                                        \
  do {                                                                              \
    if (::mgreg::testing::TestCephConf().empty()) {                                 \
      GTEST_SKIP() << "RADOS test SKIPPED: MGREG_TEST_CEPH_CONF is not set. Run "   \
                      "scripts/test.sh (it starts a Ceph cluster when ceph-mon is " \
                      "installed), or scripts/ceph-dev.sh start DIR and export "    \
                      "MGREG_TEST_CEPH_CONF=DIR/ceph.conf";                         \
    }                                                                               \
  } while (0)

// Connects `rados` (not yet initialized) as client.admin to the cluster described by
// `conf_path`, with mount and operation timeouts of `timeout_seconds`.
absl::Status ConnectToCluster(const std::string& conf_path, librados::Rados* rados,
                              int timeout_seconds = 20);

// A namespace no other test run uses: `prefix`, then two random numbers.
std::string FreshTestNamespace(absl::string_view prefix);

// Options for a store on the test cluster's pool in namespace `ns`, with operations
// bounded at 20 s; tests change what they need on the copy.
RadosStoreOptions TestStoreOptions(const std::string& ns);

// Opens the store, failing the test (EXPECT) and returning null if it does not open.
std::unique_ptr<Store> OpenTestStoreOrFail(const RadosStoreOptions& options);

// The path of the first executable `name` on PATH, or "" if there is none.
std::string FindOnPath(const std::string& name);

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_RADOS_TEST_UTIL_H_
