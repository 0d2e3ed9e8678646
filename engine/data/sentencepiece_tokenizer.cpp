#include "engine/data/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <filesystem>
#include <iostream>
#include <mutex>
#include <stdexcept>

namespace prefengine {
namespace {

constexpr const char* kShimName = "libprefengine_sentencepiece.so";

struct Shim {
  void* (*load)(const std::string*, std::string*) = nullptr;
  void (*free)(void*) = nullptr;
  bool (*encode)(void*, const std::string*, std::vector<int>*, std::string*) = nullptr;
  bool (*decode)(void*, const std::vector<int>*, std::string*, std::string*) = nullptr;
  void (*info)(void*, int64_t*) = nullptr;
  bool (*train)(const std::string*, std::string*) = nullptr;
};

template <typename F>
void bind(void* library, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(library, name));
  if (!*out) throw std::runtime_error(std::string(kShimName) + ": missing symbol " + name);
}

// Loads the shim once per process, from the directory of libprefengine (build tree or install),
// else through the dynamic loader's search path. Never unloaded.
const Shim& shim() {
  static Shim instance;
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    std::string path = kShimName;
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&train_sentencepiece), &info) && info.dli_fname) {
      const auto candidate = std::filesystem::path(info.dli_fname).parent_path() / kShimName;
      if (std::filesystem::exists(candidate)) path = candidate.string();
    }
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!library) {
      const char* error = dlerror();
      failure = "cannot load " + path + " (" + (error ? error : "unknown error") + ")";
      return;
    }
    try {
      void (*bind_streams)(std::ostream*, std::ostream*, std::ostream*) = nullptr;
      bind(library, "prefengine_sp_bind_streams", &bind_streams);
      bind_streams(&std::cout, &std::cerr, &std::clog);
      bind(library, "prefengine_sp_load", &instance.load);
      bind(library, "prefengine_sp_free", &instance.free);
      bind(library, "prefengine_sp_encode", &instance.encode);
      bind(library, "prefengine_sp_decode", &instance.decode);
      bind(library, "prefengine_sp_info", &instance.info);
      bind(library, "prefengine_sp_train", &instance.train);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  if (!failure.empty()) throw std::runtime_error("sentencepiece: " + failure);
  return instance;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path) {
  std::string error;
  processor_ = shim().load(&model_path, &error);
  if (!processor_) {
    throw std::runtime_error(model_path + ": cannot load the SentencePiece model (" + error + ")");
  }
  int64_t info[4];
  shim().info(processor_, info);
  bos_ = info[0];
  eos_ = info[1];
  pad_ = info[2];
  size_ = info[3];
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (processor_) shim().free(processor_);
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> pieces;
  std::string error;
  if (!shim().encode(processor_, &text, &pieces, &error)) {
    throw std::invalid_argument("sentencepiece: encode failed: " + error);
  }
  std::vector<int64_t> ids;
  ids.reserve(pieces.size() + 1);
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (const int64_t id : ids) {
    if (id < 0 || id >= size_) {
      throw std::invalid_argument("sentencepiece: id " + std::to_string(id) + " is outside [0, " +
                                  std::to_string(size_) + ")");
    }
    if (id == bos_ || id == eos_ || id == pad_) continue;
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  std::string error;
  if (!shim().decode(processor_, &pieces, &text, &error)) {
    throw std::invalid_argument("sentencepiece: decode failed: " + error);
  }
  return text;
}

void train_sentencepiece(const std::string& arguments) {
  std::string error;
  if (!shim().train(&arguments, &error)) {
    throw std::invalid_argument("sentencepiece: training failed: " + error);
  }
}

}  // namespace prefengine
