# Tests of the engine foundation: config, plugin loader, training loop, CLI.
set(PREFENGINE_TEST_PLUGIN_DIR ${CMAKE_BINARY_DIR}/test_plugins)
prefengine_add_plugin(NAME bad_abi KIND loss SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/bad_abi_plugin.cpp
                      OUTPUT_DIR ${PREFENGINE_TEST_PLUGIN_DIR})
prefengine_add_plugin(NAME no_factory KIND loss SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/no_factory_plugin.cpp
                      OUTPUT_DIR ${PREFENGINE_TEST_PLUGIN_DIR})
prefengine_add_plugin(NAME throwing KIND loss SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/throwing_plugin.cpp
                      OUTPUT_DIR ${PREFENGINE_TEST_PLUGIN_DIR})
# A plugin that says it was compiled against another LibTorch: the loader must refuse it.
prefengine_add_plugin(NAME other_torch KIND loss
                      SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/other_torch_plugin.cpp
                      OUTPUT_DIR ${PREFENGINE_TEST_PLUGIN_DIR})
target_compile_definitions(prefengine_plugin_other_torch PRIVATE
  PREFENGINE_TEST_TORCH_VERSION="0.9.9-test")
# Not a plugin: a library that aborts the process when it is loaded, in a directory of its own.
# Beside plugins it proves that the loader and `prefengine plugins` never open a file that is not
# the plugin asked for.
set(PREFENGINE_TEST_UNRELATED_DIR ${CMAKE_BINARY_DIR}/test_plugins_unrelated)
add_library(prefengine_test_aborts_on_load MODULE ${CMAKE_CURRENT_LIST_DIR}/plugins/aborts_on_load.cpp)
set_target_properties(prefengine_test_aborts_on_load PROPERTIES
  PREFIX "lib" OUTPUT_NAME unrelated_aborts LIBRARY_OUTPUT_DIRECTORY ${PREFENGINE_TEST_UNRELATED_DIR})
target_compile_options(prefengine_test_aborts_on_load PRIVATE ${PREFENGINE_WARNINGS})

prefengine_add_test(NAME foundation_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/plugin_loader_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/training_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/fused_ops_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/cli_test.cpp
  LIBRARIES prefengine)
target_compile_definitions(foundation_test PRIVATE
  PREFENGINE_TEST_PLUGIN_DIR="${PREFENGINE_TEST_PLUGIN_DIR}"
  PREFENGINE_TEST_UNRELATED_DIR="${PREFENGINE_TEST_UNRELATED_DIR}"
  PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(foundation_test prefengine_cli prefengine_plugin_bad_abi prefengine_plugin_no_factory
                 prefengine_plugin_throwing prefengine_plugin_other_torch prefengine_test_aborts_on_load
                 prefengine_plugin_toy_mlp prefengine_plugin_dpo)

# The toy loop's fast paths (bench/README.md, "The toy loop: where the time goes").
prefengine_add_test(NAME toy_fast_paths_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/toy_fast_paths_test.cpp
  LIBRARIES prefengine)
add_dependencies(toy_fast_paths_test prefengine_plugin_toy_mlp)

# The DirectBackward capability: the toy MLP outside autograd, against autograd, and whole runs
# either way (byte-identical).
prefengine_add_test(NAME direct_backward_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/direct_backward_test.cpp
  LIBRARIES prefengine prefengine_model_toy_mlp_core)
target_compile_definitions(direct_backward_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(direct_backward_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_sft
                 prefengine_plugin_dpo prefengine_plugin_dpo_sft prefengine_plugin_ipo prefengine_plugin_flex_dpo
                 prefengine_plugin_rm)

# Heap kept per training step (mallinfo2) and the allocation-free generator copy.
prefengine_add_test(NAME memory_growth_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/memory_growth_test.cpp
  LIBRARIES prefengine)
