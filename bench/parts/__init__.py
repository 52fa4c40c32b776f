"""The parts, in the order they run and appear: each module has NUMBER, NAME (for --only), TITLE (its entry in
the document) and POOL; run(ctx) for the local parts, run(ctx, sb) and WHAT (its "not measured" row) for those
that need the real-pool sandbox."""

from . import part1_prepare_warm, part2_cache_fill, part3_boot_storm, part4_launch, part5_api_listing, part6_failures

PARTS = (part1_prepare_warm, part2_cache_fill, part3_boot_storm, part4_launch, part5_api_listing, part6_failures)
BY_NUMBER = {p.NUMBER: p for p in PARTS}
NAMES = {p.NAME: p.NUMBER for p in PARTS}
