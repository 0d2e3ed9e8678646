# Tests of the grader plugins' logic and of `prefengine grade`'s record-file core. The *_parsing
# tests link no plugin API (and so no LibTorch): they start in milliseconds.
prefengine_add_test(NAME grader_math_parsing_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_math_parsing_test.cpp
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

# engine/grading/grade_file.cpp also compiles into libprefengine; the test builds it alone so that
# it needs neither LibTorch headers nor the rest of the engine.
add_library(prefengine_grade_file_core STATIC ${PROJECT_SOURCE_DIR}/engine/grading/grade_file.cpp)
target_include_directories(prefengine_grade_file_core PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(prefengine_grade_file_core PUBLIC
  prefengine::plugin_api nlohmann_json::nlohmann_json)
target_compile_options(prefengine_grade_file_core PRIVATE ${PREFENGINE_WARNINGS})
prefengine_add_test(NAME grader_grade_file_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_grade_file_test.cpp
  LIBRARIES prefengine_grade_file_core prefengine_grader_math_core prefengine_grader_poem_core
    prefengine_grader_slogan_core)

# The three plugin libraries, opened with dlopen as the engine's loader would.
prefengine_add_test(NAME grader_plugins_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_plugins_test.cpp
  LIBRARIES prefengine::plugin_api ${CMAKE_DL_LIBS})
add_dependencies(grader_plugins_test
  prefengine_plugin_math prefengine_plugin_poem prefengine_plugin_slogan)
