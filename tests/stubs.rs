//! The editor stubs (runtime_lua/meta/, `luna --stubs DIR`) against the real
//! API: every public name a luna process has at run time must have a stub,
//! and every name a stub promises must exist, so the two cannot drift apart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{Dir, Luna, run_to_end, test_script};

/// Which stub class describes each object the enumeration script prints
/// (tests/scripts/stubs/enumerate.lua). "_G" is the globals of the stubs.
const OBJECTS: &[(&str, &str)] = &[
    ("globals", "_G"),
    ("luna", "luna"),
    ("log", "luna.log"),
    ("timer_handle", "luna.TimerHandle"),
    ("mgr", "luna.Manager"),
    ("listener", "luna.Listener"),
    ("stream", "luna.Stream"),
    ("raw_stream", "luna.RawStream"),
    ("redis_stream", "luna.RedisStream"),
    ("rpc", "luna.rpc"),
    ("rpc_timeout", "luna.rpc.Caller"),
    ("cluster", "luna.cluster"),
    ("node", "luna.Node"),
    ("node_timeout", "luna.cluster.Calls"),
    ("router", "luna.router"),
    ("router_object", "luna.Router"),
    ("redis", "luna.redis"),
    ("redis_client", "luna.redis.Client"),
    ("discovery", "luna.discovery"),
    ("discovery_object", "luna.Discovery"),
    ("lease", "luna.Lease"),
    ("metrics", "luna.metrics"),
    ("counter", "luna.metrics.Counter"),
    ("gauge", "luna.metrics.Gauge"),
    ("histogram", "luna.metrics.Histogram"),
    ("console", "luna.console"),
    ("import", "luna.import"),
];

/// The stub classes whose fields are the callbacks the core calls on sockets.
const SOCKET_CLASSES: &[&str] = &["luna.Listener", "luna.Stream", "luna.RawStream", "luna.RedisStream"];

fn meta_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime_lua/meta")
}

/// Every file under `dir`, as (path relative to `dir` with `/`, contents).
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir");
                let name = relative.to_str().expect("utf-8 name").replace('\\', "/");
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                files.insert(name, text);
            }
        }
    }
    files
}

/// One stub class: its documented names (true when optional: `name?`, may
/// be absent at run time) and its parent classes.
#[derive(Default, Debug)]
struct Class {
    names: BTreeMap<String, bool>,
    parents: Vec<String>,
}

/// The classes the stub files document, by name; "_G" holds the globals.
struct Stubs {
    classes: BTreeMap<String, Class>,
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Stubs {
    /// Parses the stub files. Understood: `---@class Name[: Parent, ...]`,
    /// the `---@field [scope] name[?] type` lines right after it, and the
    /// top-level code of a meta file: `local X = {}` / `X = {}` right after a
    /// class (X stands for that class), `function X.name(`, `X.name = `,
    /// `function name(` and `name = ` (globals). Anything else is an error,
    /// so a stub written in another style cannot be silently skipped.
    fn parse(files: &BTreeMap<String, String>) -> Stubs {
        let mut classes: BTreeMap<String, Class> = BTreeMap::new();
        classes.insert("_G".into(), Class::default());
        let mut errors = Vec::new();
        for (file, text) in files {
            let mut fields_of: Option<String> = None; // the class `---@field` lines belong to
            let mut unbound: Option<String> = None; // the class the next assignment names
            let mut vars: BTreeMap<String, String> = BTreeMap::new(); // variable -> class
            for (number, line) in text.lines().enumerate() {
                let at = format!("{file}:{}", number + 1);
                let line = line.trim_end();
                if let Some(rest) = line.strip_prefix("---@class ") {
                    let (name, parents) = rest.split_once(':').unwrap_or((rest, ""));
                    let name = name.split_whitespace().next().unwrap_or_default().to_string();
                    let class = classes.entry(name.clone()).or_default();
                    class.parents.extend(
                        parents
                            .split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(String::from),
                    );
                    fields_of = Some(name.clone());
                    unbound = Some(name);
                } else if let Some(rest) = line.strip_prefix("---@field ") {
                    let mut words = rest.split_whitespace().peekable();
                    if words
                        .peek()
                        .is_some_and(|w| ["public", "private", "protected", "package"].contains(w))
                    {
                        words.next();
                    }
                    let word = words.next().unwrap_or_default();
                    if word.starts_with('[') {
                        continue; // an index type ([integer] any), not a name
                    }
                    let name = word.trim_end_matches('?');
                    match &fields_of {
                        Some(class) => {
                            let entry = classes.get_mut(class).expect("class exists");
                            entry.names.insert(name.to_string(), word.ends_with('?'));
                        }
                        None => errors.push(format!("{at}: @field {name} is not right after a @class")),
                    }
                } else if line.is_empty() || line.starts_with("--") {
                    continue;
                } else if line.starts_with("return ") {
                    fields_of = None;
                } else if let Some(rest) = line.strip_prefix("local ") {
                    let var = rest.split([' ', '=']).next().unwrap_or_default();
                    match unbound.take() {
                        Some(class) if is_identifier(var) => {
                            vars.insert(var.to_string(), class);
                        }
                        _ => errors.push(format!("{at}: a local that names no class: {line}")),
                    }
                    fields_of = None;
                } else {
                    let declared = line.strip_prefix("function ").map_or_else(
                        || line.split_once(" = ").map(|(target, _)| target.trim()),
                        |rest| rest.split_once('(').map(|(target, _)| target.trim()),
                    );
                    let Some(target) = declared else {
                        errors.push(format!("{at}: not understood: {line}"));
                        continue;
                    };
                    match target.split_once('.') {
                        Some((var, name)) if is_identifier(name) => match vars.get(var) {
                            Some(class) => {
                                let entry = classes.get_mut(class).expect("class exists");
                                entry.names.insert(name.to_string(), false);
                            }
                            None => errors.push(format!("{at}: `{var}` names no class: {line}")),
                        },
                        None if is_identifier(target) => {
                            classes
                                .get_mut("_G")
                                .expect("_G")
                                .names
                                .insert(target.to_string(), false);
                            if let Some(class) = unbound.take() {
                                vars.insert(target.to_string(), class);
                            }
                        }
                        _ => errors.push(format!("{at}: not understood: {line}")),
                    }
                    fields_of = None;
                    unbound = None;
                }
            }
        }
        assert!(errors.is_empty(), "the stub files do not parse:\n{}", errors.join("\n"));
        Stubs { classes }
    }

    /// Every name of a class with its parents' (optional if optional where found first).
    fn names_of(&self, class: &str) -> BTreeMap<String, bool> {
        let mut names = BTreeMap::new();
        let mut stack = vec![class.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(class) = self.classes.get(&name) else {
                panic!("the stubs have no class {name} (a parent of {class}?)");
            };
            for (field, optional) in &class.names {
                names.entry(field.clone()).or_insert(*optional);
            }
            stack.extend(class.parents.iter().cloned());
        }
        names
    }
}

/// Runs the enumeration script: object -> its public names at run time.
fn runtime_api() -> BTreeMap<String, BTreeSet<String>> {
    let script = test_script("stubs/enumerate.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("DONE");
    let status = luna.wait_exit();
    assert!(status.success(), "the enumeration failed: {status}\n{}", luna.stderr());
    let mut objects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in luna.stdout() {
        let mut words = line.split_whitespace();
        if words.next() != Some("API") {
            continue;
        }
        let (Some(object), Some(name)) = (words.next(), words.next()) else {
            panic!("bad line from the enumeration: {line}");
        };
        objects.entry(object.to_string()).or_default().insert(name.to_string());
    }
    objects
}

#[test]
fn stubs_flag_writes_the_repo_files() {
    let dir = Dir::new();
    let out = dir.path("editor/meta");
    let (code, stdout, stderr) = run_to_end(dir.dir.path(), &["--stubs", out.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let written = read_tree(&out);
    let repo = read_tree(&meta_dir());
    assert!(stdout.contains(&format!("wrote {} stub files", repo.len())), "{stdout}");
    let written_names: BTreeSet<_> = written.keys().collect();
    let repo_names: BTreeSet<_> = repo.keys().collect();
    assert_eq!(
        written_names, repo_names,
        "`luna --stubs` must write exactly runtime_lua/meta/ (add new files to STUBS in src/lua/stubs.rs)"
    );
    for (name, text) in &repo {
        assert!(
            written[name] == *text,
            "{name}: `luna --stubs` wrote other contents than runtime_lua/meta/{name}"
        );
    }
    // Writing again over existing files works too.
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["--stubs", out.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn every_runtime_name_has_a_stub_and_every_stub_exists() {
    let stubs = Stubs::parse(&read_tree(&meta_dir()));
    let runtime = runtime_api();
    let mapping: BTreeMap<&str, &str> = OBJECTS.iter().copied().collect();
    let mut problems = Vec::new();
    for object in runtime.keys() {
        if !mapping.contains_key(object.as_str()) {
            problems.push(format!(
                "the enumeration prints object `{object}`, which OBJECTS in tests/stubs.rs maps to no stub class"
            ));
        }
    }
    for (object, class) in OBJECTS {
        let Some(names) = runtime.get(*object) else {
            problems.push(format!("the enumeration printed nothing for `{object}` ({class})"));
            continue;
        };
        let documented = stubs.names_of(class);
        let missing: Vec<_> = names.iter().filter(|name| !documented.contains_key(*name)).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "`{object}` has names without a stub in class {class} (runtime_lua/meta/): {}",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if *class == "_G" {
            continue; // the hooks are the entry's to define, not there at run time
        }
        let stale: Vec<_> = documented
            .iter()
            .filter(|(name, optional)| !**optional && !names.contains(*name))
            .map(|(name, _)| name.as_str())
            .collect();
        if !stale.is_empty() {
            problems.push(format!(
                "class {class} documents names `{object}` does not have (mark a field that may be nil `name?`): {}",
                stale.join(", ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "stubs and runtime differ:\n{}",
        problems.join("\n")
    );
}

/// The identifiers that follow `prefix` in `text` (up to `end`, if given).
fn names_after(text: &str, prefix: &str, end: Option<char>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let closed = end.is_none_or(|end| rest[name.len()..].starts_with(end));
        if !name.is_empty() && closed {
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_hook_and_socket_callback_has_a_stub() {
    let stubs = Stubs::parse(&read_tree(&meta_dir()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The entry hooks and flags the runtime looks up (runtime_lua/entry.lua).
    let entry = std::fs::read_to_string(root.join("runtime_lua/entry.lua")).expect("entry.lua");
    let mut hooks = names_after(&entry, "entry_env.", None);
    hooks.extend(names_after(&entry, "lookup(\"", Some('"')));
    assert!(
        hooks.contains("on_start") && hooks.contains("on_quit_signal"),
        "{hooks:?}"
    );
    let globals = stubs.names_of("_G");
    let missing: Vec<_> = hooks.iter().filter(|h| !globals.contains_key(*h)).collect();
    assert!(missing.is_empty(), "entry hooks without a global stub: {missing:?}");
    // The callbacks the core calls on sockets (src/lua/dispatch.rs).
    let dispatch = std::fs::read_to_string(root.join("src/lua/dispatch.rs")).expect("dispatch.rs");
    let callbacks = names_after(&dispatch, "c\"on_", Some('"'));
    assert!(
        callbacks.contains("call") && callbacks.contains("accept"),
        "{callbacks:?}"
    );
    let documented: BTreeSet<String> = SOCKET_CLASSES
        .iter()
        .flat_map(|class| stubs.names_of(class).into_keys())
        .collect();
    let missing: Vec<_> = callbacks
        .iter()
        .map(|c| format!("on_{c}"))
        .filter(|c| !documented.contains(c))
        .collect();
    assert!(missing.is_empty(), "socket callbacks without a stub: {missing:?}");
}

#[test]
fn stub_files_compile() {
    let files: Vec<String> = read_tree(&meta_dir())
        .keys()
        .map(|name| meta_dir().join(name).to_str().expect("utf-8").to_string())
        .collect();
    assert!(files.len() > 5, "{files:?}");
    let mut args = vec!["--check"];
    args.extend(files.iter().map(String::as_str));
    let (code, _, stderr) = run_to_end(&meta_dir(), &args);
    assert_eq!(code, 0, "luna --check failed on the stubs:\n{stderr}");
}
