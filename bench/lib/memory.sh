# Shared by bench/engine.sh and bench/engine-ab.sh (sourced): a daemon's resident memory, read fairly.

# evict FILE…: drops the files' pages from the page cache (posix_fadvise DONTNEED through dd's
# `nocache`), so that a daemon started next reads its binary from disk. How a binary entered the
# cache changes how many of its pages a fresh process counts (one just written or copied is all
# in the cache and faults in more around each touched page), so every peer is evicted the same
# way before its start. Pages mapped by a running process stay; missing files are skipped.
evict() {
  local f
  for f in "$@"; do
    [ -f "$f" ] && dd if="$f" iflag=nocache count=0 status=none
  done
  return 0
}

# rss PID: "VmRSS KiB (anon A, file F, shmem S)" from /proc/PID/status; the anonymous part is the
# daemon's own memory, the file part mostly its binary's code pages.
rss() {
  awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} /^RssShmem/ {s=$2}
    END {printf "%d KiB (anon %d, file %d, shmem %d)", r, a, f, s}' "/proc/$1/status"
}
