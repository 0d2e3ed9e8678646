# The report area: run summaries, SVG charts and the HTML report (engine/report/). On main these
# sources are also part of libprefengine; the static library here keeps the tests free of LibTorch.
if(NOT TARGET prefengine_report)
  add_library(prefengine_report STATIC
    ${PROJECT_SOURCE_DIR}/engine/report/svg_chart.cpp
    ${PROJECT_SOURCE_DIR}/engine/report/run_summary.cpp
    ${PROJECT_SOURCE_DIR}/engine/report/html_report.cpp)
  target_include_directories(prefengine_report PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(prefengine_report PUBLIC yaml-cpp nlohmann_json::nlohmann_json)
  target_compile_options(prefengine_report PRIVATE ${PREFENGINE_WARNINGS})
endif()

prefengine_add_test(NAME report_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/report_test.cpp
  LIBRARIES prefengine_report)

# A small command-line front end for manual use and for the Chromium test:
#   prefengine_report_tool [--output FILE] [--summary-dir DIR] [--stage NAME] [--all-stages] RUN_DIR...
add_executable(prefengine_report_tool ${CMAKE_CURRENT_LIST_DIR}/report_tool.cpp)
target_link_libraries(prefengine_report_tool PRIVATE prefengine_report)
target_compile_options(prefengine_report_tool PRIVATE ${PREFENGINE_WARNINGS})

# Renders the fixture report in headless Chromium and checks the screenshot for drawn lines.
add_test(NAME report_render_chromium
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/render_report.sh
          $<TARGET_FILE:prefengine_report_tool> ${CMAKE_CURRENT_BINARY_DIR}/report_render
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(report_render_chromium PROPERTIES TIMEOUT 300)
