# `cmake --install`: mgreg-server, mgreg (their own install rules), and the C++ client
# library as an exported CMake package, so another project can write
#   find_package(mgreg CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE mgreg::client)
# The client is a static library: the libraries it links (proto, proto_grpc, common,
# metagraph) are installed and exported with it; mgreg-config.cmake finds their
# dependencies.
include(CMakePackageConfigHelpers)

set(MGREG_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/mgreg")

set_target_properties(mgreg_client PROPERTIES EXPORT_NAME client)
set_target_properties(mgreg_proto PROPERTIES EXPORT_NAME proto)
set_target_properties(mgreg_proto_grpc PROPERTIES EXPORT_NAME proto_grpc)
set_target_properties(mgreg_common PROPERTIES EXPORT_NAME common)
set_target_properties(mgreg_metagraph PROPERTIES EXPORT_NAME metagraph)
set_target_properties(mgreg_metagraph_checkpoint PROPERTIES EXPORT_NAME metagraph_checkpoint)
set_target_properties(mgreg_metagraph_export PROPERTIES EXPORT_NAME metagraph_export)

install(TARGETS mgreg_client mgreg_proto mgreg_proto_grpc mgreg_common mgreg_metagraph
                mgreg_metagraph_checkpoint mgreg_metagraph_export
        EXPORT mgregTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mgreg)

# Headers: the client API as "client/client.h", the generated messages it uses as
# "mgreg/v1/registry.pb.h" (under include/mgreg/proto, so our wire-compatible
# tensorflow/*.pb.h never shadow a real TensorFlow installation).
install(FILES "${PROJECT_SOURCE_DIR}/client/client.h"
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mgreg/client)
install(DIRECTORY "${PROJECT_BINARY_DIR}/proto/gen/"
                  "${PROJECT_BINARY_DIR}/proto/gen_grpc/"
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mgreg/proto
        FILES_MATCHING PATTERN "*.pb.h")

install(EXPORT mgregTargets NAMESPACE mgreg:: FILE mgreg-targets.cmake
        DESTINATION ${MGREG_CMAKE_INSTALL_DIR})
configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/mgreg-config.cmake.in"
  "${PROJECT_BINARY_DIR}/mgreg-config.cmake"
  INSTALL_DESTINATION ${MGREG_CMAKE_INSTALL_DIR})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/mgreg-config-version.cmake"
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/mgreg-config.cmake"
              "${PROJECT_BINARY_DIR}/mgreg-config-version.cmake"
        DESTINATION ${MGREG_CMAKE_INSTALL_DIR})
