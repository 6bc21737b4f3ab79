//! Build script of burrow-store: the migrations are embedded by
//! `sqlx::migrate!`, so a change to them rebuilds the crate.

fn main() {
    // The migrations are embedded by `sqlx::migrate!`: rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
}
