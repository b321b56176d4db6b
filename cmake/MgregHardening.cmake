# Sanitizer and fuzzing builds. Both add their flags to every target defined after this
# file is included (add_compile_options / add_link_options), so the project's libraries,
# tests and fuzz targets are instrumented alike; system libraries (gRPC, RocksDB, abseil,
# protobuf) are not.
#
#   -DMGREG_SANITIZE=address,undefined   ASan + UBSan (GCC or clang); scripts/sanitize.sh
#   -DMGREG_SANITIZE=thread              TSan; scripts/sanitize.sh thread
#   -DMGREG_FUZZ=ON                      libFuzzer targets in fuzz/ (clang only), everything
#                                        built with -fsanitize=fuzzer-no-link,address,undefined;
#                                        scripts/fuzz.sh
#   both (clang): one ASan + UBSan tree that also builds the libFuzzer targets, so CI's asan
#   and fuzz stages share one build (scripts/sanitize.sh address; UBSan stays recoverable
#   for the suppressions file, and halt_on_error=1 at run time makes every report fatal).
set(MGREG_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined or thread")
set_property(CACHE MGREG_SANITIZE PROPERTY STRINGS "" "address,undefined" "thread")
option(MGREG_FUZZ "Build the libFuzzer targets in fuzz/ (clang)" OFF)

if(MGREG_FUZZ AND MGREG_SANITIZE AND NOT (MGREG_SANITIZE STREQUAL "address,undefined" OR
                                          MGREG_SANITIZE STREQUAL "undefined,address"))
  message(FATAL_ERROR "MGREG_FUZZ builds with address,undefined; it cannot be combined with MGREG_SANITIZE=${MGREG_SANITIZE}")
endif()

set(_mgreg_san_flags "")
if(MGREG_SANITIZE STREQUAL "address,undefined" OR MGREG_SANITIZE STREQUAL "undefined,address")
  # UBSan errors are recoverable so a suppressions file can apply; scripts/sanitize.sh sets
  # UBSAN_OPTIONS=halt_on_error=1 so every report fails the test.
  set(_mgreg_san_flags -fsanitize=address,undefined -fno-omit-frame-pointer)
  if(MGREG_FUZZ)
    # Coverage for libFuzzer on every library; the tests link without libFuzzer (the
    # ASan runtime provides the coverage callbacks' defaults).
    set(_mgreg_san_compile_extra -fsanitize=fuzzer-no-link)
  endif()
elseif(MGREG_SANITIZE STREQUAL "thread")
  set(_mgreg_san_flags -fsanitize=thread)
elseif(MGREG_SANITIZE)
  message(FATAL_ERROR "MGREG_SANITIZE must be 'address,undefined' or 'thread', not '${MGREG_SANITIZE}'")
endif()
if(_mgreg_san_flags)
  # -g1: line tables for the reports, without full debug info (build time, link time).
  add_compile_options(${_mgreg_san_flags} ${_mgreg_san_compile_extra} -O1 -g1)
  add_link_options(${_mgreg_san_flags})
endif()
# The flags a program linking the installed (instrumented) libraries needs, for
# tests/e2e's packaging test; empty in a normal build.
string(REPLACE ";" " " MGREG_SANITIZER_LINK_FLAGS "${_mgreg_san_flags}")
if(MGREG_SANITIZE STREQUAL "thread")
  # Debian's abseil is not TSan-instrumented: this shared library interposes absl::Mutex,
  # CondVar and Notification and reports their happens-before edges to TSan (see the
  # file). Its definitions win only if the dynamic linker meets it before
  # libabsl_synchronization, i.e. its DT_NEEDED entry comes first in the executable.
  # link_libraries() alone does not ensure that: every static library of ours carries it
  # too, and CMake's link ordering puts a shared library after all the libraries that
  # depend on it, which after the test-tree move (039a93b: tests link mgreg_testing)
  # was after libabsl_synchronization in 26 executables (rocksdb_space_test,
  # fault_injection_test, watch_hub_test, ...): the shim never ran there and TSan
  # reported accesses under absl::Mutex as races. So every executable names it first,
  # as a link option (options precede the objects and libraries on the link line);
  # link_libraries() stays for the build dependency and the rpath. The library checks
  # at load time that it won (tsan_absl_annotations.cc) and aborts otherwise.
  add_library(mgreg_tsan_absl SHARED ${CMAKE_CURRENT_LIST_DIR}/tsan_absl_annotations.cc)
  target_link_libraries(mgreg_tsan_absl PRIVATE absl::synchronization ${CMAKE_DL_LIBS})
  link_libraries("$<BUILD_INTERFACE:mgreg_tsan_absl>")
  add_link_options(
    "$<$<STREQUAL:$<TARGET_PROPERTY:TYPE>,EXECUTABLE>:$<TARGET_FILE:mgreg_tsan_absl>>")
endif()

if(MGREG_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MGREG_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++), not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  # Libraries get coverage instrumentation without libFuzzer's main; the fuzz targets add
  # -fsanitize=fuzzer at link time (fuzz/CMakeLists.txt). UBSan aborts so libFuzzer sees it.
  if(NOT MGREG_SANITIZE)
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                        -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g)
    add_link_options(-fsanitize=address,undefined)
    set(MGREG_SANITIZER_LINK_FLAGS "-fsanitize=address,undefined")
  endif()
endif()
