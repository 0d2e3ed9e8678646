# The launcher (build/bin/prefengine, engine/cli/launcher.cpp): arguments, exit status, signals,
# stdin/stdout and the runtime variables reach the engine executable unchanged; --version and
# --help without LibTorch, saying what the engine says; the missing-engine error. The launcher is
# pointed at a probe (tests/launcher_probe.cpp) copied next to it as prefengine-engine.
if(TARGET prefengine_cli)
  add_executable(prefengine_launcher_probe ${CMAKE_CURRENT_LIST_DIR}/launcher_probe.cpp)
  target_compile_options(prefengine_launcher_probe PRIVATE ${PREFENGINE_WARNINGS})
  prefengine_add_test(NAME launcher_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/launcher_test.cpp)
  target_include_directories(launcher_test PRIVATE ${CMAKE_BINARY_DIR}/generated)
  target_compile_definitions(launcher_test PRIVATE
    PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>"
    PREFENGINE_ENGINE="$<TARGET_FILE:prefengine_engine>"
    PREFENGINE_LAUNCHER_PROBE="$<TARGET_FILE:prefengine_launcher_probe>")
  add_dependencies(launcher_test prefengine_cli prefengine_engine prefengine_launcher_probe)
endif()
