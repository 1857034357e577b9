//! Python environments of the local backend: a `python_env.yaml` built with `venv` + `pip`
//! (`virtualenv`) or `uv`, once per content hash, under `<storage dir>/envs/`, and reused.
//!
//! The build runs inside the run's own process group, as the first part of its command (a
//! shell script that takes a lock directory, builds the environment unless it is marked
//! ready, and `exec`s the entry point with the environment's `bin` first on the `PATH`): so
//! its output (pip's errors included) is the run's output, a failed build fails the run, and
//! cancelling the run stops the build. Runs that need the same environment at once wait for
//! the first to build it; a lock left by a builder that died is taken over.

use cairn_plugin_api::projects::{PythonEnv, PythonEnvManager};
use cairn_plugin_api::{Error, Result};
use std::path::Path;

/// `$1` env dir, `$2` manager, `$3` Python version, `$4` build requirements file, `$5`
/// requirements file, then the command.
const BUILD: &str = r#"set -e
env="$1"; manager="$2"; ver="$3"; build="$4"; reqs="$5"; shift 5
lock="$env.lock"
while ! mkdir "$lock" 2>/dev/null; do
    pid=$(cat "$lock/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$lock"; continue; fi
    sleep 1
done
echo $$ > "$lock/pid"
trap 'rm -rf "$lock"' EXIT
if [ ! -f "$env/.cairn-ready" ]; then
    rm -rf "$env"
    echo "=== Creating the Python environment $env ($manager, Python ${ver:-any}) ==="
    if [ "$manager" = uv ]; then
        command -v uv >/dev/null 2>&1 || { echo "cairn: --env-manager uv needs the uv executable on the PATH" >&2; exit 127; }
        uv venv --quiet ${ver:+--python "$ver"} "$env"
        if [ -s "$build" ]; then uv pip install --python "$env/bin/python" -r "$build"; fi
        if [ -s "$reqs" ]; then uv pip install --python "$env/bin/python" -r "$reqs"; fi
    else
        py=""
        for c in "python$ver" python3 python; do
            if command -v "$c" >/dev/null 2>&1 && WANTED="$ver" "$c" -c "import os, sys; w = os.environ['WANTED']; v = '%d.%d.%d.' % sys.version_info[:3]; sys.exit(0 if not w or v.startswith(w + '.') else 1)" 2>/dev/null; then py="$c"; break; fi
        done
        if [ -z "$py" ]; then
            echo "cairn: no Python $ver on the PATH (tried python$ver, python3, python); install it, or use --env-manager uv (which downloads Python) or local" >&2
            exit 127
        fi
        "$py" -m venv "$env"
        if [ -s "$build" ]; then "$env/bin/python" -m pip install --disable-pip-version-check -r "$build"; fi
        if [ -s "$reqs" ]; then "$env/bin/python" -m pip install --disable-pip-version-check -r "$reqs"; fi
    fi
    touch "$env/.cairn-ready"
fi
rm -rf "$lock"; trap - EXIT
VIRTUAL_ENV="$env"; PATH="$env/bin:$PATH"; export VIRTUAL_ENV PATH
exec "$@""#;

/// FNV-1a, 64 bits: a stable content hash (not a security boundary).
fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The argv prefix that builds (or reuses) `spec`'s environment under `storage_dir` and runs
/// the command after it in that environment.
pub fn python_env(
    storage_dir: &Path,
    spec: &PythonEnv,
    manager: PythonEnvManager,
) -> Result<Vec<String>> {
    let manager = match manager {
        PythonEnvManager::Virtualenv => "virtualenv",
        PythonEnvManager::Uv => "uv",
    };
    let content = serde_json::json!([manager, spec]).to_string();
    let name = format!("{manager}-{:016x}", fnv(&content));
    let envs = std::path::absolute(storage_dir.join("envs"))
        .map_err(|e| Error::internal(format!("cannot resolve the storage directory: {e}")))?;
    let files = envs.join(format!("{name}.spec"));
    std::fs::create_dir_all(&files)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", files.display())))?;
    let write = |file: &str, lines: &[String]| -> Result<String> {
        let path = files.join(file);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let tmp = files.join(format!("{file}.{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
        Ok(path.to_string_lossy().into_owned())
    };
    let build = write("build-requirements.txt", &spec.build_dependencies)?;
    let reqs = write("requirements.txt", &spec.dependencies)?;
    Ok(vec![
        "sh".into(),
        "-c".into(),
        BUILD.into(),
        "cairn-env".into(),
        envs.join(name).to_string_lossy().into_owned(),
        manager.into(),
        spec.python.clone(),
        build,
        reqs,
    ])
}
