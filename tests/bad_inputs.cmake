# The bad-input corpus (issue 13, category 6): tests/reliability/bad_inputs/cases.tsv, each case a
# command that must fail with one "error:" line naming the problem, no crash, no hang, no
# backtrace and no file written outside its own folder (tests/reliability/bad_inputs_test.sh).
if(TARGET prefengine_cli)
  add_test(NAME bad_inputs_corpus
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/reliability/bad_inputs_test.sh $<TARGET_FILE:prefengine_cli>
            ${CMAKE_CURRENT_LIST_DIR}/reliability/bad_inputs)
  set_tests_properties(bad_inputs_corpus PROPERTIES TIMEOUT 1200)
endif()
