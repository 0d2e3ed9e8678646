# The offline tasks' data (configs/lm/math, poem, slogan): each generator run into a temporary
# folder and compared with its committed files, the references graded by `prefengine grade`, and
# every file read by `prefengine validate`.
if(TARGET prefengine_cli)
  prefengine_add_test(NAME lm_tasks_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/lm_tasks_test.cpp
    LIBRARIES Boost::filesystem)
  target_compile_definitions(lm_tasks_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
  add_dependencies(lm_tasks_test prefengine_cli prefengine_plugin_math prefengine_plugin_poem
                   prefengine_plugin_slogan prefengine_plugin_transformer prefengine_plugin_sft
                   prefengine_plugin_dpo)
endif()
