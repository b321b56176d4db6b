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
