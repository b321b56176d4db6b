# Compiler warnings for mgreg's own code: -Wall -Wextra, and -Werror unless
# -DMGREG_WERROR=OFF (a newer compiler than GCC 12 or clang 14 may warn about code these
# accept; turn it off there and report the warning).
#
# Applied in one place, at the end of configuration, to every target this project builds
# from its sources (libraries, programs, tests and their helpers, benches, fuzz targets),
# found by walking the directories, so a new target gets them without asking. Not to the
# code protoc generates (MGREG_WARNINGS_EXCLUDE); third-party headers (gRPC, protobuf,
# RocksDB, abseil, GoogleTest) come from system include directories, where compilers do
# not warn.
option(MGREG_WERROR "Treat compiler warnings in mgreg's own code as errors" ON)
set(MGREG_WARNING_FLAGS -Wall -Wextra)
if(MGREG_WERROR)
  list(APPEND MGREG_WARNING_FLAGS -Werror)
endif()
# GCC 12's -Wtsan fires in third-party headers under -fsanitize=thread (abseil's flags use
# std::atomic_thread_fence, which TSan does not model); it says nothing about our code, and
# with -Werror it would stop the TSan build (scripts/sanitize.sh thread). Only TSan builds
# get -Wno-tsan, so the flags (and ccache entries) of every other build stay as they are.
if(MGREG_SANITIZE STREQUAL "thread")
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag(-Wtsan MGREG_HAVE_WTSAN)
  if(MGREG_HAVE_WTSAN)
    list(APPEND MGREG_WARNING_FLAGS -Wno-tsan)
  endif()
endif()
set(MGREG_WARNINGS_EXCLUDE mgreg_proto mgreg_proto_grpc)

function(_mgreg_apply_warnings dir)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type "${t}" TYPE)
    if(type MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY|EXECUTABLE)$"
       AND NOT t IN_LIST MGREG_WARNINGS_EXCLUDE)
      target_compile_options("${t}" PRIVATE ${MGREG_WARNING_FLAGS})
    endif()
  endforeach()
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _mgreg_apply_warnings("${sub}")
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${PROJECT_SOURCE_DIR}"
               CALL _mgreg_apply_warnings "${PROJECT_SOURCE_DIR}")
