# The version of wattmoe and the git commit it is built from, for `wattmoe --version`: writes
# ${CMAKE_BINARY_DIR}/generated/wattmoe_version.h (WATTMOE_VERSION, WATTMOE_GIT_COMMIT). The commit is
# `git describe --always --dirty` at configure time ("unknown" outside a git checkout or without git); a commit or
# checkout re-runs the configure step (the git directory's logs/HEAD is a configure dependency), an edit alone does not.
find_package(Git QUIET)
set(WATTMOE_GIT_COMMIT "unknown")
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} OUTPUT_VARIABLE _describe RESULT_VARIABLE _rc
    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --absolute-git-dir
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} OUTPUT_VARIABLE _git_dir RESULT_VARIABLE _rc_dir
    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_rc EQUAL 0 AND NOT _describe STREQUAL "")
    set(WATTMOE_GIT_COMMIT "${_describe}")
  endif()
  if(_rc_dir EQUAL 0 AND EXISTS "${_git_dir}/logs/HEAD")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_git_dir}/logs/HEAD")
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/wattmoe_version.h.in ${CMAKE_BINARY_DIR}/generated/wattmoe_version.h @ONLY)
