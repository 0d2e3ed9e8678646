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
