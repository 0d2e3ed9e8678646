# The engine's token generator (engine/generation/): golden tokens from a hand-made model, and the
# KV cache against recomputation on the transformer plugin's core (which has a real cache).
if(TARGET prefengine AND TARGET prefengine_model_transformer_core)
  prefengine_add_test(NAME generation_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/generation_test.cpp
    LIBRARIES prefengine prefengine_model_transformer_core)
endif()
# The engine builds against plugin_api only: no file under engine/ includes a plugin's header.
# The second test runs the check on a fixture with such an include, which it must list.
add_test(NAME engine_includes_no_plugin_headers
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/engine_includes_test.sh ${PROJECT_SOURCE_DIR})
add_test(NAME engine_includes_check_lists_a_plugin_header
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/engine_includes_test.sh ${CMAKE_CURRENT_LIST_DIR}/data/engine_includes)
set_tests_properties(engine_includes_check_lists_a_plugin_header PROPERTIES
  PASS_REGULAR_EXPRESSION "engine/cli/uses_plugin.h:5:#include \"generation.h\"")
# The transformer's fast KV-cache path against the general one, a full forward and rows alone; the
# rotary table against closed-form cos/sin.
if(TARGET prefengine AND TARGET prefengine_model_transformer_core)
  prefengine_add_test(NAME generation_cache_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/generation_cache_test.cpp
    LIBRARIES prefengine prefengine_model_transformer_core)
endif()
