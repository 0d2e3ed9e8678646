# transformer_bench: training tokens/s and MFU of the transformer plugin's core.
if(TARGET prefengine_model_transformer_core AND TARGET prefengine)
  add_executable(transformer_bench ${CMAKE_CURRENT_LIST_DIR}/transformer_bench.cpp)
  target_link_libraries(transformer_bench PRIVATE prefengine_model_transformer_core prefengine)
  target_compile_options(transformer_bench PRIVATE ${PREFENGINE_WARNINGS})
endif()
