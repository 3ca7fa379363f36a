//! What an error body says: the recognised shapes, within bounds.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Messages kept per error.
pub const MAX_MESSAGES: usize = 16;
/// Bytes kept per message (cut at a character boundary).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Bytes kept of a code.
const MAX_CODE_BYTES: usize = 256;

/// RFC 9457 problem details (`application/problem+json`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Problem {
    /// `type`: a URI reference that identifies the problem type.
    pub problem_type: Option<String>,
    /// `title`: a short summary of the problem type.
    pub title: Option<String>,
    /// `status`: the status code the server generated.
    pub status: Option<u16>,
    /// `detail`: an explanation specific to this occurrence.
    pub detail: Option<String>,
    /// `instance`: a URI reference that identifies this occurrence.
    pub instance: Option<String>,
    /// Every other member.
    pub extensions: Map<String, Value>,
}

/// What a shape found in a JSON body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Found {
    /// The human messages, in the body's order.
    pub messages: Vec<String>,
    /// A code, when the body has one (a number is written in decimal).
    pub code: Option<String>,
}

impl Found {
    /// A message and no code.
    pub fn message(message: impl Into<String>) -> Self {
        Found {
            messages: vec![message.into()],
            code: None,
        }
    }

    /// Sets the code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

/// A shape of error body of your own, tried before the built-in ones: return `None` when the
/// body is not of this shape. Any `Fn(&serde_json::Value) -> Option<Found>` is a shape.
pub trait Shape: Send + Sync + 'static {
    /// What `body` says, if it has this shape.
    fn find(&self, body: &Value) -> Option<Found>;
}

impl<F> Shape for F
where
    F: Fn(&Value) -> Option<Found> + Send + Sync + 'static,
{
    fn find(&self, body: &Value) -> Option<Found> {
        self(body)
    }
}

#[derive(Clone, Default)]
pub(crate) struct Shapes(pub(crate) Vec<Arc<dyn Shape>>);

impl fmt::Debug for Shapes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} custom shapes", self.0.len())
    }
}

/// What a body says: messages, code, problem details.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) messages: Vec<String>,
    pub(crate) code: Option<String>,
    pub(crate) problem: Option<Problem>,
}

/// Parses `body` (of content type `content_type`) with the custom shapes first, then the
/// built-in ones, then as plain text. Never panics; every output is bounded.
pub(crate) fn parse(content_type: Option<&str>, body: &[u8], shapes: &Shapes) -> Parsed {
    let ct = content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let is_html = ct.as_deref().is_some_and(|c| c == "text/html");
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    // A content type may lie: JSON is tried when it says so or when the body looks like JSON.
    if matches!(first, Some(b'{' | b'[')) {
        // serde_json's recursion limit (128) turns deep nesting into an error, not a stack
        // overflow.
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            let problem_type = ct
                .as_deref()
                .is_some_and(|c| c == "application/problem+json");
            return from_json(value, problem_type, shapes);
        }
    }
    if is_html || body.is_empty() {
        return Parsed::default();
    }
    Parsed {
        messages: first_line(body).into_iter().collect(),
        ..Parsed::default()
    }
}

fn from_json(value: Value, problem_type: bool, shapes: &Shapes) -> Parsed {
    for shape in &shapes.0 {
        if let Some(found) = shape.find(&value) {
            return Parsed {
                messages: bound_messages(found.messages),
                code: found.code.map(|c| cut(&c, MAX_CODE_BYTES)),
                problem: None,
            };
        }
    }
    let mut obj = match value {
        Value::Object(obj) => obj,
        // A top-level array of messages.
        other => {
            return Parsed {
                messages: strings_of(&other),
                ..Parsed::default()
            }
        }
    };
    let mut out = Parsed::default();
    if problem_type || is_problem(&obj) {
        let p = problem(&obj);
        out.messages = p
            .detail
            .clone()
            .or_else(|| p.title.clone())
            .into_iter()
            .collect();
        out.code = obj.get("code").and_then(code_of);
        out.problem = Some(p);
        return out;
    }
    match obj.remove("errors") {
        Some(Value::Array(items)) => {
            out.code = items.iter().find_map(|e| e.get("code").and_then(code_of));
            // Moved out of the parsed body rather than copied: the common shape's hot path.
            out.messages = items
                .into_iter()
                .filter_map(message_owned)
                .take(MAX_MESSAGES)
                .collect();
        }
        // `{"errors": {"field": ["is invalid"]}}`
        Some(Value::Object(fields)) => {
            let mut messages = Vec::new();
            for (field, v) in fields {
                for m in strings_of(&v) {
                    messages.push(format!("{field} {m}"));
                    if messages.len() == MAX_MESSAGES {
                        break;
                    }
                }
            }
            out.messages = bound_messages(messages);
        }
        Some(Value::String(s)) => out.messages = bound_messages(vec![s]),
        _ => {}
    }
    if out.messages.is_empty() {
        match obj.get("error") {
            Some(Value::String(e)) => {
                // OAuth 2: `error` is the code, `error_description` the message.
                if let Some(d) = obj.get("error_description").and_then(Value::as_str) {
                    out.messages = bound_messages(vec![d.to_owned()]);
                    out.code = Some(cut(e, MAX_CODE_BYTES));
                } else {
                    out.messages = bound_messages(vec![e.clone()]);
                }
            }
            Some(e @ Value::Object(inner)) => {
                out.messages = message_of(e).into_iter().collect();
                out.code = inner
                    .get("code")
                    .and_then(code_of)
                    .or_else(|| inner.get("type").and_then(code_of));
            }
            Some(e @ Value::Array(_)) => out.messages = strings_of(e),
            _ => {}
        }
    }
    if out.messages.is_empty() {
        for key in ["message", "detail", "error_description", "title", "msg"] {
            if let Some(s) = obj.get(key).and_then(Value::as_str) {
                out.messages = bound_messages(vec![s.to_owned()]);
                break;
            }
        }
    }
    if out.code.is_none() {
        out.code = obj.get("code").and_then(code_of);
    }
    out
}

fn is_problem(obj: &Map<String, Value>) -> bool {
    obj.get("type").is_some_and(Value::is_string)
        && (obj.get("title").is_some_and(Value::is_string)
            || obj.get("detail").is_some_and(Value::is_string))
}

fn problem(obj: &Map<String, Value>) -> Problem {
    let s = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .map(|v| cut(v, MAX_MESSAGE_BYTES))
    };
    Problem {
        problem_type: s("type"),
        title: s("title"),
        status: obj
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok()),
        detail: s("detail"),
        instance: s("instance"),
        extensions: obj
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "type" | "title" | "status" | "detail" | "instance"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// [`message_of`], taking the string out of the item.
fn message_owned(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(cut_owned(s, MAX_MESSAGE_BYTES)).filter(|m| !m.is_empty()),
        other => message_of(&other),
    }
}

/// A message of one item: a string, or an object's `message` (or `detail`, `title`); `None`
/// for one that is blank once trimmed.
fn message_of(v: &Value) -> Option<String> {
    let m = match v {
        Value::String(s) => cut(s, MAX_MESSAGE_BYTES),
        Value::Object(o) => ["message", "detail", "title", "msg"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .map(|s| cut(s, MAX_MESSAGE_BYTES))?,
        _ => return None,
    };
    (!m.is_empty()).then_some(m)
}

/// The messages of a string, or of the first items of an array.
fn strings_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(message_of)
            .take(MAX_MESSAGES)
            .collect(),
        other => message_of(other).into_iter().collect(),
    }
}

fn code_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(cut(s, MAX_CODE_BYTES)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bound_messages(messages: Vec<String>) -> Vec<String> {
    messages
        .into_iter()
        .filter(|m| !m.trim().is_empty())
        .take(MAX_MESSAGES)
        .map(|m| cut(&m, MAX_MESSAGE_BYTES))
        .collect()
}

/// The first non-empty line of a text body, trimmed and bounded (invalid UTF-8 replaced).
fn first_line(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(MAX_MESSAGE_BYTES * 4)];
    let text = String::from_utf8_lossy(head);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| cut(l, MAX_MESSAGE_BYTES))
}

/// [`cut`], reusing `s` when it needs no cut.
fn cut_owned(s: String, max: usize) -> String {
    if s.len() <= max && s.trim().len() == s.len() {
        s
    } else {
        cut(&s, max)
    }
}

/// `s` cut to at most `max` bytes at a character boundary, whitespace trimmed.
pub(crate) fn cut(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
