# CUDA is optional: AUTO builds it when nvcc is found, ON requires it, OFF skips it. The CPU build never needs a GPU.
set(WATTMOE_WITH_CUDA OFF)
if(NOT WATTMOE_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(WATTMOE_WITH_CUDA ON)
  elseif(WATTMOE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "WATTMOE_CUDA=ON but no CUDA compiler was found (install the CUDA toolkit or use -DWATTMOE_CUDA=OFF)")
  endif()
endif()

# Kernels in .cu; host code in .cpp (compiled by the C++ compiler: nvcc rejects fmt 9's consteval format strings).
file(GLOB WATTMOE_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/ops/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/ops/cuda/*.cpp)
if(WATTMOE_WITH_CUDA AND NOT WATTMOE_CUDA_SOURCES)
  message(STATUS "wattmoe: CUDA found, but no CUDA sources yet; building CPU only")
  set(WATTMOE_WITH_CUDA OFF)
endif()
if(WATTMOE_WITH_CUDA)
  enable_language(CUDA)
  # CMake 3.25 knows no nvcc flag for C++20 (CUDA_STANDARD 20 then fails to generate); nvcc 12+ takes -std=c++20.
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION OR CMAKE_CUDA20_STANDARD_COMPILE_OPTION STREQUAL "")
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  find_package(CUDAToolkit REQUIRED)
  # Hopper (sm_90a) SASS plus portable PTX for anything newer.
  set(CMAKE_CUDA_ARCHITECTURES OFF)
  add_library(wattmoe_cuda STATIC ${WATTMOE_CUDA_SOURCES})
  target_include_directories(wattmoe_cuda PUBLIC ${CMAKE_SOURCE_DIR}/src)
  target_compile_options(wattmoe_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:
    -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=compute_90 --expt-relaxed-constexpr -lineinfo>)
  # NVTX3 is header-only (it dlopens the tool's injection library, hence the dl libraries).
  target_link_libraries(wattmoe_cuda PUBLIC CUDA::cudart CUDA::cublas CUDA::cublasLt fmt::fmt ${CMAKE_DL_LIBS})
  target_compile_definitions(wattmoe_cuda PUBLIC WATTMOE_WITH_CUDA=1)
  set_target_properties(wattmoe_cuda PROPERTIES CUDA_STANDARD 20 CUDA_SEPARABLE_COMPILATION OFF)
endif()
message(STATUS "wattmoe: CUDA backend ${WATTMOE_WITH_CUDA}")
