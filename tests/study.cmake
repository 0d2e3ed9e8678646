# The toy 3D-properties study (issue 4): the ppo loss plugin, sweeps and seeds, and the paper's
# claims asserted from the engine's own runs.
prefengine_add_test(NAME ppo_loss_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ppo_loss_test.cpp
  LIBRARIES prefengine_loss_ppo_core)

prefengine_add_test(NAME study_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sweep_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/ppo_stage_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/study_claims_test.cpp
  LIBRARIES prefengine)
target_compile_definitions(study_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(study_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_dpo
                 prefengine_plugin_ppo prefengine_plugin_flex_dpo prefengine_plugin_dpo_sft
                 prefengine_plugin_ipo prefengine_plugin_slic prefengine_plugin_rm)
