// Regression driver: feeds every file of the directories (or files) named on the command
// line to FuzzOne, in sorted order, so crash inputs found by fuzzing stay fixed in the
// normal (GCC, no libFuzzer) build. Exits 1 if a path cannot be read or no input is
// found.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_target.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path p(argv[i]);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::directory_iterator(p)) {
        if (e.is_regular_file()) inputs.push_back(e.path());
      }
    } else if (fs::is_regular_file(p, ec)) {
      inputs.push_back(p);
    } else {
      std::cerr << "fuzz regression: cannot read " << p << "\n";
      return 1;
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (inputs.empty()) {
    std::cerr << "fuzz regression: no inputs\n";
    return 1;
  }
  for (const fs::path& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::cerr << "fuzz regression: cannot read " << p << "\n";
      return 1;
    }
    std::cout << "fuzz regression: " << p.filename().string() << " (" << bytes.size()
              << " bytes)" << std::endl;
    mgreg::fuzz::FuzzOne(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::cout << "fuzz regression: " << inputs.size() << " inputs passed\n";
  return 0;
}
