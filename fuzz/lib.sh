# shellcheck shell=bash disable=SC2034 # fuzz, LIBFUZZER_ARGS: used by the sourcing script
# Sourced by fuzz/run, fuzz/smoke and fuzz/seed: how to call cargo-fuzz here.
#
# cargo-fuzz passes -Z flags (the sanitizer) to rustc. A nightly toolchain cannot be
# downloaded on every machine that runs these, so the stable one that builds the project
# does it, with RUSTC_BOOTSTRAP=1; scripts/setup installs cargo-fuzz itself.
command -v cargo-fuzz >/dev/null || {
  echo "fuzz: cargo-fuzz is not installed (run scripts/setup)" >&2
  exit 1
}
export RUSTC_BOOTSTRAP=1
fuzz=(nice -n 10 cargo fuzz)
# Every run: a bound on memory, and no leak reports for the process-wide caches of
# once-initialised statics.
LIBFUZZER_ARGS=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -detect_leaks=0 -print_final_stats=1)
