# Adds the per-ISA translation units of the CPU row kernels to TARGET, each compiled with its own instruction-set
# flags; the dispatcher (ENGINE_HAVE_* definitions) picks one at run time with __builtin_cpu_supports, so the
# library runs on any x86-64 CPU and uses AVX-512 or AVX2 where present. On other targets (ARM, ...) only the
# scalar kernels are built. Sets ENGINE_NATIVE_X86 in the caller's scope.
include(CheckCXXCompilerFlag)

# Builds an x86 target exactly as a non-x86 one: no ISA file, no x86 CPU-feature check (ENGINE_NO_X86 in
# src/dispatch.cpp). The check of the scalar-only path where no cross compiler is installed; the real one is the
# aarch64 cross build (cmake/toolchains/aarch64-linux-gnu.cmake), run by ./build.sh test.
option(ENGINE_SCALAR_ONLY "Compile as for a non-x86 target: scalar kernels only" OFF)

function(engine_add_isa_sources target src_dir)
  set(is_x86 OFF)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$" AND NOT ENGINE_SCALAR_ONLY)
    set(is_x86 ON)
  endif()
  if(ENGINE_SCALAR_ONLY)
    target_compile_definitions(${target} PRIVATE ENGINE_NO_X86=1)
  endif()
  set(ENGINE_NATIVE_X86 ${is_x86} PARENT_SCOPE)
  if(NOT is_x86)
    message(STATUS "engine_native: scalar kernels only (target ${CMAKE_SYSTEM_PROCESSOR})")
    return()
  endif()

  set(avx2_flags -mavx2 -mfma)
  # GCC 12 warns falsely inside its own _mm512_reduce_* intrinsics.
  set(avx512_flags -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -Wno-maybe-uninitialized -Wno-uninitialized)
  check_cxx_compiler_flag("-mavx2 -mfma" ENGINE_COMPILER_AVX2)
  check_cxx_compiler_flag("-mavx512f -mavx512bw -mavx512dq -mavx512vl" ENGINE_COMPILER_AVX512)

  if(ENGINE_COMPILER_AVX2)
    target_sources(${target} PRIVATE ${src_dir}/isa_avx2.cpp)
    set_source_files_properties(${src_dir}/isa_avx2.cpp PROPERTIES COMPILE_OPTIONS "${avx2_flags}")
    target_compile_definitions(${target} PRIVATE ENGINE_HAVE_AVX2=1)
    message(STATUS "engine_native: AVX2 kernels")
  endif()
  if(ENGINE_COMPILER_AVX512)
    target_sources(${target} PRIVATE ${src_dir}/isa_avx512.cpp)
    set_source_files_properties(${src_dir}/isa_avx512.cpp PROPERTIES COMPILE_OPTIONS "${avx512_flags}")
    target_compile_definitions(${target} PRIVATE ENGINE_HAVE_AVX512=1)
    message(STATUS "engine_native: AVX-512 kernels")
  endif()
endfunction()
