//! The layers of `src/`, checked on every `cargo test`: this is how CI keeps the structure.
//!
//! Each top-level module (`src/<name>/mod.rs` or `src/<name>.rs`) has a rank, lowest first:
//! `config` 0; `common`, `mcp`, `shutdown` 1; `telemetry` 2; `serve`, `gate` 3; `discovery`,
//! `forward` 4; `app` 5. `src/lib.rs` and `src/main.rs` are exempt.
//!
//! 1. A module may use `crate::<other>` only when the other ranks strictly lower: no upward
//!    imports, and modules of the same rank do not import each other. Crate-root items
//!    (`crate::State`) are imported from their module instead; the crate-root macros `info!`,
//!    `warn!` and `error!` count as `telemetry`.
//! 2. Inside one folder, the files (and subfolders) do not import each other in a loop.
//!    Children importing `mod.rs` is fine; `mod.rs` declaring and re-exporting its children is
//!    not counted.
//!
//! The check reads the source text with comments and string literals removed; it knows `use`
//! trees (`crate::{a, b::{c, d}}`), `super::` paths and inline `mod tests { .. }` blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The layers, lowest first; a module's rank is the index of its layer.
const LAYERS: &[&[&str]] = &[
    &["config"],
    &["common", "mcp", "shutdown"],
    &["telemetry"],
    &["serve", "gate"],
    &["discovery", "forward"],
    &["app"],
];
/// The `#[macro_export]` macros, which live at the crate root but belong to `telemetry`.
const MACROS: &[&str] = &["info", "warn", "error"];
const EXEMPT: &[&str] = &["lib.rs", "main.rs"];
/// The node of a folder's own module file in the loop check; a dot keeps it apart from modules.
const OWNER: &str = "mod.rs";

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// One source file: its path under `src/`, its module path and the absolute paths it refers to.
struct File<'a> {
    path: &'a str,
    module: Vec<String>,
    refs: Vec<Vec<String>>,
}

/// Returns every violation of the layer rules in `files` (paths relative to `src/`, `/`-separated).
fn check(files: &[(String, String)]) -> Vec<String> {
    let files: Vec<File> = files
        .iter()
        .filter(|(path, _)| !EXEMPT.contains(&path.as_str()))
        .map(|(path, source)| parse(path, source))
        .filter(|file| !file.module.is_empty())
        .collect();
    let tops: BTreeSet<&str> = files.iter().map(|f| f.module[0].as_str()).collect();
    let mut out = BTreeSet::new();
    for top in tops.iter().filter(|top| rank(top).is_none()) {
        out.insert(format!("src/{top}: top-level module with no layer; add it to the layer table in tests/layers.rs"));
    }
    for file in &files {
        let own = file.module[0].as_str();
        let Some(own_rank) = rank(own) else { continue };
        for path in &file.refs {
            let first = path[0].as_str();
            let (layer, bang) = if MACROS.contains(&first) { ("telemetry", "!") } else { (first, "") };
            if layer == own {
                continue;
            }
            let why = match rank(layer) {
                Some(r) if r < own_rank => continue,
                Some(r) if r == own_rank => {
                    format!("{layer} is layer {r}, {own} is layer {own_rank}: peers do not import each other")
                }
                Some(r) => format!("{layer} is layer {r}, above {own} at layer {own_rank}"),
                None if tops.contains(layer) => continue, // reported above as a module with no layer
                None => "crate-root item; import it from its module".to_string(),
            };
            out.insert(format!("{} imports crate::{first}{bang} ({why})", file.path));
        }
    }
    let folders: BTreeSet<&[String]> =
        files.iter().flat_map(|f| (1..=f.path.matches('/').count()).map(|n| &f.module[..n])).collect();
    for folder in folders {
        out.extend(loops(&files, folder));
    }
    out.into_iter().collect()
}

/// The loops among the entries (files and subfolders) of one folder.
fn loops(files: &[File], folder: &[String]) -> Vec<String> {
    let n = folder.len();
    let inside: Vec<&File> = files.iter().filter(|f| f.module.starts_with(folder)).collect();
    let children: BTreeSet<&str> = inside.iter().filter_map(|f| f.module.get(n)).map(String::as_str).collect();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // The folder's own module file (n == module.len()) gets no outgoing edges: see the docs.
    for file in inside.iter().filter(|f| f.module.len() > n) {
        let from = file.module[n].as_str();
        for path in file.refs.iter().filter(|p| p.starts_with(folder)) {
            let to = path.get(n).map(String::as_str).filter(|c| children.contains(c)).unwrap_or(OWNER);
            if to != from {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    let dir = folder.join("/");
    let label = |node: &str| match node {
        OWNER => OWNER.to_string(),
        _ if files.iter().any(|f| f.path == format!("{dir}/{node}.rs")) => format!("{node}.rs"),
        _ => format!("{node}/"),
    };
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for &start in edges.keys() {
        walk(start, &edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
        .into_iter()
        .map(|cycle| {
            let names: Vec<String> = cycle.iter().map(|node| label(node)).collect();
            format!("loop inside {dir}/: {}", names.join(" -> "))
        })
        .collect()
}

/// Depth-first search recording each loop met, rotated to start at its smallest node.
fn walk<'a>(
    node: &'a str,
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    stack: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
    found: &mut BTreeSet<Vec<&'a str>>,
) {
    if let Some(at) = stack.iter().position(|&n| n == node) {
        let mut cycle = stack[at..].to_vec();
        let least = (0..cycle.len()).min_by_key(|&i| cycle[i]).expect("a loop is never empty");
        cycle.rotate_left(least);
        cycle.push(cycle[0]);
        found.insert(cycle);
        return;
    }
    if done.contains(node) {
        return;
    }
    stack.push(node);
    for &next in edges.get(node).into_iter().flatten() {
        walk(next, edges, stack, done, found);
    }
    stack.pop();
    done.insert(node);
}

/// Reads one file: its module path (`forward/pool.rs` is `forward::pool`, `forward/mod.rs` is
/// `forward`) and every `crate::` and `super::` path in it, made absolute.
fn parse<'a>(path: &'a str, source: &str) -> File<'a> {
    let stem = path.strip_suffix(".rs").unwrap_or(path);
    let stem = stem.strip_suffix("mod").filter(|s| s.is_empty() || s.ends_with('/')).unwrap_or(stem);
    let module: Vec<String> = stem.split('/').filter(|s| !s.is_empty()).map(String::from).collect();
    let stripped = strip(source);
    let toks = tokens(&stripped);
    let (mut refs, mut depth, mut inline) = (Vec::new(), 0, Vec::new());
    for i in 0..toks.len() {
        let next_is_path = toks.get(i + 1) == Some(&"::");
        match toks[i] {
            "{" => {
                depth += 1;
                if i >= 2 && toks[i - 2] == "mod" && is_ident(toks[i - 1]) {
                    inline.push(depth);
                }
            }
            "}" => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "crate" if next_is_path => refs.extend(tree(&toks, &mut (i + 2))),
            "super" if next_is_path && (i == 0 || toks[i - 1] != "::") => {
                let mut j = i;
                while toks.get(j) == Some(&"super") && toks.get(j + 1) == Some(&"::") {
                    j += 2;
                }
                // Each inline `mod x { .. }` around this point takes one `super` to leave.
                let Some(up) = ((j - i) / 2).checked_sub(inline.len()).filter(|&up| up > 0) else { continue };
                let Some(base) = module.len().checked_sub(up).map(|keep| &module[..keep]) else { continue };
                refs.extend(tree(&toks, &mut j).into_iter().map(|rest| [base, &rest].concat()));
            }
            _ => {}
        }
    }
    refs.retain(|p: &Vec<String>| !p.is_empty());
    File { path, module, refs }
}

/// Parses a path or `use` tree from `toks[*at]` on, returning each path it names (`self` names
/// its parent, so `crate::{self}` names nothing).
fn tree(toks: &[&str], at: &mut usize) -> Vec<Vec<String>> {
    match toks.get(*at).copied() {
        Some("{") => {
            *at += 1;
            let mut out = Vec::new();
            while toks.get(*at).is_some_and(|t| *t != "}") {
                out.extend(tree(toks, at));
                // Skip what follows an item, such as `as name`, and the comma.
                while toks.get(*at).is_some_and(|t| *t != "," && *t != "}") {
                    *at += 1;
                }
                *at += usize::from(toks.get(*at) == Some(&","));
            }
            *at += 1;
            out
        }
        Some(seg) if is_ident(seg) || seg == "*" => {
            *at += 1;
            let head = if seg == "self" { Vec::new() } else { vec![seg.to_string()] };
            let rest = if toks.get(*at) == Some(&"::") && seg != "*" {
                *at += 1;
                tree(toks, at)
            } else {
                Vec::new()
            };
            if rest.is_empty() {
                return vec![head];
            }
            rest.into_iter().map(|rest| [head.clone(), rest].concat()).collect()
        }
        _ => Vec::new(),
    }
}

fn is_ident(tok: &str) -> bool {
    tok.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// Splits stripped source into identifiers (and numbers), `::`, and single other characters.
fn tokens(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let mut end = start + c.len_utf8();
        if c.is_alphanumeric() || c == '_' {
            while let Some(&(i, d)) = chars.peek().filter(|(_, d)| d.is_alphanumeric() || *d == '_') {
                end = i + d.len_utf8();
                chars.next();
            }
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            end += 1;
        } else if c.is_whitespace() {
            continue;
        }
        out.push(&s[start..end]);
    }
    out
}

/// The source with comments and string, byte-string, raw-string and char literals blanked out.
fn strip(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let (mut out, mut i) = (String::with_capacity(source.len()), 0);
    while i < c.len() {
        // Raw strings: `r"..."`, `r#"..."#`, `br#"..."#`, `cr"..."` (not raw identifiers, `r#type`).
        let prefix = usize::from(matches!(c[i], 'b' | 'c') && at(i + 1) == 'r');
        let hashes = (i + prefix + 1..).take_while(|&j| at(j) == '#').count();
        let word_start = i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if (c[i] == 'r' || prefix == 1) && word_start && at(i + prefix + 1 + hashes) == '"' {
            i += prefix + hashes + 2;
            while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#')) {
                i += 1;
            }
            i += hashes + 1;
        } else if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0; // block comments nest
            while i < c.len() {
                depth += i32::from(c[i] == '/' && at(i + 1) == '*') - i32::from(c[i] == '*' && at(i + 1) == '/');
                i += if matches!((c[i], at(i + 1)), ('/', '*') | ('*', '/')) { 2 } else { 1 };
                if depth == 0 {
                    break;
                }
            }
        } else if c[i] == '"' || (c[i] == '\'' && at(i + 1) == '\\') {
            // A string (any prefix letter stays, harmlessly) or an escaped char literal.
            let quote = c[i];
            i += 1;
            while i < c.len() && c[i] != quote {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c[i] == '\'' && at(i + 2) == '\'' {
            i += 3;
        } else {
            // Code, lifetimes and labels (`'a`) included.
            out.push(c[i]);
            i += 1;
            continue;
        }
        out.push(' ');
    }
    out
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> =
        fs::read_dir(dir).expect("src/ is readable").map(|e| e.expect("a readable directory entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let rel = path.strip_prefix(root).expect("the walk stays under src/");
            let rel: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push((rel.join("/"), fs::read_to_string(&path).expect("source files are UTF-8")));
        }
    }
}

#[test]
fn src_follows_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    assert!(files.len() >= 10, "found only {} source files under {}", files.len(), src.display());
    let violations = check(&files);
    if !violations.is_empty() {
        panic!(
            "src/ breaks its layers (config 0; common, shutdown 1; telemetry 2; serve, gate 3; \
             discovery, forward 4; app 5). A module imports only from lower layers, never from \
             peers or the crate root, and no folder's files import each other in a loop \
             (see tests/layers.rs):\n{}",
            violations.join("\n")
        );
    }
}

#[cfg(test)]
mod synthetic {
    /// The violations in `files`, each a (path under `src/`, source) pair.
    fn check(files: &[(&str, &str)]) -> Vec<String> {
        super::check(&files.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect::<Vec<_>>())
    }

    #[test]
    fn upward_imports_are_reported() {
        let found = check(&[
            ("config/mod.rs", "use crate::serve::Limits;"),
            ("forward/mod.rs", "use super::app::Run;"), // `super` of a mod.rs is the crate root
        ]);
        let want = [
            "config/mod.rs imports crate::serve (serve is layer 3, above config at layer 0)",
            "forward/mod.rs imports crate::app (app is layer 5, above forward at layer 4)",
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn peer_imports_are_reported() {
        let found = check(&[("gate/x.rs", "fn f() { crate::serve::y(); }")]);
        let want = "gate/x.rs imports crate::serve (serve is layer 3, gate is layer 3: peers do not import each other)";
        assert_eq!(found, [want]);
    }

    #[test]
    fn brace_groups_are_read() {
        let found =
            check(&[("discovery/respond.rs", "use crate::{\n    common::{route, x::y},\n    forward::Body as B,\n};")]);
        let want = "discovery/respond.rs imports crate::forward (forward is layer 4, discovery is layer 4: peers do \
                    not import each other)";
        assert_eq!(found, [want]);
    }

    #[test]
    fn comments_and_literals_are_ignored() {
        let source = r####"
            //! crate::app
            /// crate::app
            /* crate::app /* nested */ crate::app */
            fn f<'a>(s: &'a str) -> [&'a str; 6] {
                let (q, e) = ('"', '\'');
                ["crate::app \" crate::app", r#"crate::app "quoted""#, b"crate::app", br##"crate::app"#"##]
                    .map(|x| c"crate::app")
            }
            use crate::config::Config; // crate::app
            use crate::app;
        "####;
        let found = check(&[("serve/x.rs", source)]);
        assert_eq!(found, ["serve/x.rs imports crate::app (app is layer 5, above serve at layer 3)"]);
    }

    #[test]
    fn macros_belong_to_telemetry() {
        let found = check(&[("serve/x.rs", "use crate::{info, error}; fn f() { crate::warn!(\"x\"); }")]);
        assert!(found.is_empty(), "{found:?}");
        let found = check(&[("common/x.rs", "fn f() { crate::warn!(\"x\"); }")]);
        assert_eq!(found, ["common/x.rs imports crate::warn! (telemetry is layer 2, above common at layer 1)"]);
    }

    #[test]
    fn loops_between_siblings_are_reported() {
        let found = check(&[
            ("forward/mod.rs", "pub mod pool; pub mod upload; pub use self::pool::Pool;"),
            ("forward/pool.rs", "use super::upload::Part;"),
            ("forward/upload.rs", "use crate::forward::pool::Pool;"),
            ("forward/deep/a.rs", "use super::b::B;"),
            ("forward/deep/b.rs", "use super::{a, Thing};"),
        ]);
        let want = [
            "loop inside forward/: pool.rs -> upload.rs -> pool.rs",
            "loop inside forward/deep/: a.rs -> b.rs -> a.rs",
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn parents_children_and_tests_make_no_loop() {
        let found = check(&[
            (
                "forward/mod.rs",
                "pub mod pool; pub use self::pool::Pool; use crate::forward::pool::Pool; pub struct Body;",
            ),
            ("forward/pool.rs", "use super::Body;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn downward_imports_are_allowed() {
        let found = check(&[
            ("app/mod.rs", "use crate::{self, config, forward::x, serve, telemetry::y, shutdown::Shutdown};"),
            ("lib.rs", "pub use config::Config; pub fn f(_: crate::Config) {}"),
            ("main.rs", "use mcp_auth_edge::app; use crate::Stuff;"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn crate_root_items_and_unknown_modules_are_reported() {
        let found = check(&[("serve/x.rs", "use crate::State; use crate::admin::Run;"), ("admin.rs", "")]);
        let want = "src/admin: top-level module with no layer; add it to the layer table in tests/layers.rs";
        assert_eq!(found, ["serve/x.rs imports crate::State (crate-root item; import it from its module)", want]);
    }
}
