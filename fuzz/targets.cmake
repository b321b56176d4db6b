# The fuzz targets and the libraries each links; included by fuzz/CMakeLists.txt (the
# libFuzzer binaries) and tests/fuzz/CMakeLists.txt (the regression drivers of the normal
# build). fuzz/<name>.cc defines mgreg::fuzz::FuzzOne.
set(MGREG_FUZZ_TARGETS
  export_fuzzer
  metagraph_text_fuzzer
  bundle_index_fuzzer
  checkpoint_state_fuzzer
  checkpoint_name_fuzzer
  upload_fuzzer)
set(MGREG_FUZZ_LIBS_export_fuzzer mgreg::metagraph)
set(MGREG_FUZZ_LIBS_metagraph_text_fuzzer mgreg::metagraph)
set(MGREG_FUZZ_LIBS_bundle_index_fuzzer mgreg::metagraph)
set(MGREG_FUZZ_LIBS_checkpoint_state_fuzzer mgreg::metagraph)
set(MGREG_FUZZ_LIBS_checkpoint_name_fuzzer mgreg::metagraph mgreg::common)
set(MGREG_FUZZ_LIBS_upload_fuzzer mgreg::server_core mgreg::storage leveldb::leveldb)
