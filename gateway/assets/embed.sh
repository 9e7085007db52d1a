#!/bin/sh
# Regenerates gateway/src/screen_page_html.inc from gateway/assets/screen.html (a C++ raw
# string literal). Run after editing the page; the unit test
# ScreenPage.EmbeddedCopyMatchesAsset fails when the two differ.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
{
  printf 'R"lanegate_html('
  cat "$here/screen.html"
  printf ')lanegate_html"\n'
} > "$here/../src/screen_page_html.inc"
