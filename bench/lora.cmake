# lora_bench: peak RSS and training-state bytes of LoRA DPO against full DPO (bench/README.md).
if(TARGET prefengine_model_transformer_core AND TARGET prefengine)
  add_executable(lora_bench ${CMAKE_CURRENT_LIST_DIR}/lora_bench.cpp)
  target_link_libraries(lora_bench PRIVATE prefengine_model_transformer_core prefengine)
  target_compile_options(lora_bench PRIVATE ${PREFENGINE_WARNINGS})
endif()
