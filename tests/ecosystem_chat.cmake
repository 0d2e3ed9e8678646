# Chat templates from tokenizer_config.json (issue 17, item 3): the Jinja2 subset on small
# templates, and parity with python3-jinja2 on the real templates of Qwen3, Llama 3 and Gemma 3
# (files from scripts/fetch_tokenizers.sh; skipped with the reason when absent).
if(TARGET prefengine)
  prefengine_add_test(NAME jinja_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/jinja_test.cpp LIBRARIES prefengine)
  prefengine_add_test(NAME chat_template_parity_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/chat_template_parity_test.cpp
    LIBRARIES prefengine)
endif()
