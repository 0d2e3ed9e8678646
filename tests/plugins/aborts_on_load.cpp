// Not a plugin: a library whose static initializer aborts the process. A test that puts it beside
// plugins dies if anything opens it, so it checks that the loader opens only the file asked for.
#include <cstdio>
#include <cstdlib>

namespace {
struct AbortOnLoad {
  AbortOnLoad() {
    std::fputs("libunrelated_aborts.so was loaded: the plugin loader opened an unrelated file\n", stderr);
    std::abort();
  }
};
const AbortOnLoad abort_on_load;
}  // namespace
