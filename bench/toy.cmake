# Toy-DPO throughput: the shipped Figure-2 experiment run in-process, steps/s per stage.
add_executable(toy_dpo_bench ${CMAKE_CURRENT_LIST_DIR}/toy_dpo_bench.cpp)
target_link_libraries(toy_dpo_bench PRIVATE prefengine)
target_compile_options(toy_dpo_bench PRIVATE ${PREFENGINE_WARNINGS})
set_target_properties(toy_dpo_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_dependencies(toy_dpo_bench prefengine_plugin_toy_mlp prefengine_plugin_dpo)
