//! The global allocator of everything `skiff` runs: jemalloc rather than glibc's malloc
//! (docs/adr/0043), with its settings. A `skiff server` holding 10,000 pods keeps millions
//! of small objects, and glibc's per-chunk header, size rounding and partly used pages held
//! ~9 MiB more of them (API bench). C code linked in (SQLite, zstd) still uses glibc's
//! malloc.
//!
//! The binary links it (`use skiff_alloc as _;`), and so do the benchmarks that claim to
//! measure what the binary does with the library crates (the scheduler's throughput bench
//! runs the API server and the scheduler in its own process): linking this crate is all it
//! takes, so both allocate alike. It owns nothing else.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation (`_RJEM_MALLOC_CONF` in the environment
/// overrides them): two arenas, as glibc is capped for servers (a shim or a CLI uses one);
/// freed pages go back to the kernel after one second (default ten), and at once rather than
/// through `MADV_FREE`, whose pages count as resident until the kernel needs them.
/// The symbol is C's `const char *malloc_conf`, hence a thin pointer to the first byte;
/// jemalloc's own definition is weak, so this one wins wherever the crate is linked.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &u8 = &b"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];
