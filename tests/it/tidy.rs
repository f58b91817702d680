//! Style checked mechanically (after TigerBeetle's tidy.zig): the layers between modules and
//! inside the broker, no import cycle between the files of a module, no leftover debugging, and
//! line length.
//!
//! The dependency checks read `src/` with a small lexer: comments and the insides of literals are
//! blanked first (so doc text naming a module does not count), then every `use` tree (grouped or
//! spread over lines) and every inline `crate::`/`super::`/`self::` path is collected with its line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The crate's layers: each top-level module under `src/` and the modules it may name as
/// `crate::<module>` (the written order in `src/lib.rs` and ARCHITECTURE.md). `lib.rs` and
/// `main.rs` are the root and exempt. Only test code may name the modules in `TEST_ONLY`.
const LAYERS: &[(&str, &[&str])] = &[
    // Sizes and bounds every layer agrees on: the bottom, it names nothing.
    ("limits", &[]),
    // Prometheus metrics and their endpoint: a leaf whose hooks every layer may call.
    ("metrics", &["limits"]),
    // Kafka's data model (offsets, batches, records): plain types.
    ("model", &["limits"]),
    // The runtime (executors, shard ids, the mesh): knows no Kafka concept.
    ("shard", &["limits"]),
    // Socket reads into uninitialised memory, for every read loop: knows no Kafka concept.
    ("socket", &["limits"]),
    // The wire codec: encodes model types; knows nothing of disks or serving.
    ("protocol", &["model", "limits"]),
    // The log on disk: stores model batches on a shard's executor; never speaks the protocol.
    ("storage", &["model", "limits", "shard", "metrics"]),
    // The group state machine: protocol in, state out; no sockets, no disks.
    ("group", &["protocol", "model", "limits"]),
    // The transaction state machine and its records: pure, like `group`.
    ("txn", &["protocol", "model", "limits"]),
    // The cluster's control plane: the metadata records and image, the Raft quorum (its log on
    // disk) and the node-to-node transport. Knows nothing of Kafka's APIs or the broker above it.
    ("cluster", &["storage", "model", "shard", "limits"]),
    // Frames and connections: calls a dispatch trait and never names the broker that implements it.
    ("server", &["protocol", "shard", "socket", "model", "limits", "metrics"]),
    // Handlers, partitions and coordinators: the glue over everything below; implements server's trait.
    (
        "broker",
        &["server", "cluster", "group", "txn", "storage", "protocol", "shard", "socket", "model", "limits", "metrics"],
    ),
    // The client library: speaks the protocol to any broker, so it shares no broker code.
    ("client", &["protocol", "socket", "model", "limits"]),
    // Load generators: drive a broker only through the client.
    ("bench", &["client", "protocol", "model", "limits"]),
    // The executable's commands: the top, wires everything together (but not the test helpers).
    (
        "cli",
        &[
            "bench", "client", "broker", "cluster", "server", "group", "txn", "storage", "protocol", "shard", "socket",
            "model", "limits", "metrics",
        ],
    ),
    // Test helpers, built on the bottom layers; only test code uses them (`TEST_ONLY`).
    ("testing", &["model", "limits", "shard"]),
];

/// Modules that ship no code of their own into the binary: only `#[cfg(test)]` items, modules
/// declared under `#[cfg(test)]` and files in a module's `tests/` folder may name them.
const TEST_ONLY: &[&str] = &["testing"];

/// Arrows the issue names on their own (they follow from `LAYERS`, but say why when broken):
/// files under the first folder of `src/` may not name `crate::<second>`.
const NEVER: &[(&str, &str, &str)] = &[
    ("server", "broker", "server calls its dispatch trait; the broker implements it, server never names it"),
    ("broker/handlers", "server", "handlers build replies for the broker's dispatch; only it talks to server"),
];

/// The order of the files and folders inside one module, top row first: a file may name only
/// siblings in a later row, and those `also` allows within a row. The module's `mod.rs` is its
/// root and exempt. Every sibling must have a row, so a new one (cluster/, replication/, txn/)
/// states its place when it arrives.
struct Sublayers {
    module: &'static str,
    rows: &'static [&'static [&'static str]],
    also: &'static [(&'static str, &'static str)],
}

const SUBLAYERS: &[Sublayers] = &[Sublayers {
    module: "broker",
    rows: &[
        // Implements server's dispatch trait: routes each request to its handler.
        &["dispatch"],
        // One handler per Kafka API: turns a request into calls on the shard's state.
        &["handlers"],
        // The shard's broker: owns the state below and serves the cross-shard messages.
        &["shard"],
        // The transaction coordinators: write markers through the partitions and the groups.
        // Replication: followers fetch from leaders; leaders track followers and the ISR.
        // Stats: what a metrics scrape asks of every shard.
        &["transactions", "replication", "stats"],
        // The metadata image and topic administration; the group coordinators' glue.
        &["metadata", "groups"],
        // One partition: all its state, and the only door to its log.
        &["partition"],
        // Leaves: plain types and settings any layer above may use.
        &["fetch_session", "config", "errors", "topic_config", "inter_broker"],
    ],
    // Offset commits look topics up in the metadata image; the broker's settings include its
    // topic-config defaults.
    also: &[("groups", "metadata"), ("config", "topic_config")],
}];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

// ---- reading a file: comments and literals out, then tokens, then paths ----

/// `text` with comments and the insides of string and char literals turned into spaces (newlines
/// kept, so line numbers still hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let end = literal_or_comment_end(&chars, i);
        if end > i {
            out.extend(chars[i..end].iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Where the comment or literal starting at `i` ends, or `i` when none starts there.
fn literal_or_comment_end(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let starts_token = i == 0 || !is_ident_char(at(i - 1));
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..chars.len()).find(|&k| chars[k] == '\n').unwrap_or(chars.len()),
        ('/', '*') => block_comment_end(chars, i),
        ('"', _) => string_end(chars, i + 1, false, 0),
        ('r', '"' | '#') if starts_token || (at(i - 1) == 'b' && (i < 2 || !is_ident_char(at(i - 2)))) => {
            let hashes = (i + 1..chars.len()).take_while(|&k| chars[k] == '#').count();
            if at(i + 1 + hashes) == '"' { string_end(chars, i + 2 + hashes, true, hashes) } else { i }
        }
        // A char literal ('x', '\n', '\u{1F600}'); a lifetime ('a) has no closing quote.
        ('\'', '\\') => (i + 3..chars.len()).find(|&k| chars[k] == '\'').map_or(chars.len(), |k| k + 1),
        ('\'', _) if at(i + 2) == '\'' => i + 3,
        _ => i,
    }
}

/// The end of a string whose text starts at `i`: after the closing quote and `hashes` `#`s
/// (a raw string takes no escapes).
fn string_end(chars: &[char], mut i: usize, raw: bool, hashes: usize) -> usize {
    while i < chars.len() {
        if chars[i] == '\\' && !raw {
            i += 2;
        } else if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
            return i + 1 + hashes;
        } else {
            i += 1;
        }
    }
    chars.len()
}

fn block_comment_end(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    chars.len()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident(token: &str) -> bool {
    token.chars().next().is_some_and(is_ident_char)
}

/// One token of code: a word, `::`, or one punctuation character; `line` counts from 1.
#[derive(Debug)]
struct Token {
    text: String,
    line: usize,
}

fn tokens(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let len = if is_ident_char(chars[i]) {
                chars[i..].iter().take_while(|&&c| is_ident_char(c)).count()
            } else if chars[i] == ':' && chars.get(i + 1) == Some(&':') {
                2
            } else {
                1
            };
            if !chars[i].is_whitespace() {
                out.push(Token { text: chars[i..i + len].iter().collect(), line: n + 1 });
            }
            i += len;
        }
    }
    out
}

/// A path one file names: in a `use` tree or inline in code.
#[derive(Clone, Debug)]
struct Ref {
    line: usize,
    /// As written: from `crate`, `super` or `self`, or (only in a `use`) a bare first name.
    path: Vec<String>,
    /// The inline modules (`mod tests { … }`) it sits in, outermost first.
    scope: Vec<String>,
    /// Inside a `#[cfg(test)]` item.
    test: bool,
}

/// What a file names, and what it declares that the other checks need.
#[derive(Debug, Default)]
struct Scan {
    refs: Vec<Ref>,
    /// The file's own top-level `use` imports, by the name they bind (to follow re-exports).
    imports: HashMap<String, Ref>,
    /// Modules declared `#[cfg(test)] mod x;`, as paths below the file's module.
    test_mods: Vec<Vec<String>>,
}

/// A `{ … }` the scanner is inside: an inline module's name, and whether it is test code.
struct Block {
    module: Option<String>,
    test: bool,
}

/// Reads the paths out of `code` (already through `code_only`).
fn scan(code: &str) -> Scan {
    let toks = tokens(code);
    let text = |k: usize| toks.get(k).map_or("", |t| t.text.as_str());
    let mut out = Scan::default();
    let mut blocks: Vec<Block> = Vec::new();
    // `#[cfg(test)]` seen, its item not yet opened or ended: the brace and paren depth it was at.
    let mut pending_test: Option<(usize, usize)> = None;
    let mut parens = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let scope: Vec<String> = blocks.iter().filter_map(|b| b.module.clone()).collect();
        let test = pending_test.is_some() || blocks.iter().any(|b| b.test);
        match text(i) {
            "#" if (1..=6).map(|k| text(i + k)).eq(["[", "cfg", "(", "test", ")", "]"]) => {
                pending_test = Some((blocks.len(), parens));
                i += 7;
                continue;
            }
            // (`use<'a>` in a return type is precise capturing, not an import.)
            "use" if text(i + 1) != "<" => {
                let end = (i..toks.len()).find(|&k| text(k) == ";").unwrap_or(toks.len());
                for (path, name, line) in use_tree(&toks[i + 1..end]) {
                    let r = Ref { line, path, scope: scope.clone(), test };
                    if let Some(name) = name
                        && blocks.is_empty()
                        && !test
                    {
                        out.imports.insert(name, r.clone());
                    }
                    out.refs.push(r);
                }
                i = end;
                continue;
            }
            "mod" if is_ident(text(i + 1)) && text(i + 2) == ";" && test => {
                out.test_mods.push(scope.iter().cloned().chain([text(i + 1).to_string()]).collect());
            }
            "crate" | "super" | "self" if text(i + 1) == "::" && (i == 0 || text(i - 1) != "::") => {
                let mut path = vec![text(i).to_string()];
                while text(i + 1) == "::" && is_ident(text(i + 2)) {
                    path.push(text(i + 2).to_string());
                    i += 2;
                }
                out.refs.push(Ref { line: toks[i].line, path, scope, test });
            }
            "(" | "[" => parens += 1,
            ")" | "]" => parens = parens.saturating_sub(1),
            "{" => {
                let module = (i >= 2 && text(i - 2) == "mod").then(|| text(i - 1).to_string());
                blocks.push(Block { module, test });
                pending_test = None;
            }
            "}" => {
                blocks.pop();
            }
            ";" if pending_test == Some((blocks.len(), parens)) => pending_test = None,
            _ => {}
        }
        i += 1;
    }
    out
}

/// The paths a `use` tree (the tokens between `use` and `;`) brings in: each with the name it
/// binds (none for a glob) and the line of its last segment.
fn use_tree(toks: &[Token]) -> Vec<(Vec<String>, Option<String>, usize)> {
    let mut out = Vec::new();
    let start = usize::from(toks.first().is_some_and(|t| t.text == "::"));
    use_subtree(toks, start, Vec::new(), &mut out);
    out
}

/// Reads one tree of a `use` from `toks[i]`, below the segments in `path`; returns where it ends.
fn use_subtree(
    toks: &[Token],
    mut i: usize,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>, usize)>,
) -> usize {
    let text = |k: usize| toks.get(k).map_or("", |t| t.text.as_str());
    let line = |k: usize| toks.get(k).or(toks.last()).map_or(0, |t| t.line);
    loop {
        match text(i) {
            "{" => {
                i += 1;
                while i < toks.len() && text(i) != "}" {
                    i = use_subtree(toks, i, path.clone(), out);
                    if text(i) == "," {
                        i += 1;
                    }
                }
                return i + 1;
            }
            "*" => {
                out.push((path, None, line(i)));
                return i + 1;
            }
            word if is_ident(word) => {
                // `{self, …}` names the prefix itself.
                if word != "self" || path.is_empty() {
                    path.push(word.to_string());
                }
                let mut name = path.last().cloned();
                let at = i;
                i += 1;
                if text(i) == "::" {
                    i += 1;
                    continue;
                }
                if text(i) == "as" {
                    name = Some(text(i + 1).to_string()).filter(|n| n != "_");
                    i += 2;
                }
                out.push((path, name, line(at)));
                return i;
            }
            _ => return i + 1,
        }
    }
}

// ---- the crate: files, module paths, what a path resolves to ----

/// One file under `src/` (the root files `lib.rs` and `main.rs` excluded).
struct File {
    /// Relative to the repo root, for messages.
    shown: String,
    /// Its module path: `src/broker/handlers/fetch.rs` is `broker::handlers::fetch`, a `mod.rs`
    /// is its folder.
    module: Vec<String>,
    /// Test code as a whole: declared under `#[cfg(test)]` or in a `tests/` folder.
    test: bool,
    scan: Scan,
}

struct Crate {
    files: Vec<File>,
    by_module: HashMap<Vec<String>, usize>,
}

fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod.rs") {
        parts.pop();
    } else if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_string();
    }
    parts
}

fn load() -> Crate {
    let root = src();
    let mut files = Vec::new();
    for path in rust_files(&root) {
        let relative = path.strip_prefix(&root).expect("under src").to_path_buf();
        if relative == Path::new("lib.rs") || relative == Path::new("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let folders = relative.parent().into_iter().flat_map(Path::iter);
        files.push(File {
            shown: format!("src/{}", relative.display()),
            module: module_path(&relative),
            test: folders.skip(1).any(|f| f == "tests"),
            scan: scan(&code_only(&text)),
        });
    }
    let test_mods: BTreeSet<Vec<String>> = (files.iter())
        .flat_map(|f| f.scan.test_mods.iter().map(|m| f.module.iter().chain(m).cloned().collect()))
        .collect();
    for file in &mut files {
        file.test |= (1..=file.module.len()).any(|n| test_mods.contains(&file.module[..n]));
    }
    let by_module = files.iter().enumerate().map(|(n, f)| (f.module.clone(), n)).collect();
    Crate { files, by_module }
}

impl Crate {
    /// The absolute module path `r` (in file `from`) names, or `None` when it leaves the crate
    /// (a bare `use` of an extern crate or of a local item).
    fn absolute(&self, from: usize, r: &Ref) -> Option<Vec<String>> {
        let mut base: Vec<String> = self.files[from].module.iter().chain(&r.scope).cloned().collect();
        let mut rest = r.path.iter().peekable();
        match rest.peek().map(|s| s.as_str()) {
            Some("crate") => {
                base.clear();
                rest.next();
            }
            Some("self") => {
                rest.next();
            }
            Some("super") => {}
            Some(first) => {
                let child: Vec<String> = base.iter().cloned().chain([first.to_string()]).collect();
                if !self.by_module.contains_key(&child) {
                    return None;
                }
            }
            None => return None,
        }
        while rest.next_if(|s| *s == "super").is_some() {
            base.pop();
        }
        base.extend(rest.cloned());
        Some(base)
    }

    /// The file that defines what `r` (in file `from`) names, following `use` re-exports of the
    /// module files it passes through.
    fn target(&self, from: usize, r: &Ref) -> Option<usize> {
        let path = self.absolute(from, r)?;
        self.file_of(&path, 0)
    }

    fn file_of(&self, path: &[String], hops: usize) -> Option<usize> {
        let n = (1..=path.len()).rev().find(|&n| self.by_module.contains_key(&path[..n]))?;
        let file = self.by_module[&path[..n]];
        if hops < 8
            && let Some(name) = path.get(n)
            && let Some(import) = self.files[file].scan.imports.get(name)
            && let Some(mut through) = self.absolute(file, import)
        {
            through.extend(path[n + 1..].iter().cloned());
            return self.file_of(&through, hops + 1).or(Some(file));
        }
        Some(file)
    }

    /// Every path each file names, resolved to absolute module paths: (file, ref, path).
    fn references(&self) -> impl Iterator<Item = (usize, &Ref, Vec<String>)> {
        (0..self.files.len())
            .flat_map(move |f| self.files[f].scan.refs.iter().filter_map(move |r| Some((f, r, self.absolute(f, r)?))))
    }
}

fn allowed(module: &str) -> Option<&'static [&'static str]> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, allowed)| *allowed)
}

/// Fails with the problems, one a line, sorted and without repeats.
fn report(what: &str, problems: Vec<String>) {
    let problems: BTreeSet<String> = problems.into_iter().collect();
    let lines: Vec<String> = problems.into_iter().collect();
    assert!(lines.is_empty(), "{what}:\n{}", lines.join("\n"));
}

// ---- the checks ----

#[test]
fn modules_depend_only_downwards() {
    let krate = load();
    let mut problems = Vec::new();
    let top: BTreeSet<&str> = krate.files.iter().map(|f| f.module[0].as_str()).collect();
    for module in &top {
        if allowed(module).is_none() {
            problems.push(format!("src/{module}: not in LAYERS; give it a row saying what it may use"));
        }
    }
    for (f, r, path) in krate.references() {
        let file = &krate.files[f];
        let own = file.module[0].as_str();
        let (Some(allowed), Some(other)) = (allowed(own), path.first().map(String::as_str)) else { continue };
        if other == own || !top.contains(other) {
            continue;
        }
        let at = format!("{}:{}", file.shown, r.line);
        if TEST_ONLY.contains(&other) {
            if !(r.test || file.test) {
                problems.push(format!("{at}: {own} uses crate::{other}, which only test code may use"));
            }
        } else if !allowed.contains(&other) {
            problems.push(format!("{at}: {own} uses crate::{other}, which is not below it"));
        }
    }
    report("dependency direction broken (see LAYERS in tests/it/tidy.rs)", problems);
}

/// Whether `file` lies under `folder` (a path below `src/`, `/`-separated).
fn under(file: &File, folder: &str) -> bool {
    let parts: Vec<&str> = folder.split('/').collect();
    file.module.len() >= parts.len() && parts.iter().zip(&file.module).all(|(a, b)| **a == **b)
}

#[test]
fn server_and_handlers_do_not_name_each_other() {
    let krate = load();
    let mut problems = Vec::new();
    for (f, r, path) in krate.references() {
        let file = &krate.files[f];
        for (folder, other, why) in NEVER {
            if under(file, folder) && path.first().is_some_and(|p| p == other) {
                problems.push(format!("{}:{}: src/{folder} names crate::{other}: {why}", file.shown, r.line));
            }
        }
    }
    report("a forbidden arrow", problems);
}

#[test]
fn files_inside_a_module_depend_only_downwards() {
    let krate = load();
    let mut problems = Vec::new();
    for layers in SUBLAYERS {
        let row = |sibling: &str| layers.rows.iter().position(|row| row.contains(&sibling));
        let sibling = |f: usize| {
            let module = &krate.files[f].module;
            (module.len() >= 2 && module[0] == layers.module).then(|| module[1].as_str())
        };
        let shown = |name: &str| {
            let folder = src().join(layers.module).join(name).is_dir();
            format!("{}/{name}{}", layers.module, if folder { "/" } else { ".rs" })
        };
        for f in 0..krate.files.len() {
            if let Some(name) = sibling(f)
                && row(name).is_none()
            {
                problems.push(format!("src/{}: not in SUBLAYERS; give it a row", shown(name)));
            }
        }
        for (f, r, _) in krate.references() {
            let (Some(from), Some(to)) = (sibling(f), krate.target(f, r).and_then(&sibling)) else { continue };
            let (Some(from_row), Some(to_row)) = (row(from), row(to)) else { continue };
            if from != to && to_row <= from_row && !layers.also.contains(&(from, to)) {
                let at = format!("{}:{}", krate.files[f].shown, r.line);
                problems.push(format!("{at}: {} uses {}, which is not below it", shown(from), shown(to)));
            }
        }
    }
    report("layer order inside a module broken (see SUBLAYERS in tests/it/tidy.rs)", problems);
}

#[test]
fn no_import_cycle_between_files_of_a_module() {
    let krate = load();
    // An edge per pair of files of one module, with the first line that makes it. Test code is
    // not an edge: a file's tests may build their inputs with a sibling that uses the file.
    let mut edges: BTreeMap<usize, BTreeMap<usize, usize>> = BTreeMap::new();
    for (f, r, _) in krate.references() {
        if !r.test
            && let Some(to) = krate.target(f, r)
            && to != f
            && krate.files[to].module[0] == krate.files[f].module[0]
        {
            edges.entry(f).or_default().entry(to).or_insert(r.line);
        }
    }
    let graph: BTreeMap<usize, Vec<usize>> = edges.iter().map(|(&f, to)| (f, to.keys().copied().collect())).collect();
    let problems = cycles(&graph)
        .into_iter()
        .map(|cycle| {
            let hops = cycle.iter().zip(cycle.iter().cycle().skip(1));
            let shown: Vec<String> =
                hops.map(|(&a, &b)| format!("{}:{}", krate.files[a].shown, edges[&a][&b])).collect();
            format!("cycle: {} -> back to the first", shown.join(" -> "))
        })
        .collect();
    report("import cycles between files of one module", problems);
}

/// The cycles a depth-first walk of `graph` meets (one per edge back to a file on the walk's
/// path), each rotated to start at its smallest node.
fn cycles(graph: &BTreeMap<usize, Vec<usize>>) -> Vec<Vec<usize>> {
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for &start in graph.keys() {
        walk(graph, start, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn walk(
    graph: &BTreeMap<usize, Vec<usize>>,
    node: usize,
    path: &mut Vec<usize>,
    done: &mut BTreeSet<usize>,
    found: &mut Vec<Vec<usize>>,
) {
    if done.contains(&node) {
        return;
    }
    if let Some(at) = path.iter().position(|&n| n == node) {
        let mut cycle = path[at..].to_vec();
        let smallest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
        cycle.rotate_left(smallest);
        if !found.contains(&cycle) {
            found.push(cycle);
        }
        return;
    }
    path.push(node);
    for &next in graph.get(&node).into_iter().flatten() {
        walk(graph, next, path, done, found);
    }
    path.pop();
    done.insert(node);
}

// ---- the checker's own tests ----

#[test]
fn scanner_reads_use_trees_and_paths_but_not_comments_or_strings() {
    let text = "\
use crate::{a::X, b::{self, Y as Z}};
use super::{
    c::W,
    d,
};
// crate::e::F in a comment
/// Docs naming [`crate::f`] do not count.
fn g() { crate::h::i(); let s = \"crate::j\"; let c = '{'; }
#[cfg(test)]
mod tests {
    use crate::testing::k;
    fn l() { super::m(); }
}
fn n() { self::o::P::q(); }
";
    let scan = scan(&code_only(text));
    let got: Vec<(usize, String, Vec<String>, bool)> =
        scan.refs.iter().map(|r| (r.line, r.path.join("::"), r.scope.clone(), r.test)).collect();
    let tests = vec!["tests".to_string()];
    let want = vec![
        (1, "crate::a::X".to_string(), vec![], false),
        (1, "crate::b".to_string(), vec![], false),
        (1, "crate::b::Y".to_string(), vec![], false),
        (3, "super::c::W".to_string(), vec![], false),
        (4, "super::d".to_string(), vec![], false),
        (8, "crate::h::i".to_string(), vec![], false),
        (11, "crate::testing::k".to_string(), tests.clone(), true),
        (12, "super::m".to_string(), tests, true),
        (14, "self::o::P::q".to_string(), vec![], false),
    ];
    assert_eq!(got, want);
    assert_eq!(scan.imports["Z"].path, ["crate", "b", "Y"]);
    assert_eq!(scan.imports["b"].path, ["crate", "b"]);
}

#[test]
fn scanner_marks_test_modules_declared_elsewhere() {
    let scan = scan(&code_only("#[cfg(test)]\nmod tests;\nmod real;\n#[cfg(test)]\nuse crate::testing::x;\n"));
    assert_eq!(scan.test_mods, [vec!["tests".to_string()]]);
    assert!(scan.refs.iter().all(|r| r.test));
}

#[test]
fn cycle_walk_finds_each_cycle_once() {
    let graph: BTreeMap<usize, Vec<usize>> = [(0, vec![1]), (1, vec![2, 0]), (2, vec![1]), (3, vec![0])].into();
    assert_eq!(cycles(&graph), [vec![1, 2], vec![0, 1]]);
}

#[test]
fn no_leftover_debugging_and_short_lines() {
    let mut problems = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), n + 1);
            for marker in ["dbg!(", "FIXME", "XXX", "todo!(", "unimplemented!("] {
                if line.contains(marker) {
                    problems.push(format!("{at}: {marker}"));
                }
            }
            if line.chars().count() > 120 {
                problems.push(format!("{at}: line longer than 120 characters"));
            }
        }
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}
