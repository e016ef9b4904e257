// Link libpam by its runtime soname (libpam.so.0), present on every Linux-PAM system, so neither
// this machine nor the aarch64 cross build needs the libpam0g-dev symlink. Linking it (rather than
// leaving pam_* undefined for the loading program to supply) keeps the module loadable from
// programs that open libpam with RTLD_LOCAL.
fn main() {
    println!("cargo:rustc-link-lib=dylib:+verbatim=libpam.so.0");
}
