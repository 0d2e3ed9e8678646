#!/usr/bin/env bash
# Renders the fixture report in headless Chromium and checks the screenshot for drawn chart lines.
#   tests/render_report.sh PREFENGINE_EXECUTABLE OUT_DIR
# Needs Debian's chromium package (scripts/apt-packages.txt). Leaves OUT_DIR/report.html,
# OUT_DIR/report.png, OUT_DIR/summary.{md,csv} and the Chromium log for a look by eye.
set -euo pipefail
tool=$1
out=$2
src=$(cd "$(dirname "$0")/.." && pwd)
fixtures=$src/tests/data/report
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

"$tool" report --output "$out/report.html" \
  "$fixtures/toy-dpo-s0" "$fixtures/toy-dpo-s1" "$fixtures/toy-ipo-s0" \
  "$fixtures/toy-dpo-beta0.1-s0" "$fixtures/toy-dpo-beta0.5-s0"

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "FAIL: chromium is not installed (apt-get install chromium; see scripts/apt-packages.txt)"
  exit 1
fi

# screenshot HTML PNG: one headless Chromium run with a throw-away profile, no network.
screenshot() {
  local profile status=0
  profile=$(mktemp -d)
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --screenshot="$2" --window-size=1400,3000 \
    "file://$1" >>"$out/chromium.log" 2>&1 || status=$?
  rm -rf "$profile"
  if [ ! -s "$2" ]; then
    echo "FAIL: chromium wrote no screenshot $2 (exit $status); log:"
    tail -20 "$out/chromium.log"
    exit 1
  fi
}

# The first four palette colours: one per group of seeds (4 in the fixtures) in every chart.
colours=(--color '#1f77b4' --color '#ff7f0e' --color '#2ca02c' --color '#d62728')

screenshot "$out/report.html" "$out/report.png"
python3 "$src/tests/check_png.py" "$out/report.png" "${colours[@]}"

# The checker must reject a page without charts: an empty page and one with only a legend-sized
# swatch of each colour.
cat >"$out/blank.html" <<'HTML'
<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<svg width="40" height="20"><line x1="0" y1="10" x2="18" y2="10" stroke="#1f77b4" stroke-width="3"/></svg>
</body></html>
HTML
screenshot "$out/blank.html" "$out/blank.png"
if python3 "$src/tests/check_png.py" "$out/blank.png" "${colours[@]}"; then
  echo "FAIL: the checker accepted a page without charts"
  exit 1
fi
echo "PASS: report.png shows the chart lines; a page without charts is rejected"
