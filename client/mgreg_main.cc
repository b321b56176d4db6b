// mgreg: the command-line client (DESIGN §8).
#include <iostream>
#include <string>
#include <vector>

#include "client/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return mgreg::RunCli(args, std::cout, std::cerr);
}
