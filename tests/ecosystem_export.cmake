# Hugging Face format: config.json read as transformers writes it (the transformer plugin's core),
# and `prefengine export` / a stage's `export:` writing folders transformers loads.
if(TARGET prefengine_model_transformer_core)
  prefengine_add_test(NAME transformer_config_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/transformer_config_test.cpp
    LIBRARIES prefengine_model_transformer_core)
endif()
