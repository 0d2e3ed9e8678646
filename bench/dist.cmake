# Data-parallel scaling: steps/s of 1 and 2 gloo ranks on a toy_mlp large enough for compute to
# dominate. Run: build/bench/dist_bench [hidden] [layers] [batch] [steps] [repeats]  (from the source tree).
add_executable(dist_bench ${CMAKE_CURRENT_LIST_DIR}/dist_bench.cpp)
target_compile_options(dist_bench PRIVATE ${PREFENGINE_WARNINGS})
target_link_libraries(dist_bench PRIVATE nlohmann_json::nlohmann_json)
target_compile_definitions(dist_bench PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
set_target_properties(dist_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
add_dependencies(dist_bench prefengine_cli prefengine_plugin_toy_mlp)

# On a GPU host: one rank all-reduces a device buffer through the NCCL backend and checks the sum.
if(PREFENGINE_NCCL_FOUND)
  add_executable(nccl_smoke ${CMAKE_CURRENT_LIST_DIR}/nccl_smoke.cpp)
  target_link_libraries(nccl_smoke PRIVATE prefengine prefengine::nccl)
  target_compile_options(nccl_smoke PRIVATE ${PREFENGINE_WARNINGS})
  set_target_properties(nccl_smoke PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
endif()
