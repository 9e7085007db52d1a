#!/bin/sh
# Regenerates invoice/src/claim_page_html.inc from invoice/assets/claim.html (a C++ raw
# string literal). Run after editing the page; the unit test ClaimPage.EmbeddedCopyMatchesAsset
# fails when the two differ.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
{
  printf 'R"lanegate_html('
  cat "$here/claim.html"
  printf ')lanegate_html"\n'
} > "$here/../src/claim_page_html.inc"
