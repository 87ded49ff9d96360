# The Python package's native module (python/, nanobind): WATTMOE_PYTHON=AUTO builds it when the Python interpreter
# CMake finds (-DPython_EXECUTABLE=..., e.g. the virtualenv scripts/python_env.sh makes) has nanobind; ON requires
# it; OFF never. Never in the sanitizer build (a Python interpreter does not load ASan-instrumented modules unless
# preloaded). When scikit-build-core drives the build (`pip install .`, SKBUILD defined) it is always on.
# Sets WATTMOE_WITH_PYTHON (python/CMakeLists.txt makes the engine's static libraries position-independent: they go
# into a shared module).
set(WATTMOE_PYTHON AUTO CACHE STRING "Build the Python module: AUTO (if nanobind is found), ON, OFF")
set_property(CACHE WATTMOE_PYTHON PROPERTY STRINGS AUTO ON OFF)
set(WATTMOE_WITH_PYTHON OFF)
if(SKBUILD)
  set(WATTMOE_PYTHON ON)
endif()
if(WATTMOE_PYTHON STREQUAL "ON" AND WATTMOE_SANITIZE)
  message(FATAL_ERROR "WATTMOE_PYTHON=ON does not go with WATTMOE_SANITIZE=ON (the sanitizer build has no Python module)")
endif()
if(NOT WATTMOE_PYTHON STREQUAL "OFF" AND NOT WATTMOE_SANITIZE)
  set(_required "")
  if(WATTMOE_PYTHON STREQUAL "ON")
    set(_required REQUIRED)
  endif()
  find_package(Python 3.9 COMPONENTS Interpreter Development.Module ${_required})
  if(Python_FOUND)
    execute_process(COMMAND "${Python_EXECUTABLE}" -m nanobind --cmake_dir
      OUTPUT_VARIABLE _nb_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _nb_rc ERROR_QUIET)
    if(_nb_rc EQUAL 0)
      list(APPEND CMAKE_PREFIX_PATH "${_nb_dir}")
    endif()
    find_package(nanobind CONFIG ${_required})
  endif()
  if(Python_FOUND AND nanobind_FOUND)
    set(WATTMOE_WITH_PYTHON ON)
    message(STATUS "wattmoe: Python module for ${Python_EXECUTABLE} (nanobind ${nanobind_VERSION})")
  else()
    message(STATUS "wattmoe: no Python module (no nanobind for ${Python_EXECUTABLE}; scripts/python_env.sh makes one)")
  endif()
endif()
