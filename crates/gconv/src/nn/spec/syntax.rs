//! A spec's syntax: layers with flat argument lists, and the blocks `res(...)` and
//! `cat(... | ...)` whose contents are layer sequences again. Whitespace, newlines, commas and
//! `->` separate layers; `#` starts a comment that runs to the end of the line.

use crate::{Error, Result};

/// A piece of the spec: its text and byte offset.
#[derive(Clone, Debug)]
pub(super) struct Span<'a> {
    pub text: &'a str,
    pub start: usize,
}

/// An error at bytes `start..start + len` of `spec`, drawn with the line it is on and a caret
/// line under the offending text.
pub(super) fn error_at(spec: &str, start: usize, len: usize, message: impl Into<String>) -> Error {
    let line_start = spec[..start].rfind('\n').map_or(0, |p| p + 1);
    let line_end = spec[start..].find('\n').map_or(spec.len(), |p| start + p);
    let line = &spec[line_start..line_end];
    let col = spec[line_start..start].chars().count();
    let width = spec[start..(start + len).min(line_end)].chars().count().max(1);
    let place = match spec.contains('\n') {
        true => format!("line {}, column {}", spec[..start].matches('\n').count() + 1, col + 1),
        false => format!("column {}", col + 1),
    };
    Error::invalid(
        "layer spec",
        format!(
            "{} (at {place})\n  {line}\n  {}{}",
            message.into(),
            " ".repeat(col),
            "^".repeat(width)
        ),
    )
}

/// One layer as written: its name and arguments.
pub(super) struct Item<'a> {
    pub name: Span<'a>,
    /// The whole item, for errors about it.
    pub whole: Span<'a>,
    pub positional: Vec<Span<'a>>,
    pub named: Vec<(Span<'a>, Span<'a>)>,
}

/// A layer or a block of the spec.
pub(super) enum Element<'a> {
    Layer(Item<'a>),
    /// `res(body)` or `res(body, shortcut=layers)`: the body's output plus the block's input
    /// (through the shortcut's layers when there are any).
    Res {
        whole: Span<'a>,
        body: Vec<Element<'a>>,
        shortcut: Option<Vec<Element<'a>>>,
    },
    /// `cat(a | b | ...)`: every branch on the block's input, concatenated along the channels.
    /// An empty branch passes the input itself.
    Cat {
        whole: Span<'a>,
        branches: Vec<Vec<Element<'a>>>,
    },
}

/// Parses a spec into its elements.
pub(super) fn parse(spec: &str) -> Result<Vec<Element<'_>>> {
    let mut p = Parser { spec, bytes: spec.as_bytes(), i: 0 };
    p.sequence(None)
}

/// The block a sequence is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Res,
    Cat,
}

struct Parser<'a> {
    spec: &'a str,
    bytes: &'a [u8],
    i: usize,
}

fn trimmed(spec: &str, start: usize, end: usize) -> Span<'_> {
    let raw = &spec[start..end];
    let lead = raw.len() - raw.trim_start().len();
    Span { text: raw.trim(), start: start + lead }
}

impl<'a> Parser<'a> {
    fn error(&self, start: usize, len: usize, message: impl Into<String>) -> Error {
        error_at(self.spec, start, len, message)
    }

    /// Skips separators and comments.
    fn skip(&mut self) {
        while let Some(&c) = self.bytes.get(self.i) {
            if c.is_ascii_whitespace() || c == b',' {
                self.i += 1;
            } else if c == b'-' && self.bytes.get(self.i + 1) == Some(&b'>') {
                self.i += 2;
            } else if c == b'#' {
                self.i = self.spec[self.i..].find('\n').map_or(self.spec.len(), |p| self.i + p);
            } else {
                break;
            }
        }
    }

    /// A name at the current position (letters, digits, `_`), or an empty one.
    fn name(&mut self) -> Span<'a> {
        let start = self.i;
        while self.bytes.get(self.i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            self.i += 1;
        }
        Span { text: &self.spec[start..self.i], start }
    }

    /// At `shortcut =`: the length of that marker.
    fn at_shortcut(&self) -> Option<usize> {
        let rest = &self.spec[self.i..];
        let after = rest.strip_prefix("shortcut")?;
        let eq = after.len() - after.trim_start().len();
        after[eq..].starts_with('=').then_some("shortcut".len() + eq + 1)
    }

    /// Elements up to the end of the spec (`inside` None), or up to what ends a sequence in
    /// the block `inside`: `)`, `shortcut=` in a res block, `|` in a cat block.
    fn sequence(&mut self, inside: Option<(Block, usize)>) -> Result<Vec<Element<'a>>> {
        let mut out = Vec::new();
        loop {
            self.skip();
            let block = inside.map(|b| b.0);
            match self.bytes.get(self.i) {
                None => {
                    return match inside {
                        Some((_, open)) => {
                            Err(self.error(open, 1, "this parenthesis is never closed"))
                        }
                        None => Ok(out),
                    };
                }
                Some(b')') if inside.is_some() => return Ok(out),
                Some(b')') => return Err(self.error(self.i, 1, "unmatched parenthesis")),
                Some(b'|') if block == Some(Block::Cat) => return Ok(out),
                Some(b'|') => {
                    return Err(self.error(self.i, 1, "| separates the branches of cat(...)"));
                }
                Some(_) if self.at_shortcut().is_some() => {
                    if block == Some(Block::Res) {
                        return Ok(out);
                    }
                    let len = self.at_shortcut().unwrap_or(1);
                    return Err(self.error(self.i, len, "shortcut= belongs in res(...)"));
                }
                Some(c) if c.is_ascii_alphabetic() || *c == b'_' => out.push(self.element()?),
                Some(_) => {
                    let len = self.spec[self.i..].chars().next().map_or(1, char::len_utf8);
                    return Err(self.error(self.i, len, "expected a layer name"));
                }
            }
        }
    }

    /// A layer or a block, at its name.
    fn element(&mut self) -> Result<Element<'a>> {
        let name = self.name();
        let block = match name.text.to_ascii_lowercase().as_str() {
            "res" => Some(Block::Res),
            "cat" => Some(Block::Cat),
            _ => None,
        };
        match (block, self.bytes.get(self.i)) {
            (Some(block), Some(b'(')) => self.block(block, name),
            (Some(_), _) => Err(self.error(
                name.start,
                name.text.len(),
                format!("{} is a block: write {}(layers ...)", name.text, name.text),
            )),
            (None, _) => self.item(name),
        }
    }

    /// A block's contents, at its opening parenthesis.
    fn block(&mut self, block: Block, name: Span<'a>) -> Result<Element<'a>> {
        let open = self.i;
        self.i += 1;
        let first = self.sequence(Some((block, open)))?;
        let whole = |p: &Parser<'a>| Span { text: &p.spec[name.start..p.i], start: name.start };
        match block {
            Block::Res => {
                if first.is_empty() {
                    let message = "res(...) needs layers before its input is added";
                    return Err(self.error(open, 1, message));
                }
                let mut shortcut = None;
                if let Some(len) = self.at_shortcut() {
                    let at = self.i;
                    self.i += len;
                    let layers = self.sequence(Some((block, open)))?;
                    if layers.is_empty() {
                        return Err(self.error(at, len, "shortcut= needs layers"));
                    }
                    if let Some(len) = self.at_shortcut() {
                        return Err(self.error(self.i, len, "res(...) has one shortcut"));
                    }
                    shortcut = Some(layers);
                }
                self.i += 1;
                Ok(Element::Res { whole: whole(self), body: first, shortcut })
            }
            Block::Cat => {
                let mut branches = vec![first];
                while self.bytes.get(self.i) == Some(&b'|') {
                    self.i += 1;
                    branches.push(self.sequence(Some((block, open)))?);
                }
                self.i += 1;
                Ok(Element::Cat { whole: whole(self), branches })
            }
        }
    }

    /// A layer with its argument list, if it has one, at the end of its name.
    fn item(&mut self, name: Span<'a>) -> Result<Element<'a>> {
        let spec = self.spec;
        let (mut positional, mut named) = (Vec::new(), Vec::new());
        if self.bytes.get(self.i) == Some(&b'(') {
            let open = self.i;
            let close = spec[open..]
                .find(')')
                .map(|p| open + p)
                .ok_or_else(|| self.error(open, 1, "this parenthesis is never closed"))?;
            let mut arg_start = open + 1;
            for (p, ch) in spec[open + 1..=close].char_indices() {
                if ch != ',' && ch != ')' {
                    continue;
                }
                let end = open + 1 + p;
                let arg = trimmed(spec, arg_start, end);
                arg_start = end + 1;
                if arg.text.is_empty() {
                    if ch == ')' && positional.is_empty() && named.is_empty() {
                        break;
                    }
                    return Err(self.error(end, 1, "missing argument before this"));
                }
                if let Some(eq) = arg.text.find('=') {
                    let key = trimmed(spec, arg.start, arg.start + eq);
                    let value = trimmed(spec, arg.start + eq + 1, arg.start + arg.text.len());
                    if key.text.is_empty() || value.text.is_empty() {
                        return Err(self.error(arg.start, arg.text.len(), "expected key=value"));
                    }
                    named.push((key, value));
                } else if !named.is_empty() {
                    return Err(self.error(
                        arg.start,
                        arg.text.len(),
                        "a positional argument cannot follow a named one",
                    ));
                } else {
                    positional.push(arg);
                }
            }
            self.i = close + 1;
        }
        let whole = Span { text: &spec[name.start..self.i], start: name.start };
        Ok(Element::Layer(Item { name, whole, positional, named }))
    }
}
