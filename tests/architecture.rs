//! The layering rule, read from the source: every module of the server
//! (`src/`) and of `loadtest` (`loadtest/src/`) uses only modules of its own
//! layer or of the layers below it, and the modules form no cycle. The layer
//! tables here are the maps in `src/lib.rs` and `loadtest/src/main.rs`; a
//! new module fails this test until it is given a layer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The server's layers, bottom first (see `src/lib.rs`).
const SERVER: &[&[&str]] = &[
    &["protocol", "auth"],
    &["ids", "inbox", "config", "tls", "client", "sched"],
    &["stats", "lifecycle", "overload", "admin"],
    &["outbox"],
    &["broadcast", "ws"],
    &["room", "plugins", "cluster", "directory", "world"],
    &["session"],
    &["server", "fuzzing"],
];

/// `loadtest`'s layers, bottom first (see `loadtest/src/main.rs`).
const LOADTEST: &[&[&str]] = &[
    &[
        "units", "schedule", "latency", "timeline", "payload", "detect", "settings", "view",
    ],
    &["procstat", "usage", "admin", "spawn"],
    &["tally", "figures", "step"],
    &["share", "bots"],
    &["workload", "progress", "workers", "runner", "findmax"],
    &["scenarios"],
    &[
        "scenarios/rooms",
        "scenarios/mmo/walk",
        "scenarios/mmo/echo",
        "scenarios/mmo/workload",
        "scenarios/mmo/enter",
        "scenarios/mmo/mover",
        "scenarios/mmo/watcher",
        "scenarios/mmo/bot",
    ],
    &[
        "scenarios/chat",
        "scenarios/plugin",
        "scenarios/slow",
        "scenarios/flood",
        "scenarios/idle",
        "scenarios/churn",
        "scenarios/slowloris",
        "scenarios/mmo",
        "scenarios/reconnect",
    ],
    &["workloads", "cli", "report", "table", "failover"],
];

#[test]
fn the_server_imports_only_downward_and_has_no_cycle() {
    check("src", SERVER);
}

#[test]
fn loadtest_imports_only_downward_and_has_no_cycle() {
    check("loadtest/src", LOADTEST);
}

/// One `use` (or inline path) of a module: who, where, and what it names.
#[derive(Debug)]
struct Import {
    file: PathBuf,
    line: usize,
    target: String,
}

/// Fails, listing every upward import and any cycle, unless `dir` (relative
/// to the workspace root) keeps the layering of `layers`.
fn check(dir: &str, layers: &[&[&str]]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let files = rust_files(&root);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&root, f)).collect();
    let layer_of = |module: &str| layer(layers, module);
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&root, file) else { continue };
        let Some(from_layer) = layer_of(&from) else {
            problems.push(format!("{}: module {from} has no layer in the table", file.display()));
            continue;
        };
        for import in imports(file, &from, &modules) {
            let Some(to_layer) = layer_of(&import.target) else {
                problems.push(format!(
                    "{}:{}: {} has no layer",
                    import.file.display(),
                    import.line,
                    import.target
                ));
                continue;
            };
            let (from_key, to_key) = (entry(layers, &from), entry(layers, &import.target));
            if from_key != to_key {
                edges.entry(from_key).or_default().insert(to_key);
            }
            if to_layer > from_layer {
                problems.push(format!(
                    "{}:{}: {from} (layer {}) imports {} (layer {}), a layer above it",
                    import.file.display(),
                    import.line,
                    from_layer + 1,
                    import.target,
                    to_layer + 1
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        problems.push(format!("the modules form a cycle: {}", cycle.join(" -> ")));
    }
    assert!(
        problems.is_empty(),
        "layering broken in {dir}:\n{}",
        problems.join("\n")
    );
}

/// The layer (0 = bottom) of `module`: that of the longest table entry that
/// is the module or one of its ancestors.
fn layer(layers: &[&[&str]], module: &str) -> Option<usize> {
    let key = entry(layers, module);
    layers.iter().position(|layer| layer.contains(&key.as_str()))
}

/// The table entry `module` falls under (itself or its nearest listed ancestor).
fn entry(layers: &[&[&str]], module: &str) -> String {
    let listed = |m: &str| layers.iter().any(|layer| layer.contains(&m));
    let mut candidate = module;
    loop {
        if listed(candidate) {
            return candidate.to_owned();
        }
        match candidate.rsplit_once('/') {
            Some((parent, _)) => candidate = parent,
            None => return module.to_owned(),
        }
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The module path of a file (`session/rooms.rs` is `session/rooms`,
/// `session/mod.rs` is `session`); `None` for the crate root.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).ok()?.with_extension("");
    let path = relative.to_string_lossy().replace('\\', "/");
    let path = path.strip_suffix("/mod").unwrap_or(&path).to_owned();
    (!matches!(path.as_str(), "lib" | "main")).then_some(path)
}

/// Every module `file` (module `me`) names through `crate::`, `super::` or
/// `self::` paths, resolved to the modules in `modules`.
fn imports(file: &Path, me: &str, modules: &BTreeSet<String>) -> Vec<Import> {
    let source = std::fs::read_to_string(file).unwrap();
    let mut found = Vec::new();
    let mut inline_depths: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    for (n, raw) in source.lines().enumerate() {
        let line = code_of(raw);
        let opens_module = line.trim_start().starts_with("mod ") || line.contains(" mod ");
        if opens_module && line.trim_end().ends_with('{') {
            inline_depths.push(depth);
        }
        for path in paths_in(&line) {
            let inline = inline_depths.len();
            let Some(absolute) = resolve(me, &path, inline) else {
                continue;
            };
            if let Some(target) = deepest_module(&absolute, modules)
                && target != me
                && !target.starts_with(&format!("{me}/"))
                && !me.starts_with(&format!("{target}/"))
            {
                found.push(Import {
                    file: file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(file).to_owned(),
                    line: n + 1,
                    target,
                });
            }
        }
        for c in line.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if inline_depths.last() == Some(&depth) {
                        inline_depths.pop();
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// A line without its comment, string literals and brace characters.
fn code_of(line: &str) -> String {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return String::new();
    }
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, '\'') if matches!(chars.peek(), Some('{' | '}')) => {
                chars.next();
            }
            (false, c) => out.push(c),
        }
    }
    out
}

/// The paths in a line of code that start at `crate`, `super` or `self`,
/// each expanded from its `{…}` groups into whole paths (segments joined by `::`).
fn paths_in(line: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let bytes = line.as_bytes();
    for keyword in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(found) = line[from..].find(keyword) {
            let start = from + found;
            from = start + keyword.len();
            let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let nested = start >= 2 && &line[start - 2..start] == "::";
            if preceded || nested {
                continue;
            }
            paths.extend(expand(&line[start..]));
        }
    }
    paths
}

/// Expands the use tree at the start of `text` (`a::b::{c, d::e}`) into paths.
fn expand(text: &str) -> Vec<String> {
    let mut prefix = String::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        prefix.push_str(&rest[..end]);
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix("::") {
            prefix.push_str("::");
            rest = after;
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..matching_brace(group)];
                return split_top_level(inner)
                    .into_iter()
                    .flat_map(|item| expand(item.trim()))
                    .map(|tail| format!("{prefix}{tail}"))
                    .collect();
            }
        } else {
            return vec![prefix];
        }
    }
}

/// The index of the `}` closing a group whose `{` was just before `text`.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items.into_iter().filter(|item| !item.trim().is_empty()).collect()
}

/// The path `path`, written in module `me` inside `inline` nested inline
/// modules, as segments from the crate root; `None` when it stays within the file.
fn resolve(me: &str, path: &str, inline: usize) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = me.split('/').map(str::to_owned).collect();
    match segments.first().copied() {
        Some("crate") => {
            base.clear();
            segments.remove(0);
        }
        Some("self") => {
            if inline > 0 {
                return None;
            }
            segments.remove(0);
        }
        Some("super") => {
            let ups = segments.iter().take_while(|s| **s == "super").count();
            if ups <= inline {
                return None;
            }
            for _ in 0..ups - inline {
                base.pop();
            }
            segments.drain(..ups);
        }
        _ => return None,
    }
    base.extend(segments.into_iter().map(str::to_owned));
    Some(base)
}

/// The longest prefix of `segments` that is a module of the crate.
fn deepest_module(segments: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("/"))
        .find(|candidate| modules.contains(candidate))
}

/// A cycle in `edges`, if there is one, as the modules along it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}
