# Sanitizer and fuzzing switches. ASan and UBSan combine; TSan stands alone.
if(BW_TSAN AND (BW_ASAN OR BW_UBSAN))
  message(FATAL_ERROR "BW_TSAN cannot be combined with BW_ASAN or BW_UBSAN")
endif()

set(BW_SAN_FLAGS "")
if(BW_ASAN)
  list(APPEND BW_SAN_FLAGS -fsanitize=address)
endif()
if(BW_UBSAN)
  list(APPEND BW_SAN_FLAGS -fsanitize=undefined -fno-sanitize-recover=all)
endif()
if(BW_TSAN)
  list(APPEND BW_SAN_FLAGS -fsanitize=thread)
endif()
if(BW_SAN_FLAGS)
  add_compile_options(${BW_SAN_FLAGS} -fno-omit-frame-pointer)
  add_link_options(${BW_SAN_FLAGS})
endif()

if(BW_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "BW_FUZZ needs clang: cmake -DCMAKE_C_COMPILER=clang -DBW_FUZZ=ON")
  endif()
  # Every library is instrumented for coverage; only fuzz drivers link the
  # libFuzzer main (see tests/fuzz/CMakeLists.txt).
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
