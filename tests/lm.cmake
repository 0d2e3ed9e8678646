# The language-model pieces: the transformer plugin's core, tokenizers, chat templates and text
# datasets.
if(TARGET prefengine_model_transformer_core)
  prefengine_add_test(NAME transformer_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/transformer_test.cpp
    LIBRARIES prefengine_model_transformer_core ${CMAKE_DL_LIBS})
  add_dependencies(transformer_test prefengine_plugin_transformer)
endif()
if(TARGET prefengine)
  prefengine_add_test(NAME lm_data_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/lm_data_test.cpp
    LIBRARIES prefengine)
endif()
# The language-model path through the engine: text stage data, resume, reference cache, generate,
# configs/lm.
if(TARGET prefengine AND TARGET prefengine_cli)
  prefengine_add_test(NAME lm_engine_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/lm_engine_test.cpp
    LIBRARIES prefengine)
  target_compile_definitions(lm_engine_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
  add_dependencies(lm_engine_test prefengine_cli prefengine_plugin_transformer prefengine_plugin_dpo
                   prefengine_plugin_toy_mlp)
endif()
