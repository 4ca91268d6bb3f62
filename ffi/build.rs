//! Gives `libclip.so` its versioned soname, `libclip.so.0` (the ABI major
//! version, `CLIP_ABI_VERSION` in `include/clip.h`), so that programs linked
//! against it keep working across compatible upgrades.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libclip.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
