//! Cairn's SQLite tracking store (`cairn-store-sqlite`) as a dynamic plugin library.
//!
//! The store itself is unchanged: it needs no async runtime (its SQLite work runs on its own
//! threads), so the same factory a built-in registers is exported through the stable ABI.
//! Cairn's tests load this library to run the tracking conformance suite through the ABI and
//! to check that a library claiming the built-in `sqlite` scheme is refused; its benchmark
//! compares `log_batch` through the ABI with the store linked natively.

cairn_plugin_api::export_plugins! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        TrackingStore(cairn_store_sqlite::build_tracking_store) as "sqlite",
    ],
}
