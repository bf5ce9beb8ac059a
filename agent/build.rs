//! Points the agent at the eBPF object built by `cargo xtask build-ebpf`, which it embeds.
//! There is one way to build the object (xtask); this script only finds it.
use std::path::PathBuf;

fn main() {
    let obj = match std::env::var_os("XVRRPD_EBPF_OBJ") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/ebpf/bpfel-unknown-none/release/xvrrpd"),
    };
    println!("cargo:rerun-if-env-changed=XVRRPD_EBPF_OBJ");
    println!("cargo:rerun-if-changed={}", obj.display());
    if !obj.exists() {
        panic!(
            "the XDP object {} is missing: run `cargo xtask build-ebpf` first \
             (or `cargo xtask test`, which builds it), or set XVRRPD_EBPF_OBJ",
            obj.display()
        );
    }
    let obj = obj.canonicalize().expect("canonicalize eBPF object path");
    println!("cargo:rustc-env=XVRRPD_EBPF_OBJ_PATH={}", obj.display());
}
