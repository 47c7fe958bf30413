//! The `skiff` executable is linked at a fixed address (not position-independent): a PIE has
//! ~45,000 relative relocations to apply at every start, writing (and so copying) each page of
//! `.data.rel.ro`, which costs every `skiff` command about a millisecond. runc, containerd and
//! the docker CLI ship the same way. docs/adr/0007-non-pie-executable.md has the measurements.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=skiff=-no-pie");
    }
}
