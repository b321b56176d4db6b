// The cluster the RADOS store tests run against (MGREG_TEST_CEPH_CONF, started by
// scripts/test.sh): reachable, and its pool `mgreg` takes writes in a namespace of our
// own.
#include <rados/librados.hpp>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/rados_test_util.h"

namespace mgreg::testing {
namespace {

TEST(TestClusterTest, PoolMgregTakesWritesInAPrivateNamespace) {
  MGREG_REQUIRE_CEPH();
  librados::Rados rados;
  absl::Status connected = ConnectToCluster(TestCephConf(), &rados);
  ASSERT_TRUE(connected.ok()) << connected;
  librados::IoCtx io;
  ASSERT_EQ(rados.ioctx_create(kTestCephPool, io), 0)
      << "pool " << kTestCephPool << " missing in " << TestCephConf();
  const std::string ns = absl::StrCat("test-cluster-", std::random_device{}());
  io.set_namespace(ns);
  librados::bufferlist bl;
  bl.append("x");
  ASSERT_EQ(io.write_full("probe", bl), 0);
  librados::IoCtx other;
  ASSERT_EQ(rados.ioctx_create(kTestCephPool, other), 0);
  other.set_namespace(ns + "-other");
  uint64_t size = 0;
  time_t mtime = 0;
  EXPECT_EQ(other.stat("probe", &size, &mtime), -ENOENT) << "namespaces are not separate";
  EXPECT_EQ(io.stat("probe", &size, &mtime), 0);
  EXPECT_EQ(size, 1u);
  EXPECT_EQ(io.remove("probe"), 0);
}

}  // namespace
}  // namespace mgreg::testing
