# Inputs at the edges (issue 13, category 4) through the executable: one-line errors without
# LibTorch's backtrace, generate's memory bound, what validate finds before run.
if(TARGET prefengine_cli)
  prefengine_add_test(NAME inputs_edges_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/inputs_edges_test.cpp)
  target_link_libraries(inputs_edges_test PRIVATE Boost::filesystem nlohmann_json::nlohmann_json)
  target_compile_definitions(inputs_edges_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
  add_dependencies(inputs_edges_test prefengine_cli prefengine_plugin_transformer prefengine_plugin_dpo
                   prefengine_plugin_toy_mlp prefengine_plugin_ppo prefengine_plugin_sft)
endif()
