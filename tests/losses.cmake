# Tests of the loss plugins (plugins/losses/*) and of the plugin SDK.
foreach(loss dpo flex_dpo dpo_sft ipo slic rm)
  if(TARGET prefengine_loss_${loss}_core)
    prefengine_add_test(NAME loss_${loss}_test
      SOURCES ${CMAKE_CURRENT_LIST_DIR}/loss_${loss}_test.cpp
      LIBRARIES prefengine_loss_${loss}_core)
  endif()
endforeach()
