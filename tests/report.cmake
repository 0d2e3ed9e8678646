# The report area: run summaries, SVG charts and the HTML report (engine/report/, in libprefengine).

prefengine_add_test(NAME report_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/report_test.cpp
  LIBRARIES prefengine)

# Renders the fixture report in headless Chromium and checks the screenshot for drawn lines.
add_test(NAME report_render_chromium
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/render_report.sh
          $<TARGET_FILE:prefengine_cli> ${CMAKE_CURRENT_BINARY_DIR}/report_render
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(report_render_chromium PROPERTIES TIMEOUT 300)
