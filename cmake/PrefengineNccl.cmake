# The NCCL backend: built whenever nccl.h, libnccl, cuda_runtime.h and libcudart are found (in
# NCCL_ROOT, CUDAToolkit_ROOT, $CUDA_HOME or /usr/local/cuda). Sets PREFENGINE_NCCL_FOUND and, when
# found, the imported target prefengine::nccl (NCCL + the CUDA runtime, headers included).
option(PREFENGINE_WITH_NCCL "Build the NCCL backend when CUDA and NCCL are found" ON)
set(PREFENGINE_NCCL_FOUND OFF CACHE INTERNAL "")
if(PREFENGINE_WITH_NCCL)
  set(_nccl_hints ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_ROOT} $ENV{CUDA_HOME} /usr/local/cuda)
  find_path(PREFENGINE_NCCL_INCLUDE_DIR nccl.h HINTS ${_nccl_hints} PATH_SUFFIXES include)
  find_library(PREFENGINE_NCCL_LIBRARY nccl HINTS ${_nccl_hints} PATH_SUFFIXES lib64 lib)
  find_path(PREFENGINE_CUDART_INCLUDE_DIR cuda_runtime.h HINTS ${_nccl_hints} PATH_SUFFIXES include)
  find_library(PREFENGINE_CUDART_LIBRARY cudart HINTS ${_nccl_hints} PATH_SUFFIXES lib64 lib)
  if(PREFENGINE_NCCL_INCLUDE_DIR AND PREFENGINE_NCCL_LIBRARY AND PREFENGINE_CUDART_INCLUDE_DIR
     AND PREFENGINE_CUDART_LIBRARY)
    # cached: tests/ and bench/ ask too
    set(PREFENGINE_NCCL_FOUND ON CACHE INTERNAL "")
    if(NOT TARGET prefengine::nccl)
      add_library(prefengine::nccl INTERFACE IMPORTED GLOBAL)
      # imported: its include directories are -isystem, CUDA's warnings are not ours
      set_target_properties(prefengine::nccl PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${PREFENGINE_NCCL_INCLUDE_DIR};${PREFENGINE_CUDART_INCLUDE_DIR}"
        INTERFACE_LINK_LIBRARIES "${PREFENGINE_NCCL_LIBRARY};${PREFENGINE_CUDART_LIBRARY}")
    endif()
    message(STATUS "prefengine: NCCL backend ON (${PREFENGINE_NCCL_LIBRARY}, ${PREFENGINE_CUDART_LIBRARY})")
  else()
    message(STATUS "prefengine: NCCL backend OFF (nccl.h/libnccl/cuda_runtime.h/libcudart not all found)")
  endif()
endif()
