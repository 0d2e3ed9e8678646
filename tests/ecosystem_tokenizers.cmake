# Tokenizers from real Hugging Face tokenizer.json files: the pipeline pieces on hand-made files
# (hf_tokenizer_test) and parity with the JavaScript reference tokenizer on the real Qwen3,
# Llama 3, Mistral and Gemma 3 files (tokenizer_parity_test; skipped, saying why, without the
# files from scripts/fetch_tokenizers.sh or without node).
if(TARGET prefengine)
  prefengine_add_test(NAME hf_tokenizer_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/hf_tokenizer_test.cpp
    LIBRARIES prefengine)
  # scripts/train_bpe.py: a hand-counted corpus, and parity of what it trains with the reference.
  prefengine_add_test(NAME bpe_trainer_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/bpe_trainer_test.cpp
    LIBRARIES prefengine)
  prefengine_add_test(NAME tokenizer_parity_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tokenizer_parity_test.cpp
    LIBRARIES prefengine)
endif()
