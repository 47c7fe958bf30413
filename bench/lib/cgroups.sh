# Shared by the bench scripts (sourced): removal of a bench's cgroups.

# remove_cgroups NAME: kills every process left in /sys/fs/cgroup/*/NAME and below, then removes
# those cgroups deepest first. A cgroup can be removed only once the killed processes have left it
# (SIGKILL is not synchronous): retries for up to 5 s per hierarchy. NAME may end in a glob.
remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/$1; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} \; 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    for _ in $(seq 1 50); do
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
      [ -d "$d" ] || break
      sleep 0.1
    done
  done
}
