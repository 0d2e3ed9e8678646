# Signals and processes: SIGINT/SIGTERM stop a run at a step boundary with a checkpoint, through
# `--nproc` too; `run --resume DIR --nproc N`; a hung rank is named by the launcher.
prefengine_add_test(NAME signals_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/signals_test.cpp LIBRARIES prefengine)
target_compile_definitions(signals_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(signals_test prefengine_cli prefengine_plugin_toy_mlp prefengine_plugin_dpo)
