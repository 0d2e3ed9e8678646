# The language-model study (scripts/lm_study.sh, issue 15): its --quick mode runs every experiment
# on miniature models of the three tasks and checks that every table is produced with finite numbers.
if(TARGET prefengine_cli)
  add_test(NAME lm_study_quick_test
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/lm_study_quick_test.sh $<TARGET_FILE:prefengine_cli>
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(lm_study_quick_test PROPERTIES TIMEOUT 900)
endif()
