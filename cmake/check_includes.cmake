# cmake -DMGREG_DIR=DIR -DMGREG_REGEX=REGEX -DMGREG_WHY=TEXT -P check_includes.cmake
# Fails, naming each file and line, if a .h or .cc under DIR has a line matching REGEX.
# Used by mgreg_forbid_includes (cmake/MgregLayering.cmake).
file(GLOB_RECURSE files "${MGREG_DIR}/*.h" "${MGREG_DIR}/*.cc")
set(found "")
foreach(f IN LISTS files)
  file(STRINGS "${f}" lines REGEX "${MGREG_REGEX}")
  foreach(line IN LISTS lines)
    string(APPEND found "\n  ${f}: ${line}")
  endforeach()
endforeach()
if(found)
  message(FATAL_ERROR "${MGREG_WHY}${found}")
endif()
