//! Records when the binary was built, for `infergate doctor`'s clock check: a system clock
//! earlier than the build is certainly wrong. `SOURCE_DATE_EPOCH` (reproducible builds)
//! wins over the build machine's clock. The script runs again only when it changes, so the
//! value is the first build's time in a target directory: a lower bound, which is all the
//! check needs.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let unix = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=INFERGATE_BUILD_UNIX={unix}");
}
