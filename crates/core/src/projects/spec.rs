//! The `MLproject` file and its entry points' parameters (api.md §8.1–8.2), read exactly as
//! MLflow reads them, plus one addition: `float` and `int` parameters are validated.

use cairn_plugin_api::projects::PythonEnv;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use yaml_serde::{Mapping, Value};

/// A project error, shown to the user as is (MLflow's `ExecutionException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProjectError(pub String);

type Result<T> = std::result::Result<T, ProjectError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(ProjectError(message.into()))
}

/// A project read from its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The project directory.
    pub dir: PathBuf,
    /// `name`, if given.
    pub name: Option<String>,
    /// The declared entry points.
    pub entry_points: BTreeMap<String, EntryPoint>,
    /// The environment, resolved in MLflow's order.
    pub env: ProjectEnv,
}

/// A project's environment (api.md §8.1, "Environment resolution order").
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectEnv {
    /// `docker_env`.
    Docker(DockerEnv),
    /// `python_env`, or a `python_env.yaml` in the root: the file.
    Python(PathBuf),
    /// `conda_env`, or a `conda.yaml` in the root: the file.
    Conda(PathBuf),
    /// Nothing declared: the current Python.
    None,
}

/// `docker_env`.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerEnv {
    /// `image`.
    pub image: String,
    /// `volumes`, as `host:container`.
    pub volumes: Vec<String>,
    /// `environment`: `NAME` (copied from the host) or `[NAME, value]`.
    pub environment: Vec<(String, Option<String>)>,
}

/// An entry point.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPoint {
    /// Its name.
    pub name: String,
    /// The command template, with `{name}` placeholders.
    pub command: String,
    /// The declared parameters, in declaration order.
    pub parameters: Vec<(String, Parameter)>,
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// `type` (`string` when not given).
    pub kind: String,
    /// `default`, as MLflow's `str()` of the YAML value; `None` if absent or null.
    pub default: Option<String>,
}

/// The file name MLflow looks for, compared lower-cased.
const MLPROJECT: &str = "mlproject";

impl Project {
    /// Reads the project in `dir`: its `MLproject` file (any case), or a project without
    /// declared entry points when there is none.
    pub fn load(dir: &Path) -> Result<Project> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ProjectError(format!(
                "cannot read the project directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let file = names.iter().find(|n| n.to_lowercase() == MLPROJECT);
        let yaml = match file {
            Some(name) => {
                let path = dir.join(name);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ProjectError(format!("cannot read {}: {e}", path.display())))?;
                let value: Value = yaml_serde::from_str(&text).map_err(|e| {
                    ProjectError(format!("{} is not valid YAML: {e}", path.display()))
                })?;
                match value {
                    Value::Mapping(m) => m,
                    Value::Null => Mapping::new(),
                    _ => return fail(format!("{} must be a YAML mapping", path.display())),
                }
            }
            None => Mapping::new(),
        };
        Project::from_yaml(dir, &yaml)
    }

    fn from_yaml(dir: &Path, yaml: &Mapping) -> Result<Project> {
        let name = yaml.get("name").and_then(scalar_string);
        let present: Vec<&str> = ["docker_env", "python_env", "conda_env"]
            .into_iter()
            .filter(|k| yaml.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        if present.len() > 1 {
            return fail(format!(
                "Project cannot contain multiple environment fields: {present:?}"
            ));
        }
        let env_file = |key: &str| -> Result<PathBuf> {
            let Some(rel) = yaml.get(key).and_then(scalar_string) else {
                return fail(format!("{key} must be a path relative to the project"));
            };
            let path = dir.join(&rel);
            if !path.is_file() {
                return fail(format!(
                    "Project specified {key} file {}, but no such file was found.",
                    path.display()
                ));
            }
            Ok(path)
        };
        let env = match present.first().copied() {
            Some("docker_env") => ProjectEnv::Docker(docker_env(&yaml["docker_env"])?),
            Some("python_env") => ProjectEnv::Python(env_file("python_env")?),
            Some("conda_env") => ProjectEnv::Conda(env_file("conda_env")?),
            _ if dir.join("python_env.yaml").is_file() => {
                ProjectEnv::Python(dir.join("python_env.yaml"))
            }
            _ if dir.join("conda.yaml").is_file() => ProjectEnv::Conda(dir.join("conda.yaml")),
            _ => ProjectEnv::None,
        };
        let mut entry_points = BTreeMap::new();
        if let Some(eps) = yaml.get("entry_points").filter(|v| !v.is_null()) {
            let Value::Mapping(eps) = eps else {
                return fail("entry_points must be a mapping of entry point names");
            };
            for (key, spec) in eps {
                let name = scalar_string(key)
                    .ok_or_else(|| ProjectError("an entry point name must be a string".into()))?;
                entry_points.insert(name.clone(), entry_point(&name, spec)?);
            }
        }
        Ok(Project {
            dir: dir.to_path_buf(),
            name,
            entry_points,
            env,
        })
    }

    /// The entry point `name`: a declared one, or a `.py`/`.sh` script (api.md §8.1).
    pub fn entry_point(&self, name: &str) -> Result<EntryPoint> {
        if let Some(ep) = self.entry_points.get(name) {
            return Ok(ep.clone());
        }
        let command = if name.ends_with(".py") {
            format!("python {}", shell_quote(name))
        } else if name.ends_with(".sh") {
            let shell = std::env::var("SHELL").unwrap_or_else(|_| "bash".into());
            format!("{shell} {}", shell_quote(name))
        } else {
            let declared: Vec<&String> = self.entry_points.keys().collect();
            return fail(format!(
                "Could not find {name} among entry points {declared:?} or interpret {name} as a \
                 runnable script. Supported script file extensions: ['.py', '.sh']"
            ));
        };
        Ok(EntryPoint {
            name: name.into(),
            command,
            parameters: Vec::new(),
        })
    }
}

fn docker_env(value: &Value) -> Result<DockerEnv> {
    let Some(image) = value.get("image").and_then(scalar_string) else {
        return fail("Docker environment specified but no image attribute found.");
    };
    let volumes = match value.get("volumes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| {
                scalar_string(v)
                    .ok_or_else(|| ProjectError("docker_env volumes must be strings".into()))
            })
            .collect::<Result<_>>()?,
        Some(_) => return fail("docker_env volumes must be a list of strings"),
    };
    let mut environment = Vec::new();
    match value.get("environment") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for item in items {
                match item {
                    Value::Sequence(pair) if pair.len() == 2 => {
                        let (Some(k), Some(v)) = (scalar_string(&pair[0]), scalar_string(&pair[1]))
                        else {
                            return fail("docker_env environment pairs must be [NAME, value]");
                        };
                        environment.push((k, Some(v)));
                    }
                    other => match scalar_string(other) {
                        Some(k) => environment.push((k, None)),
                        None => {
                            return fail(
                                "docker_env environment items must be NAME or [NAME, value]",
                            );
                        }
                    },
                }
            }
        }
        Some(_) => return fail("docker_env environment must be a list"),
    }
    Ok(DockerEnv {
        image,
        volumes,
        environment,
    })
}

fn entry_point(name: &str, spec: &Value) -> Result<EntryPoint> {
    let Some(command) = spec.get("command").and_then(scalar_string) else {
        return fail(format!("entry point {name} has no command"));
    };
    let mut parameters = Vec::new();
    match spec.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(params)) => {
            for (key, decl) in params {
                let Some(key) = scalar_string(key) else {
                    return fail(format!(
                        "entry point {name}: parameter names must be strings"
                    ));
                };
                let param = match decl {
                    // Shorthand: `name: type`.
                    Value::Mapping(full) => Parameter {
                        kind: full
                            .get("type")
                            .and_then(scalar_string)
                            .unwrap_or_else(|| "string".into()),
                        default: full.get("default").and_then(python_str),
                    },
                    other => Parameter {
                        kind: scalar_string(other).unwrap_or_else(|| "string".into()),
                        default: None,
                    },
                };
                parameters.push((key, param));
            }
        }
        Some(_) => return fail(format!("entry point {name}: parameters must be a mapping")),
    }
    Ok(EntryPoint {
        name: name.into(),
        command,
        parameters,
    })
}

/// A YAML scalar as a string (MLflow's `str()` of it); `None` for null, sequences, mappings.
fn scalar_string(v: &Value) -> Option<String> {
    python_str(v)
}

/// Python's `str()` of a YAML scalar as PyYAML loads it: `True`, `1.0`, `1e-05`.
fn python_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => python_float(f),
            _ => n.to_string(),
        }),
        Value::Tagged(t) => python_str(&t.value),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, in exponent form below 1e-4 and from
/// 1e16, with `.0` on integral values.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust: `1e-5`, `1.5e16`; Python: `1e-05`, `1.5e+16`.
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("+", exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = f.to_string();
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Python's `shlex.quote`.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    let safe = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        s.into()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

/// The parameters of one run of an entry point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedParameters {
    /// Every parameter as logged to the run: declared ones (in declaration order, the given
    /// value or the default, as given) then undeclared ones (in the order given).
    pub logged: Vec<(String, String)>,
    /// The values the command gets for declared parameters: local `path`s made absolute.
    pub values: BTreeMap<String, String>,
    /// Undeclared parameters, appended to the command as `--key value`.
    pub extra: Vec<(String, String)>,
    /// `path` parameters whose value is a remote URI, to download before rendering:
    /// (declaration index, name, URI). The download's local path replaces the value in
    /// [`ResolvedParameters::values`].
    pub downloads: Vec<(usize, String, String)>,
}

impl EntryPoint {
    /// Resolves `given` (`-P k=v`, in order) against the declared parameters: defaults,
    /// missing ones (one error naming them all), `path` and `uri` checks (relative paths
    /// against `cwd`), and — beyond MLflow — `float` and `int` values (one error listing every
    /// bad value).
    pub fn resolve(&self, given: &[(String, String)], cwd: &Path) -> Result<ResolvedParameters> {
        let lookup = |k: &str| given.iter().rev().find(|(g, _)| g == k).map(|(_, v)| v);
        let missing: Vec<String> = self
            .parameters
            .iter()
            .filter(|(k, p)| lookup(k).is_none() && p.default.is_none())
            .map(|(k, _)| format!("'{k}'"))
            .collect();
        if !missing.is_empty() {
            return fail(format!(
                "No value given for missing parameters: {}",
                missing.join(", ")
            ));
        }
        let mut out = ResolvedParameters::default();
        let mut bad = Vec::new();
        for (index, (key, param)) in self.parameters.iter().enumerate() {
            let value = lookup(key)
                .cloned()
                .or_else(|| param.default.clone())
                .unwrap_or_default();
            out.logged.push((key.clone(), value.clone()));
            let computed = match param.kind.as_str() {
                "float" => {
                    if value.trim().parse::<f64>().is_err() {
                        bad.push(format!("{key}={value:?} is not a float"));
                    }
                    value
                }
                "int" => {
                    if value.trim().parse::<i64>().is_err() {
                        bad.push(format!("{key}={value:?} is not an int"));
                    }
                    value
                }
                "uri" => {
                    if uri_scheme(&value).is_none() {
                        return fail(format!("Expected URI for parameter {key} but got {value}"));
                    }
                    value
                }
                "path" => match local_path(&value) {
                    Some(local) => {
                        let path = cwd.join(local);
                        if !path.exists() {
                            return fail(format!(
                                "Got value {value} for parameter {key}, but no such file or \
                                 directory was found."
                            ));
                        }
                        std::path::absolute(&path)
                            .unwrap_or(path)
                            .to_string_lossy()
                            .into_owned()
                    }
                    None => {
                        out.downloads.push((index, key.clone(), value.clone()));
                        value
                    }
                },
                _ => value,
            };
            out.values.insert(key.clone(), computed);
        }
        if !bad.is_empty() {
            return fail(format!("Invalid parameter values: {}", bad.join("; ")));
        }
        let mut seen = Vec::new();
        for (k, v) in given {
            if self.parameters.iter().any(|(d, _)| d == k) || seen.contains(k) {
                continue;
            }
            seen.push(k.clone());
            let v = lookup(k).cloned().unwrap_or_else(|| v.clone());
            out.logged.push((k.clone(), v.clone()));
            out.extra.push((k.clone(), v));
        }
        Ok(out)
    }

    /// The command with `params`: `{name}` placeholders replaced by the shell-quoted value
    /// (Python's `str.format`, `{{` and `}}` for braces), then ` --key value` for each
    /// undeclared parameter, both quoted.
    pub fn render(&self, params: &ResolvedParameters) -> Result<String> {
        let mut out = String::new();
        let mut chars = self.command.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    out.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    out.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => {
                                return fail(format!(
                                    "entry point {}: unmatched '{{' in command {:?}",
                                    self.name, self.command
                                ));
                            }
                        }
                    }
                    let Some(value) = params.values.get(&name) else {
                        return fail(format!(
                            "entry point {}: the command uses {{{name}}}, which is not a \
                             declared parameter",
                            self.name
                        ));
                    };
                    out.push_str(&shell_quote(value));
                }
                '}' => {
                    return fail(format!(
                        "entry point {}: single '}}' in command {:?}",
                        self.name, self.command
                    ));
                }
                c => out.push(c),
            }
        }
        for (k, v) in &params.extra {
            let _ = write!(out, " --{} {}", shell_quote(k), shell_quote(v));
        }
        Ok(out)
    }
}

/// The scheme of `uri`, if it has a non-empty one (Python's `urlparse(uri).scheme`).
fn uri_scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

/// The local path `value` names: no scheme, or `file:` with an empty host.
fn local_path(value: &str) -> Option<&str> {
    match uri_scheme(value) {
        None => Some(value),
        Some(s) if s.eq_ignore_ascii_case("file") => {
            let rest = &value[5..];
            match rest.strip_prefix("//") {
                Some(after) if after.starts_with('/') => Some(after),
                Some(_) => None,
                None => Some(rest),
            }
        }
        // A Windows drive letter is not a scheme; on Unix there are none.
        Some(_) => None,
    }
}

/// Reads a `python_env.yaml` (`python`, `build_dependencies`, `dependencies`).
pub fn read_python_env(path: &Path) -> Result<PythonEnv> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ProjectError(format!("cannot read {}: {e}", path.display())))?;
    let value: Value = yaml_serde::from_str(&text)
        .map_err(|e| ProjectError(format!("{} is not valid YAML: {e}", path.display())))?;
    let list = |key: &str| -> Result<Vec<String>> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| {
                    scalar_string(v).ok_or_else(|| {
                        ProjectError(format!("{}: {key} must be strings", path.display()))
                    })
                })
                .collect(),
            Some(_) => fail(format!("{}: {key} must be a list", path.display())),
        }
    };
    let Some(python) = value.get("python").and_then(scalar_string) else {
        return fail(format!(
            "{}: `python` (the Python version) is required",
            path.display()
        ));
    };
    Ok(PythonEnv {
        python,
        build_dependencies: list("build_dependencies")?,
        dependencies: list("dependencies")?,
    })
}

/// A conda environment file read as a `python_env` (MLflow's `_PythonEnv.from_conda_yaml`, for
/// `--env-manager virtualenv|uv` on a conda project): `python=VERSION` gives the Python version,
/// `pip`, `setuptools` and `wheel` the build dependencies (a conda `=` pin as pip's `==`), the
/// `pip:` list the dependencies; the other conda packages cannot be installed with pip and are
/// answered as the second value, for a warning.
pub fn read_conda_as_python_env(path: &Path) -> Result<(PythonEnv, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ProjectError(format!("cannot read {}: {e}", path.display())))?;
    let value: Value = yaml_serde::from_str(&text)
        .map_err(|e| ProjectError(format!("{} is not valid YAML: {e}", path.display())))?;
    let mut env = PythonEnv::default();
    let mut skipped = Vec::new();
    let deps = match value.get("dependencies") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Sequence(items)) => items.as_slice(),
        Some(_) => return fail(format!("{}: dependencies must be a list", path.display())),
    };
    for dep in deps {
        if let Some(pip) = dep.get("pip") {
            let Value::Sequence(items) = pip else {
                return fail(format!("{}: pip must be a list", path.display()));
            };
            env.dependencies = items.iter().filter_map(scalar_string).collect();
            continue;
        }
        let Some(spec) = scalar_string(dep) else {
            return fail(format!(
                "{}: a dependency must be a string or {{pip: [...]}}",
                path.display()
            ));
        };
        let name_end = spec
            .find(|c: char| "=<>!~ ".contains(c))
            .unwrap_or(spec.len());
        let (name, version) = spec.split_at(name_end);
        let version = version.trim();
        match name {
            "python" => {
                env.python = version
                    .trim_start_matches('=')
                    .trim_end_matches(".*")
                    .into();
            }
            "pip" | "setuptools" | "wheel" => {
                let pinned = match version.strip_prefix('=') {
                    Some(v) if !v.starts_with('=') => format!("{name}=={v}"),
                    _ => spec.replace(' ', ""),
                };
                env.build_dependencies.push(pinned);
            }
            _ => skipped.push(spec),
        }
    }
    Ok((env, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conda_files_read_as_python_envs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conda.yaml");
        std::fs::write(
            &path,
            "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.11.*\n  - pip=24.0\n  \
             - setuptools>=60\n  - numpy\n  - pip:\n    - scikit-learn==1.5.0\n    - mlflow\n",
        )
        .unwrap();
        let (env, skipped) = read_conda_as_python_env(&path).unwrap();
        assert_eq!(env.python, "3.11");
        assert_eq!(env.build_dependencies, ["pip==24.0", "setuptools>=60"]);
        assert_eq!(env.dependencies, ["scikit-learn==1.5.0", "mlflow"]);
        assert_eq!(skipped, ["numpy"]);
    }

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Project>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let p = Project::load(dir.path());
        (dir, p)
    }

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SPEC: &str = r#"
name: demo
entry_points:
  main:
    parameters:
      alpha: float
      l1_ratio: {type: float, default: 0.1}
      epochs: {type: int, default: 3}
      tiny: {type: float, default: 0.00001}
      flag: {default: true}
      label: {type: string, default: "a b"}
    command: "python train.py --alpha {alpha} --l1 {l1_ratio} -e {epochs} {{literal}} {label}"
  data:
    parameters:
      src: path
      where: uri
    command: "cat {src}"
"#;

    #[test]
    fn the_file_name_is_case_insensitive_and_optional() {
        for name in ["MLproject", "mlproject", "MLProject"] {
            let (_d, p) = project(&[(name, SPEC)]);
            let p = p.unwrap();
            assert_eq!(p.name.as_deref(), Some("demo"));
            assert_eq!(p.entry_points.len(), 2);
        }
        let (_d, p) = project(&[]);
        let p = p.unwrap();
        assert!(p.entry_points.is_empty());
        assert_eq!(p.env, ProjectEnv::None);
    }

    #[test]
    fn defaults_are_python_strings() {
        let (_d, p) = project(&[("MLproject", SPEC)]);
        let ep = p.unwrap().entry_point("main").unwrap();
        let defaults: Vec<_> = ep
            .parameters
            .iter()
            .map(|(k, p)| (k.as_str(), p.kind.as_str(), p.default.as_deref()))
            .collect();
        assert_eq!(
            defaults,
            [
                ("alpha", "float", None),
                ("l1_ratio", "float", Some("0.1")),
                ("epochs", "int", Some("3")),
                ("tiny", "float", Some("1e-05")),
                ("flag", "string", Some("True")),
                ("label", "string", Some("a b")),
            ]
        );
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(1.5e16), "1.5e+16");
        assert_eq!(python_float(123.25), "123.25");
    }

    #[test]
    fn rendering_quotes_values_and_appends_undeclared_parameters() {
        let (d, p) = project(&[("MLproject", SPEC)]);
        let ep = p.unwrap().entry_point("main").unwrap();
        let params = ep
            .resolve(
                &given(&[("alpha", "0.5"), ("extra key", "it's"), ("z", "1")]),
                d.path(),
            )
            .unwrap();
        assert_eq!(
            ep.render(&params).unwrap(),
            "python train.py --alpha 0.5 --l1 0.1 -e 3 {literal} 'a b' --'extra key' 'it'\"'\"'s' --z 1"
        );
        let logged: Vec<_> = params.logged.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            logged,
            [
                "alpha",
                "l1_ratio",
                "epochs",
                "tiny",
                "flag",
                "label",
                "extra key",
                "z"
            ]
        );
    }

    #[test]
    fn missing_parameters_are_all_named() {
        let (d, p) = project(&[("MLproject", SPEC)]);
        let ep = p.unwrap().entry_point("data").unwrap();
        let err = ep.resolve(&[], d.path()).unwrap_err();
        assert_eq!(
            err.0,
            "No value given for missing parameters: 'src', 'where'"
        );
    }

    #[test]
    fn bad_floats_and_ints_are_all_listed() {
        let (d, p) = project(&[("MLproject", SPEC)]);
        let ep = p.unwrap().entry_point("main").unwrap();
        let err = ep
            .resolve(&given(&[("alpha", "abc"), ("epochs", "2.5")]), d.path())
            .unwrap_err();
        assert_eq!(
            err.0,
            "Invalid parameter values: alpha=\"abc\" is not a float; epochs=\"2.5\" is not an int"
        );
        ep.resolve(&given(&[("alpha", "1e-3"), ("epochs", "-4")]), d.path())
            .unwrap();
    }

    #[test]
    fn path_and_uri_parameters() {
        let (d, p) = project(&[("MLproject", SPEC), ("data.csv", "x")]);
        let ep = p.unwrap().entry_point("data").unwrap();
        let ok = ep
            .resolve(
                &given(&[("src", "data.csv"), ("where", "s3://b/k")]),
                d.path(),
            )
            .unwrap();
        let abs = d.path().join("data.csv");
        assert_eq!(ok.values["src"], abs.to_string_lossy());
        assert_eq!(ok.logged[0], ("src".into(), "data.csv".into()));
        let file_uri = format!("file://{}", abs.display());
        let ok = ep
            .resolve(&given(&[("src", &file_uri), ("where", "x:y")]), d.path())
            .unwrap();
        assert_eq!(ok.values["src"], abs.to_string_lossy());
        let remote = ep
            .resolve(
                &given(&[("src", "s3://b/data.csv"), ("where", "x:y")]),
                d.path(),
            )
            .unwrap();
        assert_eq!(
            remote.downloads,
            [(0, "src".to_string(), "s3://b/data.csv".to_string())]
        );
        let err = ep
            .resolve(&given(&[("src", "nope.csv"), ("where", "x:y")]), d.path())
            .unwrap_err();
        assert!(err.0.contains("nope.csv"), "{err}");
        let err = ep
            .resolve(&given(&[("src", "data.csv"), ("where", "plain")]), d.path())
            .unwrap_err();
        assert_eq!(err.0, "Expected URI for parameter where but got plain");
    }

    #[test]
    fn scripts_without_a_declaration() {
        let (_d, p) = project(&[]);
        let p = p.unwrap();
        assert_eq!(
            p.entry_point("train.py").unwrap().command,
            "python train.py"
        );
        let err = p.entry_point("main").unwrap_err();
        assert!(
            err.0
                .starts_with("Could not find main among entry points []"),
            "{err}"
        );
    }

    #[test]
    fn environments_resolve_in_mlflows_order() {
        let (_d, p) = project(&[
            (
                "MLproject",
                "docker_env: {image: 'python:3.11', environment: [A, [B, '1']]}",
            ),
            ("python_env.yaml", "python: '3.11'"),
        ]);
        assert_eq!(
            p.unwrap().env,
            ProjectEnv::Docker(DockerEnv {
                image: "python:3.11".into(),
                volumes: vec![],
                environment: vec![("A".into(), None), ("B".into(), Some("1".into()))],
            })
        );
        let (d, p) = project(&[("python_env.yaml", "python: '3.11'"), ("conda.yaml", "")]);
        assert_eq!(
            p.unwrap().env,
            ProjectEnv::Python(d.path().join("python_env.yaml"))
        );
        let (d, p) = project(&[("conda.yaml", "")]);
        assert_eq!(
            p.unwrap().env,
            ProjectEnv::Conda(d.path().join("conda.yaml"))
        );
        let (_d, p) = project(&[("MLproject", "python_env: env.yaml\nconda_env: c.yaml")]);
        assert!(
            p.unwrap_err()
                .0
                .starts_with("Project cannot contain multiple environment fields")
        );
        let (_d, p) = project(&[("MLproject", "python_env: missing.yaml")]);
        assert!(p.unwrap_err().0.contains("missing.yaml"));
        let (_d, p) = project(&[("MLproject", "docker_env: {}")]);
        assert_eq!(
            p.unwrap_err().0,
            "Docker environment specified but no image attribute found."
        );
    }

    #[test]
    fn python_env_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("python_env.yaml");
        std::fs::write(
            &path,
            "python: 3.11\nbuild_dependencies: [pip]\ndependencies: [scikit-learn==1.5.0, mlflow]",
        )
        .unwrap();
        let env = read_python_env(&path).unwrap();
        assert_eq!(env.python, "3.11");
        assert_eq!(env.build_dependencies, ["pip"]);
        assert_eq!(env.dependencies, ["scikit-learn==1.5.0", "mlflow"]);
    }
}
