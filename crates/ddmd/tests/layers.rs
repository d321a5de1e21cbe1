//! The service's modules import one way: down the layers below, never up,
//! and no module imports, directly or through others, one that imports it.
//!
//! Read from the source as a newcomer reads it: every `crate::` and
//! `super::` path outside the test modules is an import of the file it
//! names (the longest module path that is a file). A file may use its own
//! ancestors' items (`super::`); the rest must point down this list, or
//! stay within its own top-level module without a circle. Run it alone
//! with `cargo test -p ddmd --test layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// From the top (what starts the service) to the bottom (what everything
/// may use). A module may import its own layer's and the layers below.
const LAYERS: &[&[&str]] = &[
    &["lib", "daemon", "in_process"],
    &["service"],
    &["config"],
    &["clients"],
    &["router"],
    &["dial"],
    &["health", "groups"],
    &["core"],
    &["links"],
    &["record", "ops"],
    &["bounds", "sockets"],
];

type Module = Vec<String>;

fn name(module: &Module) -> String {
    if module.is_empty() {
        "lib".into()
    } else {
        module.join("::")
    }
}

fn layer(module: &Module) -> usize {
    let top = name(module);
    let top = top.split("::").next().unwrap_or("lib");
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or_else(|| panic!("module {top} is in no layer: add it to LAYERS"))
}

/// Every .rs file under `dir`, by module path, and whether it is a
/// directory's own file (lib.rs, mod.rs).
fn files(src: &Path, dir: &Path, found: &mut BTreeMap<Module, (PathBuf, bool)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(src, &path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap().with_extension("");
        let mut module: Module = relative
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let own = matches!(module.last().map(String::as_str), Some("mod" | "lib"));
        if own {
            module.pop();
        }
        found.insert(module, (path, own));
    }
}

/// The paths a file names: `crate::a::b` and `super::a`, groups
/// (`crate::a::{b, c::d}`) spread out, comments and test modules left out.
fn named_paths(text: &str) -> Vec<(String, Vec<String>)> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .map(|line| line.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut paths = Vec::new();
    for start in ["crate::", "super::"] {
        let kind = &start[..start.len() - 2];
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let begin = from + at;
            from = begin + start.len();
            if begin > 0 && (bytes[begin - 1].is_ascii_alphanumeric() || bytes[begin - 1] == b'_') {
                continue;
            }
            let rest = &code[from..];
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut segments: Vec<String> = head
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if rest[head.len()..].starts_with('{') {
                let group = &rest[head.len() + 1..];
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    // A nested group names its module: that is enough to
                    // find the file.
                    let item = item.split(" as ").next().unwrap();
                    let item = item
                        .split('{')
                        .next()
                        .unwrap()
                        .trim()
                        .trim_end_matches("::");
                    let mut path = segments.clone();
                    if item != "self" {
                        path.extend(
                            item.split("::")
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned),
                        );
                    }
                    paths.push((kind.to_owned(), path));
                }
            } else {
                if segments.is_empty() {
                    continue;
                }
                // `super::super::x` starts with more supers.
                while kind == "super" && segments.first().is_some_and(|s| s == "super") {
                    segments.remove(0);
                    paths.push(("super".into(), Vec::new()));
                }
                paths.push((kind.to_owned(), segments));
            }
        }
    }
    paths
}

/// The file a path names: its longest prefix that is a module file.
fn resolve(path: &[String], modules: &BTreeMap<Module, (PathBuf, bool)>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains_key(m))
        .unwrap_or_default()
}

fn imports() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    files(&src, &src, &mut modules);
    let mut edges = BTreeMap::new();
    for (module, (path, own)) in &modules {
        let text = std::fs::read_to_string(path).unwrap();
        // Where `super` points: a directory's own file's parent, or the
        // parent of the module a plain file is.
        let parent: Module = if *own || module.is_empty() {
            module[..module.len().saturating_sub(1)].to_vec()
        } else {
            module[..module.len() - 1].to_vec()
        };
        let mut targets = BTreeSet::new();
        for (kind, segments) in named_paths(&text) {
            let full: Vec<String> = if kind == "crate" {
                segments
            } else {
                parent.iter().cloned().chain(segments).collect()
            };
            let target = resolve(&full, &modules);
            let descendant = target.len() > module.len() && target.starts_with(module);
            if &target != module && !descendant {
                targets.insert(target);
            }
        }
        edges.insert(module.clone(), targets);
    }
    edges
}

#[test]
fn every_import_points_down_the_layers() {
    let mut upward = Vec::new();
    for (module, targets) in imports() {
        for target in targets {
            let ancestor = target.len() < module.len() && module.starts_with(&target);
            if !ancestor && layer(&target) < layer(&module) {
                upward.push(format!("{} -> {}", name(&module), name(&target)));
            }
        }
    }
    assert!(upward.is_empty(), "imports that run back up: {upward:#?}");
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let edges = imports();
    // Every module reachable from each; a module that reaches itself is
    // in a circle.
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut next: Vec<&Module> = edges[start].iter().collect();
        while let Some(module) = next.pop() {
            if module == start {
                circles.push(name(start));
                break;
            }
            if seen.insert(module) {
                next.extend(edges.get(module).into_iter().flatten());
            }
        }
    }
    assert!(circles.is_empty(), "modules in a circle: {circles:?}");
}

#[test]
fn the_reader_finds_imports_in_every_form() {
    let text = "use crate::core::table::Transition;\n\
                use crate::{links::LinkState, ops::metrics::{Counters}};\n\
                use super::{Call, Handler as H};\n\
                // use crate::service;\n\
                fn f() { crate::dial::sleep_until(x); }\n\
                #[cfg(test)]\nmod tests { use crate::router::Router; }";
    let named: Vec<String> = named_paths(text)
        .into_iter()
        .map(|(kind, path)| format!("{kind}:{}", path.join("::")))
        .collect();
    for expected in [
        "crate:core::table::Transition",
        "crate:links::LinkState",
        "crate:ops::metrics",
        "super:Call",
        "super:Handler",
        "crate:dial::sleep_until",
    ] {
        assert!(
            named.contains(&expected.to_owned()),
            "{expected}: {named:?}"
        );
    }
    assert!(!named
        .iter()
        .any(|n| n.contains("service") || n.contains("router")));
}
