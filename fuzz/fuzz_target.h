// The one entry point of a fuzz target. Each fuzz/<target>.cc defines FuzzOne; the same
// object links into the libFuzzer binary (libfuzzer_main.cc, scripts/fuzz.sh) and into
// the regression driver (regression_main.cc, tests/fuzz), which feeds it every file of
// tests/fuzz/regressions/<target>/ in the normal build.
//
// FuzzOne must accept any bytes: returning normally means "no bug"; a crash, a sanitizer
// report or a failed invariant (FUZZ_CHECK) is a finding.
#ifndef MGREG_FUZZ_FUZZ_TARGET_H_
#define MGREG_FUZZ_FUZZ_TARGET_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace mgreg::fuzz {

int FuzzOne(const uint8_t* data, size_t size);

}  // namespace mgreg::fuzz

// An invariant of the code under test; aborts (a finding) when it does not hold.
#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

#endif  // MGREG_FUZZ_FUZZ_TARGET_H_
