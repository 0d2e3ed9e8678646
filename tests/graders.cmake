# Tests of the grader plugins' logic and of `prefengine grade`'s record-file core. The *_parsing
# tests link no plugin API (and so no LibTorch): they start in milliseconds.
prefengine_add_test(NAME grader_math_parsing_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_math_parsing_test.cpp
  LIBRARIES prefengine_grader_math_parsing)
prefengine_add_test(NAME grader_math_verify_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_math_verify_test.cpp
  LIBRARIES prefengine_grader_math_parsing)
prefengine_add_test(NAME grader_poem_parsing_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_poem_parsing_test.cpp
  LIBRARIES prefengine_grader_poem_parsing)
prefengine_add_test(NAME grader_slogan_parsing_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_slogan_parsing_test.cpp
  LIBRARIES prefengine_grader_slogan_parsing)
prefengine_add_test(NAME grader_math_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_math_test.cpp
  LIBRARIES prefengine_grader_math_core)
prefengine_add_test(NAME grader_poem_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_poem_test.cpp
  LIBRARIES prefengine_grader_poem_core)
prefengine_add_test(NAME grader_slogan_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_slogan_test.cpp
  LIBRARIES prefengine_grader_slogan_core)

# Agreement with the hand-labelled evaluation set (tests/data/graders/eval_*.jsonl).
prefengine_add_test(NAME grader_eval_set_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_eval_set_test.cpp
  LIBRARIES prefengine_grader_math_core prefengine_grader_poem_core prefengine_grader_slogan_core)

prefengine_add_test(NAME grader_grade_file_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_grade_file_test.cpp
  LIBRARIES prefengine prefengine_grader_math_core prefengine_grader_poem_core
    prefengine_grader_slogan_core)

# The three plugin libraries, opened with dlopen as the engine's loader would.
prefengine_add_test(NAME grader_plugins_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_plugins_test.cpp
  LIBRARIES prefengine::plugin_api ${CMAKE_DL_LIBS})
add_dependencies(grader_plugins_test
  prefengine_plugin_math prefengine_plugin_poem prefengine_plugin_slogan)

# The libFuzzer targets (answer extractor, poem parser, slogan prompt reader), built with clang and
# run briefly from the committed seed corpus; a crash fails the test.
add_test(NAME grader_fuzz_brief
  COMMAND ${CMAKE_COMMAND} -E env FUZZ_SECONDS=8 FUZZ_BUILD_DIR=${CMAKE_BINARY_DIR}/fuzz
          bash ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(grader_fuzz_brief PROPERTIES TIMEOUT 600)

# `prefengine grade` through the executable (exit status, --max-response-bytes, summary line).
prefengine_add_test(NAME grader_cli_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_cli_test.cpp
  LIBRARIES Boost::filesystem)
target_compile_definitions(grader_cli_test PRIVATE PREFENGINE_CLI="$<TARGET_FILE:prefengine_cli>")
add_dependencies(grader_cli_test prefengine_cli prefengine_plugin_math)
