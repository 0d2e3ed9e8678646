# init_from: a stage starts from an earlier stage's checkpoint or another run's checkpoint folder.
prefengine_add_test(NAME init_from_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/init_from_test.cpp
  LIBRARIES prefengine)
add_dependencies(init_from_test prefengine_plugin_toy_mlp prefengine_plugin_dpo prefengine_plugin_sft)
