# LoRA on the transformer plugin and the engine's adapters-off reference (tests/lora_test.cpp).
if(TARGET prefengine_model_transformer_core AND TARGET prefengine)
  prefengine_add_test(NAME lora_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/lora_test.cpp
    LIBRARIES prefengine_model_transformer_core prefengine)
  add_dependencies(lora_test prefengine_plugin_transformer prefengine_plugin_dpo)
endif()
