// A write to a pipe or socket whose reader has gone is an error (EPIPE), not the death of
// the process (docs/reliability.md "Broken pipes (SIGPIPE)").
#ifndef MGREG_COMMON_SIGPIPE_H_
#define MGREG_COMMON_SIGPIPE_H_

namespace mgreg {

// From this call on, a write(2) to a pipe or socket whose reader is gone fails with EPIPE
// in the calling thread instead of killing the process with SIGPIPE. Call it at the top
// of main, before any thread starts (mgreg-server, and every test binary through
// tests/testing/test_main.cc).
//
// Why: libraries linked into mgreg-server write to sockets with plain write(2), which
// raises SIGPIPE when the peer has closed. librados' admin socket (ceph.conf
// `admin_socket`, when it applies to clients) is one: each Rados handle binds it;
// when the path is taken it connects to the other owner and writes a ping, and it writes
// every command's answer back to whoever asked. A peer that closes in between (another
// process shutting its handle down; `ceph daemon` interrupted) kills the writer: it
// killed session_store_test in CI, and under strace the ping's
// `write(17, "{\"prefix\":\"0\"}\0", 15) = -1 EPIPE` was followed by SIGPIPE inside
// Rados::connect. gRPC and librados' messenger use MSG_NOSIGNAL and need none of this;
// mgreg's own writes check their result (common/log.cc counts the lines it loses).
//
// It installs a handler that does nothing rather than SIG_IGN: execve resets a handler
// to the default but keeps SIG_IGN, so programs started from this process (a test's
// mgreg-server, `sha256sum | head`) keep the usual behaviour. Idempotent.
void IgnoreSigpipe();

}  // namespace mgreg

#endif  // MGREG_COMMON_SIGPIPE_H_
