//! Points the agent at the eBPF object built by `cargo xtask build-ebpf`, which it embeds.
//! There is one way to build the object (xtask); this script only finds it.
//!
//! Without the object (a laptop with no nightly or bpf-linker), an empty stub is embedded
//! instead, as aya's template does: `cargo check`, `clippy` and the pure unit tests work,
//! and a datapath load fails with a clear error naming the missing build step.
use std::path::PathBuf;

fn main() {
    let obj = match std::env::var_os("XVRRPD_EBPF_OBJ") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/ebpf/bpfel-unknown-none/release/xvrrpd"),
    };
    println!("cargo:rerun-if-env-changed=XVRRPD_EBPF_OBJ");
    println!("cargo:rerun-if-changed={}", obj.display());
    let obj = if obj.exists() {
        obj.canonicalize().expect("canonicalize eBPF object path")
    } else {
        println!(
            "cargo:warning=the XDP object {} is missing: embedding an empty stub (run \
             `cargo xtask build-ebpf` for a working datapath)",
            obj.display()
        );
        let stub = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("xvrrpd.stub");
        std::fs::write(&stub, b"").expect("writing the eBPF stub");
        stub
    };
    println!("cargo:rustc-env=XVRRPD_EBPF_OBJ_PATH={}", obj.display());
}
