# CUDA detection. TESSERA_CUDA=AUTO builds the CUDA backends when nvcc is found (CUDA 13 lives in
# /usr/local/cuda on the GPU machines), ON requires it, OFF never looks. Without CUDA everything
# builds with the CPU kernels, and TESSERA_HAVE_CUDA is 0.
set(TESSERA_HAVE_CUDA OFF)
if(NOT TESSERA_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    find_package(CUDAToolkit)
  endif()
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND)
    # NCCL ships beside the toolkit on the GPU machines; without it there is no CUDA backend.
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  endif()
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND NCCL_LIBRARY AND NCCL_INCLUDE_DIR)
    set(TESSERA_HAVE_CUDA ON)
  elseif(TESSERA_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TESSERA_CUDA=ON but no CUDA toolkit (nvcc) with NCCL was found")
  endif()
endif()
if(TESSERA_HAVE_CUDA)
  # A100 and H100/H200 natively, plus PTX for anything newer.
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80-real 90-real 90-virtual)
  endif()
  if(CCACHE_PROGRAM)
    set(CMAKE_CUDA_COMPILER_LAUNCHER "${CCACHE_PROGRAM}")
  endif()
  enable_language(CUDA)
  # Debian's packages export /usr/include as an include directory; passed to nvcc as -isystem it
  # breaks the C++ library's #include_next <math.h>. It is searched anyway: treat it as implicit.
  list(APPEND CMAKE_CUDA_IMPLICIT_INCLUDE_DIRECTORIES /usr/include)
endif()
message(STATUS "Tessera CUDA backends: ${TESSERA_HAVE_CUDA}")
