# generation_bench: the engine's side of bench/generation_bench.py (KV-cache generation timed around
# prefengine::generate).
if(TARGET prefengine_model_transformer_core AND TARGET prefengine)
  add_executable(generation_bench ${CMAKE_CURRENT_LIST_DIR}/generation_bench.cpp)
  target_link_libraries(generation_bench PRIVATE prefengine_model_transformer_core prefengine)
  target_compile_options(generation_bench PRIVATE ${PREFENGINE_WARNINGS})
endif()
