# Tests of the engine foundation: config, plugin loader, training loop, CLI.
set(PREFENGINE_TEST_PLUGIN_DIR ${CMAKE_BINARY_DIR}/test_plugins)
prefengine_add_plugin(NAME bad_abi SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/bad_abi_plugin.cpp
                      OUTPUT_DIR ${PREFENGINE_TEST_PLUGIN_DIR})
prefengine_add_plugin(NAME no_factory SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/no_factory_plugin.cpp
                      OUTPUT_DIR ${PREFENGINE_TEST_PLUGIN_DIR})
prefengine_add_plugin(NAME throwing SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/throwing_plugin.cpp
                      OUTPUT_DIR ${PREFENGINE_TEST_PLUGIN_DIR})

prefengine_add_test(NAME foundation_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/plugin_loader_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/training_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/fused_ops_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/cli_test.cpp
  LIBRARIES prefengine)
target_compile_definitions(foundation_test PRIVATE
  PREFENGINE_TEST_PLUGIN_DIR="${PREFENGINE_TEST_PLUGIN_DIR}"
  PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(foundation_test prefengine_cli prefengine_plugin_bad_abi prefengine_plugin_no_factory
                 prefengine_plugin_throwing prefengine_plugin_toy_mlp prefengine_plugin_dpo)
