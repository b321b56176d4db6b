# Finds every external dependency once and exposes it as an imported target.
# Debian ships gRPC and protobuf with pkg-config files only (their CMake configs are
# incomplete), so those come from pkg-config; the rest have working CMake configs.
find_package(PkgConfig REQUIRED)
pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++>=1.51)
pkg_check_modules(PROTOBUF REQUIRED IMPORTED_TARGET protobuf>=3.21)
pkg_check_modules(ISAL REQUIRED IMPORTED_TARGET libisal)

# Server reflection ships in libgrpc++_reflection without a pkg-config file of its own.
find_library(MGREG_GRPCPP_REFLECTION_LIBRARY grpc++_reflection REQUIRED)
if(NOT TARGET mgreg_grpcpp_reflection)
  add_library(mgreg_grpcpp_reflection INTERFACE IMPORTED GLOBAL)
  target_link_libraries(mgreg_grpcpp_reflection INTERFACE
    "${MGREG_GRPCPP_REFLECTION_LIBRARY}" PkgConfig::GRPCPP)
endif()

find_program(MGREG_PROTOC protoc REQUIRED)
find_program(MGREG_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

find_package(absl CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(leveldb CONFIG REQUIRED)
find_package(Snappy CONFIG REQUIRED)
find_package(Threads REQUIRED)

# civetweb's CMake config needs the civetweb binary package; plain library lookup is
# enough and does not depend on it.
find_path(CIVETWEB_INCLUDE_DIR civetweb.h REQUIRED)
find_library(CIVETWEB_LIBRARY civetweb REQUIRED)
if(NOT TARGET mgreg_civetweb)
  add_library(mgreg_civetweb INTERFACE IMPORTED GLOBAL)
  target_include_directories(mgreg_civetweb INTERFACE "${CIVETWEB_INCLUDE_DIR}")
  target_link_libraries(mgreg_civetweb INTERFACE "${CIVETWEB_LIBRARY}" Threads::Threads)
endif()

# Ceph RADOS (the `rados` store, issue 14): librados.hpp is only in libradospp-dev and
# librados-dev ships no pkg-config file, so a plain header + library lookup. On by default
# when both are found; -DMGREG_WITH_RADOS=ON on a machine without them is an error.
find_path(MGREG_RADOS_INCLUDE_DIR rados/librados.hpp)
find_library(MGREG_RADOS_LIBRARY rados)
if(MGREG_RADOS_INCLUDE_DIR AND MGREG_RADOS_LIBRARY)
  set(MGREG_RADOS_FOUND ON)
else()
  set(MGREG_RADOS_FOUND OFF)
endif()
option(MGREG_WITH_RADOS "Build the Ceph RADOS store (needs librados-dev, libradospp-dev)"
       ${MGREG_RADOS_FOUND})
if(MGREG_WITH_RADOS)
  if(NOT MGREG_RADOS_FOUND)
    message(FATAL_ERROR "MGREG_WITH_RADOS is ON but rados/librados.hpp or librados was not "
                        "found: run scripts/install-deps.sh rados, or configure with "
                        "-DMGREG_WITH_RADOS=OFF")
  endif()
  if(NOT TARGET mgreg_rados)
    add_library(mgreg_rados INTERFACE IMPORTED GLOBAL)
    target_include_directories(mgreg_rados INTERFACE "${MGREG_RADOS_INCLUDE_DIR}")
    target_link_libraries(mgreg_rados INTERFACE "${MGREG_RADOS_LIBRARY}")
  endif()
  message(STATUS "mgreg: RADOS store enabled (${MGREG_RADOS_LIBRARY})")
else()
  message(STATUS "mgreg: RADOS store disabled (MGREG_WITH_RADOS=OFF)")
endif()
