#!/bin/sh
# The engine builds against plugin_api only: no file under engine/ may include a plugin's own
# header. Fails listing every offending line as FILE:LINE: #include ...
#   usage: engine_includes_test.sh SOURCE_ROOT
# Offending: a quoted include that is neither "engine/..." nor "prefengine/..." (plugin_api), and
# any other include naming plugins/... or, without a directory, a header that exists under plugins/.
set -eu
root=${1:?usage: engine_includes_test.sh SOURCE_ROOT}
[ -d "$root/engine" ] || { echo "no $root/engine"; exit 2; }
plugin_headers=$(cd "$root" && find plugins -type f \( -name '*.h' -o -name '*.hpp' \) -exec basename {} \; 2>/dev/null | sort -u)
bad=$(cd "$root" && grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' engine \
        --include='*.h' --include='*.hpp' --include='*.cpp' --include='*.cc' |
      while IFS= read -r line; do
        target=$(printf '%s\n' "$line" | sed -E 's/^[^#]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/')
        case "$line" in
          *'include "'*)
            case "$target" in engine/*|prefengine/*) ;; *) printf '%s\n' "$line"; continue ;; esac ;;
        esac
        case "$target" in
          engine/*|prefengine/*) ;;
          plugins/*|*/plugins/*) printf '%s\n' "$line"; continue ;;
          */*) ;;
          *) if printf '%s\n' "$plugin_headers" | grep -qxF "$target"; then printf '%s\n' "$line"; fi ;;
        esac
      done)
if [ -n "$bad" ]; then
  echo "engine/ must build against plugin_api only; these lines include plugin headers:"
  printf '%s\n' "$bad"
  exit 1
fi
echo "engine/: no plugin headers included"
