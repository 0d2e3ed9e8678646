# Crash- and disk-full-safe writes: durable files, checkpoint checksums, the resume fallback, and
# runs under an LD_PRELOAD shim that fails the k-th write/fsync/rename (tests/faults/fail_io.cpp).
if(TARGET prefengine AND TARGET prefengine_cli)
  add_library(prefengine_test_fail_io SHARED ${CMAKE_CURRENT_LIST_DIR}/faults/fail_io.cpp)
  target_compile_options(prefengine_test_fail_io PRIVATE ${PREFENGINE_WARNINGS})
  target_link_libraries(prefengine_test_fail_io PRIVATE ${CMAKE_DL_LIBS})
  set_target_properties(prefengine_test_fail_io PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test_faults)
  prefengine_add_test(NAME reliability_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/reliability_test.cpp
    LIBRARIES prefengine)
  target_compile_definitions(reliability_test PRIVATE
    PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>"
    PREFENGINE_FAIL_IO="$<TARGET_FILE:prefengine_test_fail_io>")
  add_dependencies(reliability_test prefengine_cli prefengine_test_fail_io prefengine_plugin_dpo prefengine_plugin_sft
                   prefengine_plugin_toy_mlp)
endif()
# A real full disk (a small tmpfs in a private mount namespace); SKIP where unshare/mount are not allowed.
if(TARGET prefengine_cli)
  add_test(NAME reliability_tmpfs_full
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/tmpfs_full_test.sh $<TARGET_FILE:prefengine_cli> ${PROJECT_SOURCE_DIR})
  set_tests_properties(reliability_tmpfs_full PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
