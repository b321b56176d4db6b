// Talks to an mgreg server through the installed client library:
//   mgreg_consumer HOST:PORT
// Prints "consumer ok" and exits 0 if the server answers as expected.
#include <iostream>

#include "client/client.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: mgreg_consumer HOST:PORT\n";
    return 2;
  }
  mgreg::ClientOptions options;
  options.target = argv[1];
  auto client = mgreg::Client::Connect(options);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  auto health = (*client)->CheckHealth();
  if (!health.ok() || *health != "SERVING") {
    std::cerr << "health: " << (health.ok() ? *health : health.status().ToString())
              << "\n";
    return 1;
  }
  auto models = (*client)->ListModels(10, "");
  if (!models.ok()) {
    std::cerr << "ListModels: " << models.status() << "\n";
    return 1;
  }
  auto latest = (*client)->GetLatestCheckpoint("no-such-model");
  if (latest.status().code() != absl::StatusCode::kNotFound) {
    std::cerr << "GetLatestCheckpoint: expected NOT_FOUND, got " << latest.status()
              << "\n";
    return 1;
  }
  std::cout << "consumer ok (" << models->models_size() << " models)\n";
  return 0;
}
