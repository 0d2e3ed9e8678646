# The closed loop: sampling and grading in the engine, the pairs stage, pairs as stage data.
if(TARGET prefengine AND TARGET prefengine_cli)
  set(PREFENGINE_LOOP_PLUGIN_DIR ${CMAKE_BINARY_DIR}/test_plugins_loop)
  prefengine_add_plugin(NAME checksum KIND grader SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins/checksum_grader.cpp
                        OUTPUT_DIR ${PREFENGINE_LOOP_PLUGIN_DIR})
  prefengine_add_test(NAME loop_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/loop_test.cpp LIBRARIES prefengine)
  target_compile_definitions(loop_test PRIVATE PREFENGINE_LOOP_PLUGIN_DIR="${PREFENGINE_LOOP_PLUGIN_DIR}"
                             PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
  add_dependencies(loop_test prefengine_cli prefengine_plugin_checksum prefengine_plugin_transformer prefengine_plugin_ppo
                   prefengine_plugin_dpo)
endif()
# Evaluation inside a stage: held-out pairs, generate and grade, pass@k.
if(TARGET prefengine AND TARGET prefengine_cli)
  prefengine_add_test(NAME eval_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/eval_test.cpp LIBRARIES prefengine)
  target_compile_definitions(eval_test PRIVATE PREFENGINE_LOOP_PLUGIN_DIR="${PREFENGINE_LOOP_PLUGIN_DIR}")
  add_dependencies(eval_test prefengine_plugin_checksum prefengine_plugin_transformer prefengine_plugin_dpo
                   prefengine_plugin_sft prefengine_plugin_math)
endif()
# PPO rewarded by the math grader on a tiny arithmetic task, through the prefengine binary
# (configs/lm/ppo_math.yaml; ~15 s on one core).
if(TARGET prefengine_cli)
  prefengine_add_test(NAME ppo_math_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ppo_math_test.cpp LIBRARIES prefengine)
  target_compile_definitions(ppo_math_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
  add_dependencies(ppo_math_test prefengine_cli prefengine_plugin_transformer prefengine_plugin_ppo
                   prefengine_plugin_math)
endif()
# The 3D early warning on hand-made rows and on the toy runs.
if(TARGET prefengine)
  prefengine_add_test(NAME early_warning_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/early_warning_test.cpp LIBRARIES prefengine)
  add_dependencies(early_warning_test prefengine_plugin_toy_mlp prefengine_plugin_dpo prefengine_plugin_dpo_sft
                   prefengine_plugin_sft)
endif()
