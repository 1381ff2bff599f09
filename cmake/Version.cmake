# Writes build/include/bw_version.h: the release, the git commit the tree was
# built from (or "unknown" outside a checkout) and the library versions found.
find_package(Git QUIET)
set(BW_GIT_COMMIT "unknown")
if(GIT_FOUND AND EXISTS ${CMAKE_SOURCE_DIR}/.git)
  execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty --abbrev=12
                  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                  OUTPUT_VARIABLE BW_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET)
  if(NOT BW_GIT_COMMIT)
    set(BW_GIT_COMMIT "unknown")
  endif()
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/bw_version.h.in
               ${CMAKE_BINARY_DIR}/include/bw_version.h @ONLY)
