#!/usr/bin/env bash
# Builds the graders' libFuzzer targets with clang++ (-fsanitize=fuzzer,address,undefined) and
# runs each for FUZZ_SECONDS seconds (default 20) from the seed corpus in fuzz/corpus/<target>.
# New inputs go to $FUZZ_BUILD_DIR/corpus/<target>; the committed seeds are not modified. Exits
# non-zero when a target fails to build or finds a crash (the reproducer is left in
# $FUZZ_BUILD_DIR/crash-* / leak-* / timeout-*). Needs clang and libclang-rt-14-dev.
# Usage: scripts/fuzz.sh [target...]   (targets: answer_extractor poem_parser slogan_request)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-20}
out=${FUZZ_BUILD_DIR:-build-fuzz}
cxx=${FUZZ_CXX:-clang++}
mkdir -p "$out"
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Iplugins/graders)
common=(plugins/graders/common/utf8.cpp)
sources_answer_extractor=(fuzz/answer_extractor_fuzzer.cpp
  plugins/graders/math/answer_extractor.cpp plugins/graders/math/answer_normalizer.cpp
  plugins/graders/math/answer_equivalence.cpp plugins/graders/math/math_expression.cpp
  plugins/graders/math/arithmetic_check.cpp plugins/graders/math/symbolic_equivalence.cpp)
libs_answer_extractor=(-lginac -lcln)
sources_poem_parser=(fuzz/poem_parser_fuzzer.cpp
  plugins/graders/poem/poem_parser.cpp plugins/graders/poem/poem_form.cpp plugins/graders/poem/pinyin.cpp
  plugins/graders/poem/unihan_readings.cpp)
libs_poem_parser=(-lbz2)
sources_slogan_request=(fuzz/slogan_request_fuzzer.cpp plugins/graders/slogan/slogan_request.cpp)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(answer_extractor poem_parser slogan_request)
for t in "${targets[@]}"; do
  sources_var="sources_${t}[@]"
  libs_var="libs_${t}[@]"
  [ -n "${!sources_var+x}" ] || { echo "fuzz.sh: unknown target $t" >&2; exit 2; }
  echo "fuzz.sh: building ${t}_fuzzer"
  "$cxx" "${flags[@]}" "${!sources_var}" "${common[@]}" ${!libs_var+"${!libs_var}"} \
    -o "$out/${t}_fuzzer"
done
# CLN (GiNaC's number library) never frees some global caches: not leaks of the code under test.
export LSAN_OPTIONS="suppressions=$root/fuzz/lsan_suppressions.txt${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t"
  echo "fuzz.sh: running ${t}_fuzzer for ${seconds}s"
  (cd "$out" && "./${t}_fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
     -rss_limit_mb=2048 -print_final_stats=1 "corpus/$t" "$root/fuzz/corpus/$t")
done
echo "fuzz.sh: no crashes"
