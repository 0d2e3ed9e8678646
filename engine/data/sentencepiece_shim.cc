// The only code that touches libsentencepiece. Debian's libsentencepiece.so bundles and exports
// its own copy of protobuf (and gflags-style FLAGS_ symbols), which collide with the system
// libprotobuf that LibTorch loads: linked into the same global symbol scope, the process crashes
// while initialising protobuf descriptors. So this file becomes a separate module,
// libprefengine_sentencepiece.so, that sentencepiece_tokenizer.cpp loads with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND): sentencepiece then binds to its own protobuf copy and its
// symbols never enter the global scope. The interface is a few extern "C" functions; strings and
// vectors cross it as pointers (same compiler and libstdc++).
//
// RTLD_DEEPBIND has one known trap: an executable that uses std::cerr usually holds a copy
// relocation of it, and libstdc++ constructs the streams in that copy. Deep-bound code (this
// module, libsentencepiece) resolves std::cerr to libstdc++'s own, never-constructed object and
// crashes on its first log line. prefengine_sp_bind_streams constructs those objects on the
// process's real stream buffers.
// (.cc, not .cpp: the engine library globs engine/**/*.cpp and must not compile this file.)
#include <cstdint>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#define SHIM_API extern "C" __attribute__((visibility("default")))

SHIM_API void prefengine_sp_bind_streams(std::ostream* out, std::ostream* err, std::ostream* log) {
  auto bind = [](std::ostream& mine, std::ostream* real, bool unit_buffered) {
    if (&mine == real) return;
    new (&mine) std::ostream(real->rdbuf());
    if (unit_buffered) mine.setf(std::ios::unitbuf);
  };
  bind(std::cout, out, false);
  bind(std::cerr, err, true);
  bind(std::clog, log, false);
}

SHIM_API void* prefengine_sp_load(const std::string* path, std::string* error) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(*path);
  if (!status.ok()) {
    *error = status.ToString();
    delete processor;
    return nullptr;
  }
  return processor;
}

SHIM_API void prefengine_sp_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

SHIM_API bool prefengine_sp_encode(void* handle, const std::string* text, std::vector<int>* ids,
                                   std::string* error) {
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(*text, ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

SHIM_API bool prefengine_sp_decode(void* handle, const std::vector<int>* ids, std::string* text,
                                   std::string* error) {
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(*ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

// bos, eos, pad (-1 when absent) and the number of pieces.
SHIM_API void prefengine_sp_info(void* handle, int64_t* out) {
  const auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  out[0] = p->bos_id();
  out[1] = p->eos_id();
  out[2] = p->pad_id();
  out[3] = p->GetPieceSize();
}

SHIM_API bool prefengine_sp_train(const std::string* args, std::string* error) {
  const auto status = sentencepiece::SentencePieceTrainer::Train(*args);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}
