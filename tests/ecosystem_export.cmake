# Hugging Face format: config.json read as transformers writes it (the transformer plugin's core),
# and `prefengine export` / a stage's `export:` writing folders transformers loads.
if(TARGET prefengine_model_transformer_core)
  prefengine_add_test(NAME transformer_config_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/transformer_config_test.cpp
    LIBRARIES prefengine_model_transformer_core)
endif()
if(TARGET prefengine AND TARGET prefengine_cli AND TARGET prefengine_model_transformer_core)
  prefengine_add_test(NAME hf_export_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/hf_export_test.cpp
    LIBRARIES prefengine prefengine_model_transformer_core)
  target_compile_definitions(hf_export_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
  add_dependencies(hf_export_test prefengine_cli prefengine_plugin_transformer prefengine_plugin_toy_mlp
                   prefengine_plugin_sft)
endif()
