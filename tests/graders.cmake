# Tests of the grader plugins' logic and of `prefengine grade`'s record-file core.
prefengine_add_test(NAME grader_math_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_math_test.cpp
  LIBRARIES prefengine_grader_math_core)
prefengine_add_test(NAME grader_poem_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_poem_test.cpp
  LIBRARIES prefengine_grader_poem_core)
prefengine_add_test(NAME grader_slogan_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grader_slogan_test.cpp
  LIBRARIES prefengine_grader_slogan_core)
