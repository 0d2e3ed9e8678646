# Run folders: creation, --overwrite rules, the run lock, sweep folder names.
prefengine_add_test(NAME run_folder_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/run_folder_test.cpp
  LIBRARIES prefengine)
target_compile_definitions(run_folder_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(run_folder_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_dpo)
