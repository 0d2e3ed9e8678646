# Data parallelism: communicators (single, gloo, NCCL), the data-parallel loop, `--nproc` and faults.
prefengine_add_test(NAME dist_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/dist_test.cpp LIBRARIES prefengine)
target_compile_definitions(dist_test PRIVATE
  PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>"
  PREFENGINE_EXPECT_NCCL=$<BOOL:${PREFENGINE_NCCL_FOUND}>)
add_dependencies(dist_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_dpo)
