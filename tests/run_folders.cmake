# Run folders: creation, --overwrite rules, the run lock, sweep folder names.
prefengine_add_test(NAME run_folder_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/run_folder_test.cpp
  LIBRARIES prefengine)
target_compile_definitions(run_folder_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(run_folder_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_dpo)

# kill -9 at random moments (seeded), resumed until complete; metrics and weights equal an
# uninterrupted run's. More cycles: tests/kill_resume_test.sh build/bin/prefengine 50 [SEED].
add_test(NAME kill_resume_test
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/kill_resume_test.sh $<TARGET_FILE:prefengine_cli> 4
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(kill_resume_test PROPERTIES TIMEOUT 600)
