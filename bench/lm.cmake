# transformer_bench: training tokens/s and MFU of the transformer plugin's core.
if(TARGET prefengine_model_transformer_core AND TARGET prefengine)
  add_executable(transformer_bench ${CMAKE_CURRENT_LIST_DIR}/transformer_bench.cpp)
  target_link_libraries(transformer_bench PRIVATE prefengine_model_transformer_core prefengine)
  target_compile_options(transformer_bench PRIVATE ${PREFENGINE_WARNINGS})
endif()
# packing_bench: an sft step's rows padded against packed (data.packing), rows/s and their ratio.
if(TARGET prefengine_model_transformer_core AND TARGET prefengine)
  add_executable(packing_bench ${CMAKE_CURRENT_LIST_DIR}/packing_bench.cpp)
  target_link_libraries(packing_bench PRIVATE prefengine_model_transformer_core prefengine)
  target_compile_options(packing_bench PRIVATE ${PREFENGINE_WARNINGS})
endif()
