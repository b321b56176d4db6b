// Test certificates for TLS and mutual TLS, generated with openssl at test time.
#ifndef MGREG_TESTS_TESTING_TEST_PKI_H_
#define MGREG_TESTS_TESTING_TEST_PKI_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {

// A CA, a server certificate for 127.0.0.1 and a client certificate, made with the
// openssl command at test time (no key is committed). Files stay in `tmp`: ca.pem,
// server.pem, server.key, client.pem, client.key, other.pem (an unrelated CA).
struct TestPki {
  std::string ca, server_cert, server_key, client_cert, client_key, other_ca;
};

inline bool MakePki(const TempDir& tmp, TestPki* pki) {
  const std::string d = tmp.path();
  const std::string script = absl::StrCat(
      "set -e; cd '", d, "'\n",
      "k() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\" "
      "2>/dev/null; }\n",
      "k ca.key; openssl req -x509 -new -key ca.key -subj /CN=mgreg-test-ca -days 2 -out "
      "ca.pem\n",
      "k other.key; openssl req -x509 -new -key other.key -subj /CN=other-ca -days 2 "
      "-out other.pem\n",
      "k server.key; openssl req -new -key server.key -subj /CN=127.0.0.1 -out "
      "server.csr\n",
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext\n",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile server.ext -out server.pem 2>/dev/null\n",
      "k client.key; openssl req -new -key client.key -subj /CN=trainer -out "
      "client.csr\n",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-out client.pem 2>/dev/null\n");
  auto r = RunCommand({"/bin/sh", "-c", script});
  if (r.exit_code != 0) {
    ADD_FAILURE() << "openssl failed: " << r.err;
    return false;
  }
  pki->ca = ReadFileOrDie(tmp.Join("ca.pem"));
  pki->other_ca = ReadFileOrDie(tmp.Join("other.pem"));
  pki->server_cert = ReadFileOrDie(tmp.Join("server.pem"));
  pki->server_key = ReadFileOrDie(tmp.Join("server.key"));
  pki->client_cert = ReadFileOrDie(tmp.Join("client.pem"));
  pki->client_key = ReadFileOrDie(tmp.Join("client.key"));
  return true;
}

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_TEST_PKI_H_
