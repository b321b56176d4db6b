# Layering checks: a layer that must stay transport-free says so here, and the build
# enforces it.
#
# mgreg_forbid_link(TARGET PATTERN WHY): at the end of configuration, walks everything
# TARGET links (PUBLIC, PRIVATE and INTERFACE, through aliases and $<LINK_ONLY:...>) and
# fails configuration if a library whose name matches PATTERN (lower case) is reached,
# printing the chain that reaches it.
#
# mgreg_forbid_includes(TARGET DIR REGEX WHY): before TARGET compiles, scans every .h and
# .cc under DIR and fails the build if a line matches REGEX (cmake/check_includes.cmake).
function(mgreg_forbid_link target pattern why)
  # A deferred call reads its arguments when it runs: bake the values in now.
  cmake_language(EVAL CODE "cmake_language(DEFER DIRECTORY [[${PROJECT_SOURCE_DIR}]]
    CALL _mgreg_check_links [[${target}]] [[${pattern}]] [[${why}]])")
endfunction()

function(_mgreg_check_links target pattern why)
  set(queue "${target}")
  set(seen "")
  set(_parent_${target} "")
  while(queue)
    list(POP_FRONT queue t)
    if(t IN_LIST seen)
      continue()
    endif()
    list(APPEND seen "${t}")
    string(TOLOWER "${t}" t_lower)
    if(t_lower MATCHES "${pattern}")
      set(chain "${t}")
      set(p "${_parent_${t}}")
      while(p)
        set(chain "${p} -> ${chain}")
        set(p "${_parent_${p}}")
      endwhile()
      message(FATAL_ERROR "${target} must not link '${pattern}': ${why}\n"
                          "It reaches ${t} through: ${chain}")
    endif()
    if(NOT TARGET "${t}")
      continue()
    endif()
    set(deps "")
    get_target_property(aliased "${t}" ALIASED_TARGET)
    if(aliased)
      list(APPEND deps "${aliased}")
    else()
      foreach(prop LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
        get_target_property(libs "${t}" ${prop})
        if(libs)
          list(APPEND deps ${libs})
        endif()
      endforeach()
    endif()
    foreach(d IN LISTS deps)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" d "${d}")
      if(NOT d OR d IN_LIST seen)
        continue()
      endif()
      if(NOT DEFINED _parent_${d})
        set(_parent_${d} "${t}")
      endif()
      list(APPEND queue "${d}")
    endforeach()
  endwhile()
endfunction()

function(mgreg_forbid_includes target dir regex why)
  file(GLOB_RECURSE files CONFIGURE_DEPENDS "${dir}/*.h" "${dir}/*.cc")
  set(stamp "${CMAKE_CURRENT_BINARY_DIR}/${target}_includes.stamp")
  add_custom_command(
    OUTPUT "${stamp}"
    COMMAND "${CMAKE_COMMAND}" "-DMGREG_DIR=${dir}" "-DMGREG_REGEX=${regex}"
            "-DMGREG_WHY=${why}" -P "${PROJECT_SOURCE_DIR}/cmake/check_includes.cmake"
    COMMAND "${CMAKE_COMMAND}" -E touch "${stamp}"
    DEPENDS ${files} "${PROJECT_SOURCE_DIR}/cmake/check_includes.cmake"
    COMMENT "Checking the includes of ${dir}"
    VERBATIM)
  add_custom_target(${target}_includes DEPENDS "${stamp}")
  add_dependencies(${target} ${target}_includes)
endfunction()
