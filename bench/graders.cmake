# Records graded per second for each grader (a benchmark, not a test).
add_executable(grader_bench ${CMAKE_CURRENT_LIST_DIR}/grader_bench.cpp)
target_link_libraries(grader_bench PRIVATE
  prefengine_grader_math_core prefengine_grader_poem_core prefengine_grader_slogan_core)
target_compile_options(grader_bench PRIVATE ${PREFENGINE_WARNINGS})

# Realistic rows per second, one and two threads (the hand-labelled evaluation set as input).
add_executable(grader_rows_bench ${CMAKE_CURRENT_LIST_DIR}/grader_rows_bench.cpp)
target_link_libraries(grader_rows_bench PRIVATE
  prefengine_grader_math_core prefengine_grader_poem_core prefengine_grader_slogan_core Threads::Threads)
target_compile_options(grader_rows_bench PRIVATE ${PREFENGINE_WARNINGS})
