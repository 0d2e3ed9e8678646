# TensorBoard event files (report_to) read back by an independent reader; TRL's config names and
# metric names.
prefengine_add_test(NAME tensorboard_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tensorboard_test.cpp
  LIBRARIES prefengine)
target_compile_definitions(tensorboard_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(tensorboard_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_dpo prefengine_plugin_sft)

prefengine_add_test(NAME trl_names_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/trl_names_test.cpp
  LIBRARIES prefengine)
target_compile_definitions(trl_names_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(trl_names_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_dpo prefengine_plugin_sft
  prefengine_plugin_transformer prefengine_plugin_math)
