//! Bundles the web UI into `OUT_DIR` and generates `assets.rs`, the table `src/lib.rs` embeds.
//!
//! 1. `npm ci` when `node_modules` is missing or `package-lock.json` changed since the last
//!    install (a stamp in `node_modules` records the lock file it was installed from);
//! 2. `node build.mjs <OUT_DIR>/ui` (esbuild's API): `app-<hash>.js`, `app-<hash>.css`;
//! 3. `assets.rs`: every file with its content type, and `index.html` naming the hashed files.
//!
//! Node.js and npm must be on `PATH` (or named by `NODE` / `NPM`); when they are not, the build
//! fails with one line saying so.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    if let Err(message) = run() {
        eprintln!("error: cairn-ui: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    for path in [
        "build.rs",
        "build.mjs",
        "package.json",
        "package-lock.json",
        "web",
    ] {
        println!("cargo::rerun-if-changed={path}");
    }
    println!("cargo::rerun-if-env-changed=NODE");
    println!("cargo::rerun-if-env-changed=NPM");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_owned());
    check_tool(&node, "Node.js")?;
    check_tool(&npm, "npm")?;

    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("cannot read package-lock.json: {e}"))?;
    let want = format!("{:016x}", fnv1a(&lock));
    let stamp = dir.join("node_modules").join(".cairn-lock-stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        let status = Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("cannot run `{npm} ci`: {e}"))?;
        if !status.success() {
            return Err(format!("`{npm} ci` in {} failed ({status})", dir.display()));
        }
        std::fs::write(&stamp, &want)
            .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    }

    let ui = out.join("ui");
    let status = Command::new(&node)
        .arg("build.mjs")
        .arg(&ui)
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("cannot run `{node} build.mjs`: {e}"))?;
    if !status.success() {
        return Err(format!(
            "bundling the web UI (`{node} build.mjs`) failed ({status})"
        ));
    }
    let manifest = std::fs::read_to_string(ui.join("manifest.json"))
        .map_err(|e| format!("esbuild wrote no manifest: {e}"))?;
    let js = manifest_field(&manifest, "js")?;
    let css = manifest_field(&manifest, "css")?;
    let index = std::fs::read_to_string(dir.join("web/index.html"))
        .map_err(|e| format!("cannot read web/index.html: {e}"))?
        .replace("{{app.js}}", &js)
        .replace("{{app.css}}", &css);
    std::fs::write(ui.join("index.html"), &index).map_err(|e| e.to_string())?;

    let mut code = String::from("/// The bundled files: (name, content type, bytes).\n");
    code.push_str("pub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for (name, content_type) in [
        (js.as_str(), "text/javascript; charset=utf-8"),
        (css.as_str(), "text/css; charset=utf-8"),
    ] {
        let path = ui.join(name);
        writeln!(
            code,
            "    ({name:?}, {content_type:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .map_err(|e| e.to_string())?;
    }
    code.push_str("];\n");
    writeln!(
        code,
        "/// The page every UI route loads.\npub static INDEX_HTML: &str = include_str!({:?});",
        ui.join("index.html").display().to_string()
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(out.join("assets.rs"), code).map_err(|e| e.to_string())
}

fn check_tool(program: &str, what: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!(
            "building the web UI needs {what} (`{program}`, Node.js 20+ with npm) on PATH; \
             install it (e.g. `apt-get install nodejs npm`) or set NODE/NPM"
        )),
    }
}

fn manifest_field(manifest: &str, key: &str) -> Result<String, String> {
    let needle = format!("\"{key}\":\"");
    let start = manifest
        .find(&needle)
        .ok_or_else(|| format!("esbuild's manifest has no {key} output: {manifest}"))?
        + needle.len();
    let end = manifest[start..]
        .find('"')
        .ok_or_else(|| format!("bad manifest: {manifest}"))?;
    Ok(manifest[start..start + end].to_owned())
}

/// FNV-1a: enough to notice that the lock file changed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
