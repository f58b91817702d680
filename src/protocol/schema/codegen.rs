//! The message code generator, run by the crate's `build.rs` (this file is not part of the
//! library). It reads the definitions in `src/protocol/schema/*.msg` and writes the Rust structs
//! and their version-aware codecs to `$OUT_DIR/messages.rs`, which `src/protocol/messages.rs`
//! includes.
//!
//! # The definition format
//!
//! One file per API, holding its request and its response. `#` starts a comment line; `--`
//! starts documentation, either at the end of a line or on a line of its own (continuing the
//! documentation of the item above). Indentation is two spaces per level.
//!
//! ```text
//! request ProduceRequest api=0 versions=3-9 flexible=9+ -- Appends record batches.
//!   transactional_id: string null default=null -- The transactional id, or null.
//!   topic_data: [ProduceRequestTopic] -- The topics.
//!     name: string -- The topic name.
//!     partition_data: [ProduceRequestPartition] -- The partitions.
//!       index: i32 -- The partition index.
//!       records: records null -- The record batches.
//! response ProduceResponse api=0 versions=3-9 flexible=9+ -- ...
//! ```
//!
//! A message line is `request` or `response`, the struct name (`<Api>Request`/`<Api>Response`,
//! where `<Api>` is the `ApiKey` variant), `api=<key>`, `versions=<min>-<max>` and
//! `flexible=<v>+` or `flexible=none`. A field line is `<name>: <type>` and attributes:
//!
//! - type: `i8 i16 i32 i64 u16 u32 f64 bool uuid string bytes records`, `[T]` for an array of a
//!   primitive or of a struct, or a struct name for a single struct. A struct's fields follow on
//!   the next lines, one level deeper; struct names are global, conventionally
//!   `<Message><Thing>`.
//! - A field may name a struct defined earlier in the same message, with no field lines under it:
//!   it reuses that struct (Kafka's `commonStructs`, such as AddPartitionsToTxn's topics, which
//!   appear both in v4+'s transactions and at the top level of v0-3). The struct's fields keep the
//!   versions they were defined with.
//! - `v3+`, `v0-2` or `v1`: the versions that have the field (default: all of the message's).
//!   Fields outside the message's range are left out of the definition altogether.
//! - `null` or `null=3+`: nullable in all of the field's versions, or in those.
//! - `tag=<n>`: a tagged field in all of its versions (which must be flexible). It is written
//!   only when it differs from its default, as Apache Kafka does.
//! - `default=<value>`: `-1`, `0x7fffffff`, `true`, `null`, `""`, `"text"`. Without it: zero,
//!   false, empty; for a nullable field, the empty value (not null), except `records` (null).
//!   Absent fields decode to their default.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, String>;

/// Entry point for `build.rs`.
pub(crate) fn main() {
    if let Err(message) = run() {
        eprintln!("error: protocol message definitions: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let out_dir = std::env::var("OUT_DIR").map_err(|e| e.to_string())?;
    let schema_dir = Path::new(&manifest).join("src/protocol/schema");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", schema_dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&schema_dir)
        .map_err(|e| format!("{}: {e}", schema_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "msg"))
        .collect();
    files.sort();
    let mut messages = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        messages.extend(parse_file(&name, &text)?);
    }
    let code = generate(&messages)?;
    let out = Path::new(&out_dir).join("messages.rs");
    std::fs::write(&out, code).map_err(|e| format!("{}: {e}", out.display()))
}

// ---------------------------------------------------------------------------------------------
// The model.

/// An inclusive range of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Versions {
    min: i16,
    max: i16,
}

impl Versions {
    fn intersect(self, other: Versions) -> Option<Versions> {
        let v = Versions { min: self.min.max(other.min), max: self.max.min(other.max) };
        (v.min <= v.max).then_some(v)
    }

    fn contains(self, other: Versions) -> bool {
        self.min <= other.min && other.max <= self.max
    }

    /// A Rust condition on `version` that is true in `self`, knowing the version is in `within`.
    fn condition(self, within: Versions) -> Option<String> {
        let low = self.min > within.min;
        let high = self.max < within.max;
        match (low, high) {
            (false, false) => None,
            (true, false) => Some(format!("version >= {}", self.min)),
            (false, true) => Some(format!("version <= {}", self.max)),
            (true, true) if self.min == self.max => Some(format!("version == {}", self.min)),
            (true, true) => Some(format!("({}..={}).contains(&version)", self.min, self.max)),
        }
    }

    /// `3+`, `0-2` or `5`, where `+` means "up to the newest version of `within`".
    fn describe(self, within: Versions) -> String {
        if self.max == within.max {
            format!("{}+", self.min)
        } else if self.min == self.max {
            format!("{}", self.min)
        } else {
            format!("{}-{}", self.min, self.max)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Type {
    Int(&'static str),
    F64,
    Bool,
    Uuid,
    String,
    Bytes,
    Records,
    Struct(String),
    Array(Box<Type>),
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: Type,
    /// Already intersected with the message's versions.
    versions: Versions,
    /// Already intersected with `versions`; `None` if never nullable.
    nullable: Option<Versions>,
    /// Nullable in some version in the definition, so the Rust type is an `Option`.
    optional: bool,
    tag: Option<u32>,
    default: Option<String>,
    doc: String,
    line: usize,
}

#[derive(Debug, Clone)]
struct StructDef {
    name: String,
    doc: String,
    fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
}

#[derive(Debug, Clone)]
struct Message {
    kind: Kind,
    file: String,
    api_key: i16,
    /// The `ApiKey` variant: the name without `Request`/`Response`.
    api: String,
    versions: Versions,
    flexible: Option<i16>,
    /// The root struct first, then the nested ones.
    structs: Vec<StructDef>,
}

impl Message {
    fn name(&self) -> &str {
        self.structs.first().map(|s| s.name.as_str()).unwrap_or_default()
    }

    /// The Rust expression for "this version is flexible", or a constant.
    fn flexible_expr(&self) -> &'static str {
        match self.flexible {
            None => "false",
            Some(_) => "flexible",
        }
    }

    fn flexible_binding(&self) -> Option<String> {
        let from = self.flexible?;
        Some(if from <= self.versions.min {
            "let flexible = true;".to_owned()
        } else {
            format!("let flexible = version >= {from};")
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

struct Line<'a> {
    number: usize,
    indent: usize,
    /// The part before `--`, trimmed.
    content: &'a str,
    /// The part after `--`, trimmed.
    doc: &'a str,
}

fn split_line(number: usize, raw: &str) -> Result<Option<Line<'_>>> {
    let trimmed = raw.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let indent = raw.len() - trimmed.len();
    if raw[..indent].contains('\t') || !indent.is_multiple_of(2) {
        return Err(format!("line {number}: indent with an even number of spaces"));
    }
    let (content, doc) = match trimmed.find("--") {
        Some(at) => (trimmed[..at].trim(), trimmed[at + 2..].trim()),
        None => (trimmed.trim(), ""),
    };
    Ok(Some(Line { number, indent: indent / 2, content, doc }))
}

fn append_doc(doc: &mut String, more: &str) {
    if more.is_empty() {
        return;
    }
    if !doc.is_empty() {
        doc.push(' ');
    }
    doc.push_str(more);
}

fn parse_versions(text: &str, line: usize) -> Result<Versions> {
    let number = |s: &str| s.parse::<i16>().map_err(|_| format!("line {line}: bad version range `{text}`"));
    if let Some(min) = text.strip_suffix('+') {
        Ok(Versions { min: number(min)?, max: i16::MAX })
    } else if let Some((min, max)) = text.split_once('-') {
        let v = Versions { min: number(min)?, max: number(max)? };
        if v.min > v.max {
            return Err(format!("line {line}: empty version range `{text}`"));
        }
        Ok(v)
    } else {
        let v = number(text)?;
        Ok(Versions { min: v, max: v })
    }
}

fn parse_type(text: &str, line: usize) -> Result<Type> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let element = parse_type(inner, line)?;
        return match element {
            Type::Array(_) | Type::Records => Err(format!("line {line}: arrays of `{inner}` are not supported")),
            element => Ok(Type::Array(Box::new(element))),
        };
    }
    Ok(match text {
        "i8" => Type::Int("i8"),
        "i16" => Type::Int("i16"),
        "i32" => Type::Int("i32"),
        "i64" => Type::Int("i64"),
        "u16" => Type::Int("u16"),
        "u32" => Type::Int("u32"),
        "f64" => Type::F64,
        "bool" => Type::Bool,
        "uuid" => Type::Uuid,
        "string" => Type::String,
        "bytes" => Type::Bytes,
        "records" => Type::Records,
        name if name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            Type::Struct(name.to_owned())
        }
        other => return Err(format!("line {line}: unknown type `{other}`")),
    })
}

/// A struct being parsed: its definition and the indentation level of its fields.
struct Open {
    def: StructDef,
    level: usize,
}

fn parse_file(file: &str, text: &str) -> Result<Vec<Message>> {
    let mut messages: Vec<Message> = Vec::new();
    // The structs of the current message still open, innermost last.
    let mut open: Vec<Open> = Vec::new();
    // Where the last documentation continuation goes: (struct depth in `open`, field index) or the message.
    let mut last_doc: Option<(usize, Option<usize>)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let Some(line) = split_line(number, raw)? else { continue };
        let context = |e: String| format!("{file}: {e}");
        if line.content.is_empty() {
            let Some((depth, field)) = last_doc else {
                return Err(context(format!("line {number}: documentation belongs to nothing")));
            };
            let Some(target) = open.get_mut(depth) else {
                return Err(context(format!("line {number}: documentation belongs to nothing")));
            };
            match field.and_then(|f| target.def.fields.get_mut(f)) {
                Some(field) => append_doc(&mut field.doc, line.doc),
                None => append_doc(&mut target.def.doc, line.doc),
            }
            continue;
        }
        if line.indent == 0 {
            close_message(&mut open, &mut messages)?;
            let message = parse_message_line(file, &line).map_err(context)?;
            open.push(Open {
                def: StructDef { name: message.1, doc: line.doc.to_owned(), fields: Vec::new() },
                level: 1,
            });
            messages.push(message.0);
            last_doc = Some((0, None));
            continue;
        }
        // Close the structs this line is not inside of.
        while open.last().is_some_and(|o| o.level > line.indent) {
            finish_struct(&mut open, &mut messages)?;
        }
        let Some(message) = messages.last() else {
            return Err(context(format!("line {number}: a field before any message")));
        };
        let depth = open.len().saturating_sub(1);
        let Some(current) = open.last_mut() else {
            return Err(context(format!("line {number}: a field outside any message")));
        };
        if current.level != line.indent {
            return Err(context(format!("line {number}: unexpected indentation")));
        }
        let field = parse_field_line(message, &line).map_err(context)?;
        let opens = match &field.ty {
            Type::Struct(name) => Some(name.clone()),
            Type::Array(element) => match element.as_ref() {
                Type::Struct(name) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        };
        current.def.fields.push(field);
        last_doc = Some((depth, Some(current.def.fields.len() - 1)));
        if let Some(name) = opens {
            open.push(Open { def: StructDef { name, doc: String::new(), fields: Vec::new() }, level: line.indent + 1 });
        }
    }
    close_message(&mut open, &mut messages)?;
    Ok(messages)
}

/// Moves the innermost open struct into its message.
fn finish_struct(open: &mut Vec<Open>, messages: &mut [Message]) -> Result<()> {
    let Some(done) = open.pop() else { return Ok(()) };
    let Some(message) = messages.last_mut() else { return Ok(()) };
    if done.def.fields.is_empty() {
        // No fields under it: the field reuses a struct defined earlier in the message.
        let parent = open.last().and_then(|p| p.def.fields.last().map(|f| (p.def.name.as_str(), f)));
        let earlier = message.structs.iter_mut().find(|s| s.name == done.def.name);
        return match (earlier, parent) {
            (Some(earlier), Some((parent, field))) => {
                let role = if matches!(field.ty, Type::Array(_)) { "an element of" } else { "the value of" };
                let _ = write!(earlier.doc, "\n\n*Also {role} [`{parent}::{}`].*", field.name);
                Ok(())
            }
            _ => Err(format!(
                "{}: struct {} has no fields (and is not defined earlier in the message)",
                message.file, done.def.name
            )),
        };
    }
    let mut def = done.def;
    match open.last() {
        None => message.structs.insert(0, def),
        Some(parent) => {
            // A nested struct is documented by the field that holds it, complete by now: the
            // parent's fields continue only after this struct closes.
            if let Some(field) = parent.def.fields.last() {
                let role = if matches!(field.ty, Type::Array(_)) { "An element of" } else { "The value of" };
                def.doc = format!("{}\n\n*{role} [`{}::{}`].*", field.doc, parent.def.name, field.name);
            }
            message.structs.push(def);
        }
    }
    Ok(())
}

fn close_message(open: &mut Vec<Open>, messages: &mut [Message]) -> Result<()> {
    while !open.is_empty() {
        finish_struct(open, messages)?;
    }
    Ok(())
}

fn parse_message_line(file: &str, line: &Line<'_>) -> Result<(Message, String)> {
    let number = line.number;
    let mut words = line.content.split_whitespace();
    let kind = match words.next() {
        Some("request") => Kind::Request,
        Some("response") => Kind::Response,
        _ => return Err(format!("line {number}: expected `request` or `response`")),
    };
    let name = words.next().ok_or(format!("line {number}: missing message name"))?.to_owned();
    let suffix = match kind {
        Kind::Request => "Request",
        Kind::Response => "Response",
    };
    let api = name.strip_suffix(suffix).ok_or(format!("line {number}: `{name}` must end in `{suffix}`"))?.to_owned();
    let (mut api_key, mut versions, mut flexible) = (None, None, None);
    for word in words {
        match word.split_once('=') {
            Some(("api", key)) => api_key = Some(key.parse::<i16>().map_err(|_| format!("line {number}: bad api"))?),
            Some(("versions", v)) => versions = Some(parse_versions(v, number)?),
            Some(("flexible", "none")) => flexible = Some(None),
            Some(("flexible", v)) => {
                let from = v.strip_suffix('+').ok_or(format!("line {number}: flexible=<v>+ or none"))?;
                flexible = Some(Some(from.parse::<i16>().map_err(|_| format!("line {number}: bad flexible"))?));
            }
            _ => return Err(format!("line {number}: unknown attribute `{word}`")),
        }
    }
    let message = Message {
        kind,
        file: file.to_owned(),
        api_key: api_key.ok_or(format!("line {number}: missing api="))?,
        api,
        versions: versions.ok_or(format!("line {number}: missing versions="))?,
        flexible: flexible.ok_or(format!("line {number}: missing flexible="))?,
        structs: Vec::new(),
    };
    if message.versions.max == i16::MAX {
        return Err(format!("line {number}: a message's versions must be bounded"));
    }
    Ok((message, name))
}

fn parse_field_line(message: &Message, line: &Line<'_>) -> Result<Field> {
    let number = line.number;
    let mut words = line.content.split_whitespace();
    let name = words
        .next()
        .and_then(|w| w.strip_suffix(':'))
        .ok_or(format!("line {number}: expected `name: type`"))?
        .to_owned();
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(format!("line {number}: field names are snake_case"));
    }
    let ty = parse_type(words.next().ok_or(format!("line {number}: missing type"))?, number)?;
    let mut versions = message.versions;
    let mut nullable = None;
    let mut tag = None;
    let mut default = None;
    for word in words {
        if let Some(range) = word.strip_prefix('v') {
            versions = parse_versions(range, number)?;
        } else if word == "null" {
            nullable = Some(Versions { min: 0, max: i16::MAX });
        } else if let Some(range) = word.strip_prefix("null=") {
            nullable = Some(parse_versions(range, number)?);
        } else if let Some(n) = word.strip_prefix("tag=") {
            tag = Some(n.parse::<u32>().map_err(|_| format!("line {number}: bad tag"))?);
        } else if let Some(value) = word.strip_prefix("default=") {
            default = Some(value.to_owned());
        } else {
            return Err(format!("line {number}: unknown attribute `{word}`"));
        }
    }
    let versions = versions
        .intersect(message.versions)
        .ok_or(format!("line {number}: `{name}` is in none of the message's versions; leave it out"))?;
    let optional = nullable.is_some() || ty == Type::Records;
    let nullable = nullable.and_then(|n| n.intersect(versions));
    if let Some(tag) = tag {
        let flexible = message.flexible.map(|from| Versions { min: from, max: i16::MAX });
        if !flexible.is_some_and(|f| f.contains(versions)) {
            return Err(format!("line {number}: tagged field `{name}` (tag {tag}) in a non-flexible version"));
        }
    }
    if matches!(ty, Type::Struct(_)) && optional {
        return Err(format!("line {number}: nullable structs are not supported"));
    }
    if matches!(ty, Type::Int(_) | Type::F64 | Type::Bool | Type::Uuid) && optional {
        return Err(format!("line {number}: `{name}` cannot be nullable"));
    }
    Ok(Field { name, ty, versions, nullable, optional, tag, default, doc: line.doc.to_owned(), line: number })
}

// ---------------------------------------------------------------------------------------------
// Checks across messages.

fn check(messages: &[Message]) -> Result<()> {
    let mut struct_names = BTreeMap::new();
    let mut apis: BTreeMap<&str, (Option<&Message>, Option<&Message>)> = BTreeMap::new();
    for message in messages {
        for def in &message.structs {
            if let Some(other) = struct_names.insert(def.name.clone(), message.file.clone()) {
                return Err(format!("struct {} is defined in {other} and in {}", def.name, message.file));
            }
            let mut tags = Vec::new();
            let mut names = Vec::new();
            for field in &def.fields {
                if names.contains(&field.name) {
                    return Err(format!("{}:{}: duplicate field `{}`", message.file, field.line, field.name));
                }
                names.push(field.name.clone());
                if let Some(tag) = field.tag {
                    if tags.contains(&tag) {
                        return Err(format!("{}:{}: duplicate tag {tag}", message.file, field.line));
                    }
                    tags.push(tag);
                }
                default_expr(field).map_err(|e| format!("{}:{}: {e}", message.file, field.line))?;
            }
        }
        let entry = apis.entry(message.api.as_str()).or_default();
        let slot = match message.kind {
            Kind::Request => &mut entry.0,
            Kind::Response => &mut entry.1,
        };
        if slot.replace(message).is_some() {
            return Err(format!("{} is defined twice", message.name()));
        }
    }
    for (api, pair) in &apis {
        let (Some(request), Some(response)) = pair else {
            return Err(format!("{api}: a request and a response must both be defined"));
        };
        if (request.api_key, request.versions, request.flexible)
            != (response.api_key, response.versions, response.flexible)
        {
            return Err(format!("{api}: request and response disagree on api, versions or flexible"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generation.

fn rust_type(field: &Field) -> String {
    let base = element_rust_type(&field.ty);
    if field.optional { format!("Option<{base}>") } else { base }
}

fn element_rust_type(ty: &Type) -> String {
    match ty {
        Type::Int(name) => (*name).to_owned(),
        Type::F64 => "f64".to_owned(),
        Type::Bool => "bool".to_owned(),
        Type::Uuid => "Uuid".to_owned(),
        Type::String => "String".to_owned(),
        Type::Bytes => "Bytes".to_owned(),
        Type::Records => "RecordSet".to_owned(),
        Type::Struct(name) => name.clone(),
        Type::Array(element) => format!("Vec<{}>", element_rust_type(element)),
    }
}

/// The default value of a field: its Rust expression, and whether it equals the type's
/// `Default` (so that a struct whose fields all do can derive `Default`).
fn default_expr(field: &Field) -> Result<(String, bool)> {
    let wrap = |value: String, natural: bool| {
        if field.optional { (format!("Some({value})"), false) } else { (value, natural) }
    };
    let Some(default) = field.default.as_deref() else {
        return Ok(match &field.ty {
            Type::Int(_) => ("0".to_owned(), true),
            Type::F64 => ("0.0".to_owned(), true),
            Type::Bool => ("false".to_owned(), true),
            Type::Uuid => ("Uuid::ZERO".to_owned(), true),
            Type::Records => ("None".to_owned(), true),
            Type::String => wrap("String::new()".to_owned(), true),
            Type::Bytes => wrap("Bytes::new()".to_owned(), true),
            Type::Array(_) => wrap("Vec::new()".to_owned(), true),
            Type::Struct(name) => wrap(format!("{name}::default()"), true),
        });
    };
    if default == "null" {
        if !field.optional {
            return Err(format!("default=null on `{}`, which is not nullable", field.name));
        }
        return Ok(("None".to_owned(), true));
    }
    match &field.ty {
        Type::Int(ty) => {
            let value = parse_int(default).ok_or(format!("bad default `{default}` for {ty}"))?;
            let (min, max) = match *ty {
                "i8" => (i64::from(i8::MIN), i64::from(i8::MAX)),
                "i16" => (i64::from(i16::MIN), i64::from(i16::MAX)),
                "i32" => (i64::from(i32::MIN), i64::from(i32::MAX)),
                "u16" => (0, i64::from(u16::MAX)),
                "u32" => (0, i64::from(u32::MAX)),
                _ => (i64::MIN, i64::MAX),
            };
            if !(min..=max).contains(&value) {
                return Err(format!("default `{default}` out of range for {ty}"));
            }
            let literal =
                if value == min && *ty != "u16" && *ty != "u32" { format!("{ty}::MIN") } else { default.to_owned() };
            Ok((literal, value == 0))
        }
        Type::Bool => match default {
            "true" => Ok(("true".to_owned(), false)),
            "false" => Ok(("false".to_owned(), true)),
            _ => Err(format!("bad default `{default}` for bool")),
        },
        Type::String => {
            let text = default
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or(format!("string defaults are quoted: `{default}`"))?;
            if text.is_empty() {
                Ok(wrap("String::new()".to_owned(), true))
            } else {
                Ok(wrap(format!("String::from({text:?})"), false))
            }
        }
        _ => Err(format!("`{}` cannot have a default other than null", field.name)),
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<i64>().ok()?,
    };
    Some(if negative { -value } else { value })
}

fn field_doc(field: &Field, message: &Message) -> String {
    let mut facts = Vec::new();
    if field.versions != message.versions {
        facts.push(format!("versions {}", field.versions.describe(message.versions)));
    }
    match field.nullable {
        Some(nullable) if nullable == field.versions => facts.push("nullable".to_owned()),
        Some(nullable) => facts.push(format!("nullable in {}", nullable.describe(message.versions))),
        None => {}
    }
    if let Some(tag) = field.tag {
        facts.push(format!("tagged field {tag}"));
    }
    if let Some(default) = &field.default {
        facts.push(format!("default {default}"));
    }
    let doc = if field.doc.is_empty() { format!("`{}`.", field.name) } else { field.doc.clone() };
    if facts.is_empty() {
        return doc;
    }
    format!("{doc}\n\n*Wire: {}.*", facts.join(", "))
}

/// The wire size of the smallest encoding of a value of this type.
fn size_min_expr(ty: &Type, flexible: &str) -> String {
    match ty {
        Type::Int("i8") | Type::Bool => "1".to_owned(),
        Type::Int("i16" | "u16") => "2".to_owned(),
        Type::Int("i32" | "u32") => "4".to_owned(),
        Type::Int(_) | Type::F64 => "8".to_owned(),
        Type::Uuid => "16".to_owned(),
        Type::String => compact_or(flexible, "2"),
        Type::Bytes | Type::Records | Type::Array(_) => compact_or(flexible, "4"),
        Type::Struct(name) => format!("{name}::size_min(version)"),
    }
}

fn compact_or(flexible: &str, classic: &str) -> String {
    match flexible {
        "false" => classic.to_owned(),
        "true" => "1".to_owned(),
        _ => format!("if {flexible} {{ 1 }} else {{ {classic} }}"),
    }
}

fn qualified(def: &StructDef, field: &Field) -> String {
    format!("{}.{}", def.name, field.name)
}

/// The expression that reads one value of `field` (at a version where it is present).
fn read_expr(def: &StructDef, field: &Field, flexible: &str) -> String {
    let name = qualified(def, field);
    let null_cond = field.nullable.map(|n| n.condition(field.versions).unwrap_or_else(|| "true".to_owned()));
    let wrap = |read: String| match (&null_cond, field.optional) {
        (Some(cond), _) => format!("codec::nullable({read}?, {cond}, {name:?})?"),
        (None, true) => format!("codec::nullable({read}?, false, {name:?})?"),
        (None, false) => format!("codec::required({read}?, {name:?})?"),
    };
    match &field.ty {
        Type::Int(ty) => format!("codec::get_{ty}(buf)?"),
        Type::F64 => "codec::get_f64(buf)?".to_owned(),
        Type::Bool => "codec::get_bool(buf)?".to_owned(),
        Type::Uuid => "codec::get_uuid(buf)?".to_owned(),
        Type::String => wrap(format!("codec::get_string(buf, {flexible})")),
        Type::Bytes => wrap(format!("codec::get_bytes(buf, {flexible})")),
        Type::Records => wrap(format!("codec::get_records(buf, {flexible})")),
        Type::Struct(name) => format!("{name}::read(buf, version)?"),
        Type::Array(element) => {
            let element_read = match element.as_ref() {
                Type::Int(ty) => format!("codec::get_{ty}"),
                Type::F64 => "codec::get_f64".to_owned(),
                Type::Bool => "codec::get_bool".to_owned(),
                Type::Uuid => "codec::get_uuid".to_owned(),
                Type::String => {
                    format!("|buf| codec::required(codec::get_string(buf, {flexible})?, {:?})", format!("{name}[]"))
                }
                Type::Bytes => {
                    format!("|buf| codec::required(codec::get_bytes(buf, {flexible})?, {:?})", format!("{name}[]"))
                }
                Type::Struct(s) => format!("|buf| {s}::read(buf, version)"),
                Type::Records | Type::Array(_) => "unreachable".to_owned(),
            };
            let size = size_min_expr(element, flexible);
            wrap(format!("codec::get_array(buf, {flexible}, {size}, {element_read})"))
        }
    }
}

/// The statement that writes `self.<field>` (at a version where it is present).
fn write_stmt(def: &StructDef, field: &Field, flexible: &str) -> String {
    let name = qualified(def, field);
    let this = format!("self.{}", field.name);
    let nullable = field.nullable.map(|n| n.condition(field.versions).unwrap_or_else(|| "true".to_owned()));
    let nullable = nullable.unwrap_or_else(|| "false".to_owned());
    match &field.ty {
        Type::Int(ty) => format!("enc.put_{ty}({this});"),
        Type::F64 => format!("enc.put_f64({this});"),
        Type::Bool => format!("enc.put_bool({this});"),
        Type::Uuid => format!("enc.put_uuid(&{this});"),
        Type::String => {
            let value = if field.optional { format!("{this}.as_deref()") } else { format!("Some({this}.as_str())") };
            format!("enc.put_string({value}, {flexible}, {nullable}, {name:?}, version)?;")
        }
        Type::Bytes => {
            let value = if field.optional { format!("{this}.as_deref()") } else { format!("Some({this}.as_ref())") };
            format!("enc.put_bytes({value}, {flexible}, {nullable}, {name:?}, version)?;")
        }
        Type::Records => format!("enc.put_records({this}.as_ref(), {flexible}, {nullable}, {name:?}, version)?;"),
        Type::Struct(_) => format!("{this}.write(enc, version)?;"),
        Type::Array(element) => {
            let items = if field.optional { format!("{this}.as_deref()") } else { format!("Some({this}.as_slice())") };
            let element_write = match element.as_ref() {
                Type::Int(ty) => format!("|enc, item| {{ enc.put_{ty}(*item); Ok(()) }}"),
                Type::F64 => "|enc, item| { enc.put_f64(*item); Ok(()) }".to_owned(),
                Type::Bool => "|enc, item| { enc.put_bool(*item); Ok(()) }".to_owned(),
                Type::Uuid => "|enc, item| { enc.put_uuid(item); Ok(()) }".to_owned(),
                Type::String => {
                    format!("|enc, item| enc.put_string(Some(item.as_str()), {flexible}, false, {name:?}, version)")
                }
                Type::Bytes => {
                    format!("|enc, item| enc.put_bytes(Some(item.as_ref()), {flexible}, false, {name:?}, version)")
                }
                Type::Struct(_) => "|enc, item| item.write(enc, version)".to_owned(),
                Type::Records | Type::Array(_) => "unreachable".to_owned(),
            };
            format!("enc.put_array({items}, {flexible}, {nullable}, {name:?}, version, {element_write})?;")
        }
    }
}

/// The condition under which a tagged field differs from its default (and so is written).
fn differs_from_default(field: &Field) -> Result<String> {
    let this = format!("self.{}", field.name);
    let (default, _) = default_expr(field)?;
    Ok(match (&field.ty, default.as_str()) {
        (_, "None") => format!("{this}.is_some()"),
        (Type::Bool, "false") => this,
        (Type::Bool, _) => format!("!{this}"),
        (Type::Array(_) | Type::String | Type::Bytes, "Vec::new()" | "String::new()" | "Bytes::new()") => {
            format!("!{this}.is_empty()")
        }
        (_, default) => format!("{this} != {default}"),
    })
}

/// The expression of a sample value of `field` for tests: never the default where present,
/// null (or empty) in variant 1 where the field allows it.
fn sample_expr(def: &StructDef, field: &Field, seed: i64) -> Result<String> {
    let (default, _) = default_expr(field)?;
    let int = |ty: &str| match ty {
        "i8" => format!("{seed} + variant as i8"),
        _ => format!("{seed} + {ty}::from(variant)"),
    };
    let element = |ty: &Type| -> String {
        match ty {
            Type::Int(t) => int(t),
            Type::F64 => format!("{seed}.5 + f64::from(variant)"),
            Type::Bool => "variant != 1".to_owned(),
            Type::Uuid => format!("Uuid([{seed} + variant; 16])"),
            Type::String => format!("codec::sample::string({:?}, variant)", qualified(def, field)),
            Type::Bytes => "codec::sample::bytes(variant)".to_owned(),
            Type::Records => "codec::sample::records(variant)".to_owned(),
            Type::Struct(name) => format!("{name}::sample(version, variant)"),
            Type::Array(_) => "unreachable".to_owned(),
        }
    };
    let value = match &field.ty {
        Type::Bool => (if default == "true" { "false" } else { "true" }).to_owned(),
        Type::Array(inner) => format!("codec::sample::array(variant, |variant| {})", element(inner)),
        ty => element(ty),
    };
    if !field.optional {
        return Ok(value);
    }
    Ok(match field.nullable.map(|n| n.condition(field.versions)) {
        Some(None) => format!("if variant == 1 {{ None }} else {{ Some({value}) }}"),
        Some(Some(cond)) => format!("if variant == 1 && {cond} {{ None }} else {{ Some({value}) }}"),
        None => format!("Some({value})"),
    })
}

/// A seed for a field's sample integers that cannot collide with its default.
fn sample_seed(field: &Field, index: usize) -> i64 {
    let mut seed = 2 + 3 * index as i64;
    let default = field.default.as_deref().and_then(parse_int);
    while default.is_some_and(|d| (seed..seed + 3).contains(&d)) {
        seed += 3;
    }
    seed
}

fn doc_attr(out: &mut String, indent: &str, doc: &str) {
    for line in doc.lines() {
        let _ = writeln!(out, "{indent}#[doc = {:?}]", format!(" {line}"));
    }
}

fn generate_struct(out: &mut String, message: &Message, def: &StructDef, root: bool) -> Result<()> {
    let flexible = message.flexible_expr();
    let mut doc = def.doc.clone();
    if doc.is_empty() {
        doc = format!("`{}`.", def.name);
    }
    if root {
        let flexible_text = match message.flexible {
            Some(from) => format!("flexible from {from}"),
            None => "never flexible".to_owned(),
        };
        let _ = write!(
            doc,
            "\n\n*API key {} ({}), versions {}-{}, {flexible_text}. Defined in `src/protocol/schema/{}`.*",
            message.api_key, message.api, message.versions.min, message.versions.max, message.file
        );
    }
    doc_attr(out, "", &doc);
    let mut natural = true;
    let mut defaults = Vec::new();
    for field in &def.fields {
        let (value, is_natural) = default_expr(field)?;
        natural &= is_natural;
        defaults.push(value);
    }
    let derive = if natural { "Debug, Clone, PartialEq, Default" } else { "Debug, Clone, PartialEq" };
    let _ = writeln!(out, "#[derive({derive})]\npub struct {} {{", def.name);
    for field in &def.fields {
        doc_attr(out, "    ", &field_doc(field, message));
        let _ = writeln!(out, "    pub {}: {},", field.name, rust_type(field));
    }
    out.push_str("}\n\n");

    if !natural {
        let _ = writeln!(out, "impl Default for {} {{\n    fn default() -> Self {{\n        Self {{", def.name);
        for (field, value) in def.fields.iter().zip(&defaults) {
            let _ = writeln!(out, "            {}: {value},", field.name);
        }
        out.push_str("        }\n    }\n}\n\n");
    }

    // Struct: read, write, size_min.
    let binding = message.flexible_binding().unwrap_or_default();
    let mut read = String::new();
    let mut tagged: Vec<&Field> = def.fields.iter().filter(|f| f.tag.is_some()).collect();
    tagged.sort_by_key(|f| f.tag);
    for (field, default) in def.fields.iter().zip(&defaults) {
        if field.tag.is_some() {
            let _ = writeln!(read, "        let mut {} = {default};", field.name);
            continue;
        }
        let expr = read_expr(def, field, flexible);
        match field.versions.condition(message.versions) {
            None => {
                let _ = writeln!(read, "        let {} = {expr};", field.name);
            }
            Some(cond) => {
                let _ = writeln!(read, "        let {} = if {cond} {{ {expr} }} else {{ {default} }};", field.name);
            }
        }
    }
    if message.flexible.is_some() {
        if tagged.is_empty() {
            read.push_str("        if flexible {\n            codec::skip_tagged_fields(buf)?;\n        }\n");
        } else {
            read.push_str("        if flexible {\n            codec::get_tagged_fields(buf, |tag, buf| {\n");
            for (i, field) in tagged.iter().enumerate() {
                let tag = field.tag.unwrap_or_default();
                let cond = match field.versions.condition(message.versions) {
                    Some(cond) => format!("tag == {tag} && {cond}"),
                    None => format!("tag == {tag}"),
                };
                let keyword = if i == 0 { "if" } else { "} else if" };
                let expr = read_expr(def, field, "true");
                let _ =
                    writeln!(read, "                {keyword} {cond} {{\n                    {} = {expr};", field.name);
            }
            read.push_str("                }\n                Ok(())\n            })?;\n        }\n");
        }
    }
    let names: Vec<&str> = def.fields.iter().map(|f| f.name.as_str()).collect();
    let _ = writeln!(read, "        Ok(Self {{ {} }})", names.join(", "));

    let mut write = String::new();
    for field in def.fields.iter().filter(|f| f.tag.is_none()) {
        let stmt = write_stmt(def, field, flexible);
        match field.versions.condition(message.versions) {
            None => {
                let _ = writeln!(write, "        {stmt}");
            }
            Some(cond) => {
                let _ = writeln!(write, "        if {cond} {{\n            {stmt}\n        }}");
            }
        }
    }
    if message.flexible.is_some() {
        write.push_str("        if flexible {\n");
        let mut counts = Vec::new();
        for field in &tagged {
            let tag = field.tag.unwrap_or_default();
            let differs = differs_from_default(field)?;
            let cond = match field.versions.condition(message.versions) {
                Some(cond) => format!("{cond} && {differs}"),
                None => differs,
            };
            let _ = writeln!(write, "            let tagged_{tag} = {cond};");
            counts.push(format!("u32::from(tagged_{tag})"));
        }
        if counts.is_empty() {
            counts.push("0".to_owned());
        }
        let _ = writeln!(write, "            enc.put_unsigned_varint({});", counts.join(" + "));
        for field in &tagged {
            let tag = field.tag.unwrap_or_default();
            let stmt = write_stmt(def, field, "true");
            let _ = writeln!(write, "            if tagged_{tag} {{");
            let _ = writeln!(write, "                enc.put_tagged_field({tag}, |enc| {{");
            let _ = writeln!(write, "                    {stmt}");
            let _ = writeln!(write, "                    Ok(())");
            let _ = writeln!(write, "                }})?;");
            let _ = writeln!(write, "            }}");
        }
        write.push_str("        }\n");
    }
    write.push_str("        Ok(())\n");

    let mut size = String::from("        let mut size = 0;\n");
    for field in def.fields.iter().filter(|f| f.tag.is_none()) {
        let add = size_min_expr(&field.ty, flexible);
        match field.versions.condition(message.versions) {
            None => {
                let _ = writeln!(size, "        size += {add};");
            }
            Some(cond) => {
                let _ = writeln!(size, "        if {cond} {{\n            size += {add};\n        }}");
            }
        }
    }
    if message.flexible.is_some() {
        size.push_str("        if flexible {\n            size += 1;\n        }\n");
    }
    size.push_str("        size\n");

    let with_binding = |body: &str| -> (String, &'static str) {
        let uses_flexible = uses_ident(body, "flexible");
        let full =
            if uses_flexible && !binding.is_empty() { format!("        {binding}\n{body}") } else { body.to_owned() };
        let version = if uses_ident(&full, "version") { "version" } else { "_version" };
        (full, version)
    };
    let (read, read_version) = with_binding(&read);
    let (write, write_version) = with_binding(&write);
    let (size, size_version) = with_binding(&size);
    let name = &def.name;
    let _ = writeln!(out, "impl Struct for {name} {{");
    let _ = writeln!(out, "    fn read(buf: &mut BytesMut, {read_version}: i16) -> Result<Self, DecodeError> {{");
    let _ = writeln!(out, "{read}    }}\n");
    let _ = writeln!(out, "    fn write(&self, enc: &mut Encoder, {write_version}: i16) -> Result<(), EncodeError> {{");
    let _ = writeln!(out, "{write}    }}\n");
    let _ = writeln!(out, "    fn size_min({size_version}: i16) -> usize {{");
    let _ = writeln!(out, "{size}    }}\n}}\n");

    // Sample values for tests.
    let mut sample = String::new();
    for (index, (field, default)) in def.fields.iter().zip(&defaults).enumerate() {
        let value = sample_expr(def, field, sample_seed(field, index))?;
        match field.versions.condition(message.versions) {
            None => {
                let _ = writeln!(sample, "            {}: {value},", field.name);
            }
            // A bool sample is the opposite of its default: the condition itself, or its negation.
            Some(cond) if field.ty == Type::Bool && value == "true" => {
                let _ = writeln!(sample, "            {}: {cond},", field.name);
            }
            Some(cond) if field.ty == Type::Bool => {
                let _ = writeln!(sample, "            {}: {},", field.name, negate(&cond));
            }
            Some(cond) => {
                let _ = writeln!(sample, "            {}: if {cond} {{ {value} }} else {{ {default} }},", field.name);
            }
        }
    }
    let version = if uses_ident(&sample, "version") { "version" } else { "_version" };
    let variant = if uses_ident(&sample, "variant") { "variant" } else { "_variant" };
    let _ = writeln!(out, "#[cfg(test)]\nimpl {name} {{");
    let _ =
        writeln!(out, "    /// A value with every field present at `version` set, for tests: variant 0 fills arrays,");
    let _ = writeln!(out, "    /// variant 1 uses nulls and empty arrays where allowed, variant 2 one-element arrays.");
    let _ = writeln!(out, "    pub(crate) fn sample({version}: i16, {variant}: u8) -> Self {{");
    let _ = writeln!(out, "        Self {{\n{sample}        }}\n    }}\n}}\n");

    if root {
        let (min, max) = (message.versions.min, message.versions.max);
        let flexible_min = match message.flexible {
            Some(from) => format!("Some({from})"),
            None => "None".to_owned(),
        };
        let (api, key, file) = (&message.api, message.api_key, &message.file);
        let _ = writeln!(
            out,
            "const _: () = assert!(ApiKey::{api} as i16 == {key}, \"api= in {file} is not {api}'s key\");\n"
        );
        let _ = writeln!(out, "impl Message for {name} {{");
        let _ = writeln!(out, "    const API_KEY: ApiKey = ApiKey::{api};");
        let _ = writeln!(out, "    const VERSION_MIN: i16 = {min};");
        let _ = writeln!(out, "    const VERSION_MAX: i16 = {max};");
        let _ = writeln!(out, "    const FLEXIBLE_MIN: Option<i16> = {flexible_min};\n");
        let _ = writeln!(out, "    fn decode(buf: &mut BytesMut, version: i16) -> Result<Self, DecodeError> {{");
        let _ = writeln!(out, "        if !({min}..={max}).contains(&version) {{");
        let _ = writeln!(out, "            return Err(DecodeError::UnsupportedVersion {{ api_key: {key}, version }});");
        let _ = writeln!(out, "        }}\n        Self::read(buf, version)\n    }}\n");
        let _ =
            writeln!(out, "    fn encode_into(&self, enc: &mut Encoder, version: i16) -> Result<(), EncodeError> {{");
        let _ = writeln!(out, "        if !({min}..={max}).contains(&version) {{");
        let _ = writeln!(out, "            return Err(EncodeError::UnsupportedVersion {{ api_key: {key}, version }});");
        let _ = writeln!(out, "        }}\n        self.write(enc, version)\n    }}\n}}\n");
        if message.kind == Kind::Request {
            let _ = writeln!(out, "impl Request for {name} {{\n    type Response = {}Response;\n}}\n", message.api);
        }
    }
    Ok(())
}

fn generate(messages: &[Message]) -> Result<String> {
    check(messages)?;
    let mut out =
        String::from("// Generated by src/protocol/schema/codegen.rs from src/protocol/schema/*.msg. Do not edit.\n\n");
    for message in messages {
        for (i, def) in message.structs.iter().enumerate() {
            generate_struct(&mut out, message, def, i == 0)?;
        }
    }

    let mut apis: Vec<&Message> = messages.iter().filter(|m| m.kind == Kind::Request).collect();
    apis.sort_by_key(|m| m.api_key);

    out.push_str(
        "/// Every API this codec implements, with its versions, by API key: what ApiVersions advertises.\n\
         pub const SUPPORTED: &[ApiSupport] = &[\n",
    );
    for m in &apis {
        let flexible_min = match m.flexible {
            Some(from) => format!("Some({from})"),
            None => "None".to_owned(),
        };
        let _ = writeln!(
            out,
            "    ApiSupport {{ api_key: ApiKey::{}, version_min: {}, version_max: {}, flexible_min: {flexible_min} }},",
            m.api, m.versions.min, m.versions.max
        );
    }
    out.push_str("];\n\n");

    for (enum_name, suffix) in [("RequestBody", "Request"), ("ResponseBody", "Response")] {
        let lower = suffix.to_lowercase();
        let _ = writeln!(out, "/// The body of any {lower} this codec implements.");
        let _ = writeln!(out, "#[derive(Debug, Clone, PartialEq)]\npub enum {enum_name} {{");
        for m in &apis {
            let _ = writeln!(out, "    /// A{} {} {lower}.\n    {}({}{suffix}),", article(&m.api), m.api, m.api, m.api);
        }
        out.push_str("}\n\n");
        let _ = writeln!(out, "impl {enum_name} {{\n    /// The API this {lower} belongs to.");
        let _ = writeln!(out, "    pub fn api_key(&self) -> ApiKey {{\n        match self {{");
        for m in &apis {
            let _ = writeln!(out, "            {enum_name}::{}(_) => ApiKey::{},", m.api, m.api);
        }
        out.push_str("        }\n    }\n\n");
        let _ = writeln!(out, "    /// Encodes the body at `version` (see [`Message::encode_into`]).");
        let _ = writeln!(
            out,
            "    pub fn encode_into(&self, enc: &mut Encoder, version: i16) -> Result<(), EncodeError> {{"
        );
        let _ = writeln!(out, "        match self {{");
        for m in &apis {
            let _ = writeln!(out, "            {enum_name}::{}(body) => body.encode_into(enc, version),", m.api);
        }
        out.push_str("        }\n    }\n}\n\n");
        let article = article(suffix);
        let _ = writeln!(
            out,
            "/// Decodes the body of a{article} {lower} of `api_key` at `version` from the front of `buf`;"
        );
        let _ = writeln!(out, "/// any bytes after it are left in `buf`. An API or version outside [`SUPPORTED`] is");
        let _ = writeln!(out, "/// [`DecodeError::UnsupportedVersion`].");
        let _ = writeln!(out, "pub fn decode_{lower}_body(");
        let _ = writeln!(out, "    api_key: ApiKey,\n    version: i16,\n    buf: &mut BytesMut,");
        let _ = writeln!(out, ") -> Result<{enum_name}, DecodeError> {{\n    match api_key {{");
        for m in &apis {
            let _ = writeln!(
                out,
                "        ApiKey::{api} => {api}{suffix}::decode(buf, version).map({enum_name}::{api}),",
                api = m.api
            );
        }
        out.push_str(
            "        _ => Err(DecodeError::UnsupportedVersion { api_key: api_key.code(), version }),\n    }\n}\n\n",
        );
        let _ = writeln!(out, "/// A sample {lower} of every field present at `version` (see the `sample` functions).");
        let _ = writeln!(out, "#[cfg(test)]");
        let _ = writeln!(
            out,
            "pub(crate) fn sample_{lower}(api_key: ApiKey, version: i16, variant: u8) -> Option<{enum_name}> {{"
        );
        let _ = writeln!(out, "    Some(match api_key {{");
        for m in &apis {
            let _ = writeln!(
                out,
                "        ApiKey::{api} => {enum_name}::{api}({api}{suffix}::sample(version, variant)),",
                api = m.api
            );
        }
        out.push_str("        _ => return None,\n    })\n}\n\n");
    }
    Ok(out)
}

/// The negation of a condition made by [`Versions::condition`].
fn negate(cond: &str) -> String {
    if let Some(v) = cond.strip_prefix("version >= ") {
        format!("version < {v}")
    } else if let Some(v) = cond.strip_prefix("version <= ") {
        format!("version > {v}")
    } else if let Some(v) = cond.strip_prefix("version == ") {
        format!("version != {v}")
    } else {
        format!("!{cond}")
    }
}

/// Whether `code` mentions the identifier `name` (not as part of a longer identifier).
fn uses_ident(code: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['A', 'E', 'I', 'O', 'U', 'a', 'e', 'i', 'o', 'u']) { "n" } else { "" }
}
