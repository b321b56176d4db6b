// mgreg-server on RADOS outlives a peer that hangs up (docs/reliability.md "Broken pipes
// (SIGPIPE)"). librados answers its admin socket (ceph.conf `admin_socket`) with
// write(2), which raises SIGPIPE when the asker has gone; before common/sigpipe.h that
// killed the process (session_store_test in CI died the same way, in librados' ping of
// another process's admin socket). Needs a Ceph cluster (MGREG_TEST_CEPH_CONF), else
// skipped with a message.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_util.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

// A connection to the admin socket at `path` with `request` (JSON) sent, or -1.
int SendAdminRequest(const std::string& path, absl::string_view request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  // The request ends at its NUL byte.
  const std::string bytes = absl::StrCat(request, absl::string_view("\0", 1));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(bytes.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The admin socket's whole answer to `request` (a 4-byte big-endian length, then the
// text), or "" if there is none.
std::string AskAdminSocket(const std::string& path, absl::string_view request) {
  const int fd = SendAdminRequest(path, request);
  if (fd < 0) return "";
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) answer.append(buf, n);
  ::close(fd);
  return answer.size() > 4 ? answer.substr(4) : "";
}

// How the process `pid` (a child) ended, or "running".
std::string HowItEnded(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) != pid) return "running";
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("exited with status ", WEXITSTATUS(status));
}

TEST(RadosSigpipeTest, ServerOutlivesAdminSocketClientsThatHangUpBeforeTheAnswer) {
  MGREG_REQUIRE_CEPH();
  TempDir tmp;
  // The test cluster's configuration, with an admin socket for the server's client.
  const std::string asok = tmp.Join("server.asok");
  const std::string conf = tmp.Join("ceph.conf");
  WriteFileOrDie(conf, absl::StrCat(ReadFileOrDie(TestCephConf()),
                                    "\n[client.admin]\nadmin_socket = ", asok, "\n"));
  ServerProcess server({"--store", "rados", "--ceph-conf", conf, "--rados-pool",
                        kTestCephPool, "--rados-namespace",
                        FreshTestNamespace("sigpipe")});
  ASSERT_TRUE(server.started());
  ASSERT_TRUE(std::filesystem::exists(asok)) << "librados made no admin socket " << asok;
  ASSERT_THAT(AskAdminSocket(asok, R"({"prefix":"version"})"),
              ::testing::HasSubstr("version"));

  for (int i = 0; i < 3; ++i) {
    // `config help` answers ~1 MB, more than the socket buffers: whether the server
    // has begun writing or not when this end closes, its write meets a closed peer.
    const int fd = SendAdminRequest(asok, R"({"prefix":"config help"})");
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ::close(fd);
    // The admin socket serves one asker at a time: the next answer comes once the
    // write above has failed.
    ASSERT_THAT(AskAdminSocket(asok, R"({"prefix":"version"})"),
                ::testing::HasSubstr("version"))
        << "mgreg-server " << HowItEnded(server.pid());
  }
  EXPECT_EQ(HowItEnded(server.pid()), "running");
  // And it serves its API.
  CommandResult list =
      RunCommand({BinaryPath("client/mgreg"), "--server", server.address(), "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(server.Stop(SIGTERM), 0) << "a clean shutdown after SIGTERM";
}

}  // namespace
}  // namespace mgreg::testing
