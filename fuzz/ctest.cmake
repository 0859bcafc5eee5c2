# libFuzzer in `make test` (included by tests/CMakeLists.txt): every fuzz target runs 30 s
# over its committed seed corpus (fuzz/corpus/NAME) with ASan+UBSan. The targets need clang:
# in an NS_FUZZ (clang) build they are this build's own; otherwise the test fuzz_build
# configures and builds them with clang in <build>/fuzz-clang (once; later runs are
# incremental). docs/reliability.md.
if(NS_FUZZ)
  set(NS_FUZZ_BIN ${CMAKE_BINARY_DIR})
else()
  set(NS_FUZZ_BIN ${CMAKE_BINARY_DIR}/fuzz-clang)
endif()
add_test(NAME fuzz_build COMMAND bash ${CMAKE_SOURCE_DIR}/fuzz/smoke.sh build ${CMAKE_SOURCE_DIR} ${NS_FUZZ_BIN})
set_tests_properties(fuzz_build PROPERTIES FIXTURES_SETUP ns_fuzzers TIMEOUT 900)
file(GLOB NS_FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/*_fuzz.cc)
foreach(src ${NS_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "_fuzz$" "" name ${name})
  add_test(NAME fuzz_${name} COMMAND bash ${CMAKE_SOURCE_DIR}/fuzz/smoke.sh run ${CMAKE_SOURCE_DIR} ${NS_FUZZ_BIN} ${name} 30)
  set_tests_properties(fuzz_${name} PROPERTIES FIXTURES_REQUIRED ns_fuzzers TIMEOUT 300)
endforeach()
