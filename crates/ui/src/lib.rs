//! Cairn's web UI, bundled at build time (see `build.rs`) and embedded here: the server
//! (`cairn-core`'s `server::ui`) serves [`INDEX_HTML`] at `/` and each of [`ASSETS`] under
//! `/static-files/<name>`; names carry a content hash, so they can be cached forever.

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The bundled file called `name`: its content type and bytes.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, body)| (*content_type, *body))
}
