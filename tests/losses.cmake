# Tests of the loss plugins (plugins/losses/*) and of the plugin SDK.
#
# The losses are the directories plugins/losses/<name>/ with a CMakeLists.txt (the plugin glob of
# plugins/CMakeLists.txt). A loss gets loss_<name>_test when
# tests/loss_<name>_test.cpp exists and its prefengine_loss_<name>_core library is built; a loss
# without that file gets no per-loss test here (ppo's is ppo_loss_test, in study.cmake).
file(GLOB loss_lists CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/plugins/losses/*/CMakeLists.txt)
set(loss_names "")
foreach(list_file ${loss_lists})
  get_filename_component(loss_dir ${list_file} DIRECTORY)
  get_filename_component(loss ${loss_dir} NAME)
  list(APPEND loss_names ${loss})
endforeach()
list(SORT loss_names)
# The test files are globbed too, so adding one re-runs the configure step.
file(GLOB loss_test_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/loss_*_test.cpp)

foreach(loss ${loss_names})
  set(loss_test_source ${CMAKE_CURRENT_LIST_DIR}/loss_${loss}_test.cpp)
  if(loss_test_source IN_LIST loss_test_sources AND TARGET prefengine_loss_${loss}_core)
    prefengine_add_test(NAME loss_${loss}_test
      SOURCES ${loss_test_source}
      LIBRARIES prefengine_loss_${loss}_core)
  endif()
endforeach()

# The SDK: cmake --install into a temporary prefix, build examples/loss_plugin against it, check the
# exported symbols, run its self-check and its loader check. Needs prefengine_plugin_api and
# prefengine_plugin_loader built. With the engine built it also trains the toy model with the
# example through `prefengine run` (skipped, not passed, when prefengine or toy_mlp is not built).
set(loss_sdk_engine "")
if(TARGET prefengine_cli AND TARGET prefengine_plugin_toy_mlp)
  set(loss_sdk_engine $<TARGET_FILE:prefengine_cli>)
endif()
add_test(NAME loss_sdk_install_example
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/loss_sdk_test.sh install ${CMAKE_COMMAND} ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR} ${loss_sdk_engine})
set_tests_properties(loss_sdk_install_example PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77)
# The same example against this build tree (find_package through -Dprefengine_DIR=<build>).
add_test(NAME loss_sdk_build_tree_example
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/loss_sdk_test.sh build-tree ${CMAKE_COMMAND}
          ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(loss_sdk_build_tree_example PROPERTIES TIMEOUT 900)

# The built plugin modules, loaded with dlopen as the engine does.
set(loss_plugin_targets "")
foreach(loss ${loss_names})
  if(TARGET prefengine_plugin_${loss})
    list(APPEND loss_plugin_targets prefengine_plugin_${loss})
  endif()
endforeach()
if(loss_plugin_targets)
  prefengine_add_test(NAME loss_plugins_load_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/loss_plugins_load_test.cpp
    LIBRARIES prefengine::plugin_api ${CMAKE_DL_LIBS})
  add_dependencies(loss_plugins_load_test ${loss_plugin_targets})
endif()

# adaptive_dpo through the engine: the controller's state survives a stop and resume exactly.
if(TARGET prefengine AND TARGET prefengine_plugin_adaptive_dpo)
  prefengine_add_test(NAME adaptive_dpo_run_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/adaptive_dpo_run_test.cpp
                      LIBRARIES prefengine)
  add_dependencies(adaptive_dpo_run_test prefengine_plugin_adaptive_dpo prefengine_plugin_sft
                   prefengine_plugin_toy_mlp)
endif()
