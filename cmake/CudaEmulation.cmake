# Builds the CUDA kernels in native/cuda/*.cu with the host compiler against the CPU emulation header
# (native/cuda/emulation/cuda_cpu_emulation.h) and registers one ctest per test name. The test names contain
# "cuda", so `ctest -R cuda` runs exactly the emulated CUDA kernels.
find_package(Threads REQUIRED)

function(engine_add_cuda_emulated_tests executable source)
  cmake_parse_arguments(ARG "" "" "TESTS;LINK" ${ARGN})
  add_executable(${executable} ${source})
  target_include_directories(${executable} PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/cuda ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emulation ${CMAKE_CURRENT_SOURCE_DIR}/tests)
  target_compile_features(${executable} PRIVATE cxx_std_20)
  # The .cu files are included as C++; rebuild the tests when a kernel changes.
  file(GLOB kernel_sources ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cu)
  set_source_files_properties(${source} PROPERTIES OBJECT_DEPENDS "${kernel_sources}")
  target_link_libraries(${executable} PRIVATE Threads::Threads ${ARG_LINK})
  foreach(test_name IN LISTS ARG_TESTS)
    add_test(NAME ${test_name} COMMAND ${executable} ${test_name})
    set_tests_properties(${test_name} PROPERTIES TIMEOUT 300 LABELS cuda)
  endforeach()
endfunction()
