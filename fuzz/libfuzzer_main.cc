// libFuzzer's entry point for a target's FuzzOne (linked with -fsanitize=fuzzer).
#include <google/protobuf/stubs/logging.h>

#include "fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Protobuf logs every string field with invalid UTF-8 it parses: millions of lines
  // that slow fuzzing down and say nothing (the parse fails, which is what we test).
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return mgreg::fuzz::FuzzOne(data, size);
}
