//! A stream chunk like the one before: most chunks of an answer differ
//! from the last only in a few strings (the text, OpenAI's random
//! `obfuscation` padding), so a chunk that matches a template of its
//! predecessor byte for byte outside those strings is known without being
//! walked.
//!
//! A [`Template`] is a chunk the caller has already read (and vouches
//! for) with *holes*: the contents of some of its strings. Another chunk
//! fills it when it has the template's bytes everywhere else and, in each
//! hole, a string with no quote, backslash or control character: the
//! same JSON, token for token, with other strings in the holes.

use super::scan::string_end;

/// A read chunk and the strings in it that may differ in the next.
#[derive(Debug, Default)]
pub struct Template {
    bytes: Vec<u8>,
    holes: Vec<Hole>,
    /// The hole whose contents [`Template::fill`] returns.
    marked: Option<usize>,
}

/// A hole's contents within the template's bytes: a string's, from after
/// its opening quote to its closing quote, or a number's digits, to the
/// byte after them.
#[derive(Debug, Clone, Copy)]
struct Hole {
    open: usize,
    close: usize,
    number: bool,
}

/// Which strings (and numbers) of a template's chunk are its holes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Holes {
    /// Every string that is a value (not followed by a colon): for chunks
    /// whose walk accepts any plain string as any of its values.
    Values,
    /// Only the marked string: for chunks with a value that says what
    /// the chunk is (Anthropic's `type`).
    Marked,
    /// Every value string but the values of the key `fixed` (the one
    /// that says what the chunk is), and the number that is the value of
    /// the key `counter`, which is the marked hole (the mark given is not
    /// used): for the Responses API's events, each with its
    /// `sequence_number`.
    Counted {
        fixed: &'static [u8],
        counter: &'static [u8],
    },
}

impl Template {
    /// A template of `chunk` with `holes`, `mark` (where a string's
    /// contents start in `chunk`) the hole [`Template::fill`] returns.
    /// `None` if a string (a key too) has an escape (its end is not found
    /// by looking for the next quote) or a control character, if `chunk`
    /// has an unterminated string, or if `mark` is not where a value
    /// string's contents start.
    pub fn of(chunk: &[u8], mark: Option<usize>, holes: Holes) -> Option<Template> {
        let mut t = Template::default();
        t.set(chunk, mark, holes).then_some(t)
    }

    /// [`Template::of`] in place, keeping this template's allocations;
    /// `false` (and the template emptied) where that is `None`.
    pub fn set(&mut self, chunk: &[u8], mark: Option<usize>, holes: Holes) -> bool {
        self.bytes.clear();
        self.holes.clear();
        self.marked = None;
        // A mark given must be where a value string starts (a counter is
        // its own mark).
        let counted = matches!(holes, Holes::Counted { .. });
        let found = self.find_holes(chunk, mark, holes).is_some()
            && (counted || mark.is_none() || self.marked.is_some());
        if !found {
            self.holes.clear();
            self.marked = None;
            return false;
        }
        self.bytes.extend_from_slice(chunk);
        true
    }

    /// The holes of `chunk` by `holes`, in order; `None` where a string
    /// is not plain or not terminated, or a counter ends the chunk.
    fn find_holes(&mut self, chunk: &[u8], mark: Option<usize>, holes: Holes) -> Option<()> {
        // Where the value of the last key read starts, if that key is
        // `fixed` (Holes::Counted).
        let mut fixed_value = None;
        let mut at = 0;
        while let Some(q) = memchr::memchr(b'"', &chunk[at..]) {
            let open = at + q + 1;
            let close = open + string_end(&chunk[open..])?;
            (chunk[close] == b'"').then_some(())?;
            at = close + 1;
            if let Some(rest) = chunk[at..].trim_ascii_start().strip_prefix(b":") {
                if let Holes::Counted { fixed, counter } = holes {
                    // A key: its value starts past the colon and any spaces.
                    let value = chunk.len() - rest.trim_ascii_start().len();
                    let key = &chunk[open..close];
                    fixed_value = (key == fixed).then_some(value);
                    if key == counter {
                        self.counter_at(chunk, value)?;
                    }
                }
                continue;
            }
            let hole = Hole {
                open,
                close,
                number: false,
            };
            let (take, marked) = match holes {
                Holes::Values => (true, mark == Some(open)),
                Holes::Marked => (mark == Some(open), mark == Some(open)),
                Holes::Counted { .. } => (fixed_value != Some(open - 1), false),
            };
            if marked {
                self.marked = Some(self.holes.len());
            }
            if take {
                self.holes.push(hole);
            }
        }
        Some(())
    }

    /// The counter's digits at `value`, if it is a number, as the marked
    /// hole; `None` if they end the chunk (no byte after them to end the
    /// hole).
    fn counter_at(&mut self, chunk: &[u8], value: usize) -> Option<()> {
        let digits = chunk[value..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            (value + digits < chunk.len()).then_some(())?;
            self.marked = Some(self.holes.len());
            self.holes.push(Hole {
                open: value,
                close: value + digits,
                number: true,
            });
        }
        Some(())
    }

    /// The text of `data`: read from this template's marked hole if
    /// `data` fills it (and it is UTF-8), else by `walk` (the dialect's
    /// walk of a chunk, `None` for a chunk it does not vouch for, else the
    /// text, or no text), whose chunk then becomes the template with
    /// `holes` and the text marked. A chunk that fills a template without
    /// a mark has the text `""`.
    pub fn text_of<'a>(
        &mut self,
        data: &'a [u8],
        holes: Holes,
        walk: impl FnOnce(&'a [u8]) -> Option<Option<&'a str>>,
    ) -> Option<Option<&'a str>> {
        if let Some(Ok(text)) = self.fill(data).map(std::str::from_utf8) {
            return Some(Some(text));
        }
        let text = walk(data)?;
        let mark = text.and_then(|t| (t.as_ptr() as usize).checked_sub(data.as_ptr() as usize));
        self.set(data, mark, holes);
        Some(text)
    }

    /// The marked hole's contents in `data` (empty if no hole is marked),
    /// if `data` fills this template: its bytes outside the holes are the
    /// template's, each string hole holds a string with no quote,
    /// backslash or control character, and each number hole 1 to 19
    /// digits. `None` otherwise, and always for an empty template. The
    /// contents are bytes of `data`, not checked for UTF-8.
    pub fn fill<'a>(&self, data: &'a [u8]) -> Option<&'a [u8]> {
        if self.bytes.is_empty() {
            return None;
        }
        // `t` in the template and `d` in `data`: where the bytes still to
        // compare start (after a hole, the byte that ends it).
        let (mut t, mut d) = (0, 0);
        let mut marked: &[u8] = &[];
        for (i, h) in self.holes.iter().enumerate() {
            // Most holes hold what the template's did (an id, a model):
            // the bytes before, the hole and the byte that ends it at once.
            let same = &self.bytes[t..=h.close];
            let start = if data.get(d..d + same.len()) == Some(same) {
                d += same.len() - 1;
                d - (h.close - h.open)
            } else {
                let fixed = &self.bytes[t..h.open];
                if data.get(d..d + fixed.len())? != fixed {
                    return None;
                }
                let start = d + fixed.len();
                d = start
                    + if h.number {
                        let n = data[start..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count();
                        (1..=19).contains(&n).then_some(n)?
                    } else {
                        let n = string_end(&data[start..])?;
                        (data[start + n] == b'"').then_some(n)?
                    };
                start
            };
            if self.marked == Some(i) {
                marked = &data[start..d];
            }
            t = h.close;
        }
        (data[d..] == self.bytes[t..]).then_some(marked)
    }
}

/// A chunk with one byte set to another where `mutation` says (if it is
/// within the chunk): for the dialects' proptests of their templates.
#[cfg(test)]
pub(crate) fn mutated(chunk: String, mutation: Option<(usize, u8)>) -> Vec<u8> {
    let mut c = chunk.into_bytes();
    if let Some((at, byte)) = mutation
        && at < c.len()
    {
        c[at] = byte;
    }
    c
}

/// The mutations those proptests try: none, or a byte that could change
/// what the JSON says wherever it lands.
#[cfg(test)]
pub(crate) fn mutation() -> impl proptest::strategy::Strategy<Value = Option<(usize, u8)>> {
    let bytes = b"\"\\:ent15 {}[],\x01".to_vec();
    proptest::option::of((0usize..400, proptest::sample::select(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"obfuscation":"x3Tq"}"#;

    fn content_at(chunk: &str) -> usize {
        chunk.find(r#""content":""#).unwrap() + r#""content":""#.len()
    }

    #[test]
    fn a_chunk_with_other_strings_fills_the_template() {
        let t = Template::of(CHUNK.as_bytes(), Some(content_at(CHUNK)), Holes::Values).unwrap();
        let next = CHUNK.replace("Hello", " world: {yes}").replace("x3Tq", "Q");
        assert_eq!(t.fill(next.as_bytes()), Some(&b" world: {yes}"[..]));
        assert_eq!(t.fill(CHUNK.as_bytes()), Some(&b"Hello"[..]));
        let empty = CHUNK.replace("Hello", "").replace("x3Tq", "");
        assert_eq!(t.fill(empty.as_bytes()), Some(&b""[..]));
        // Multi-byte characters are bytes like any other.
        let accented = CHUNK.replace("Hello", "café");
        assert_eq!(t.fill(accented.as_bytes()), Some("café".as_bytes()));
    }

    #[test]
    fn anything_else_does_not() {
        let t = Template::of(CHUNK.as_bytes(), Some(content_at(CHUNK)), Holes::Values).unwrap();
        for other in [
            // A key, a number, a null, punctuation, spacing: not holes.
            CHUNK.replace(r#""content""#, r#""refusal""#),
            CHUNK.replace(r#""index":0"#, r#""index":1"#),
            CHUNK.replace(r#""finish_reason":null"#, r#""finish_reason":"stop""#),
            CHUNK.replace("}]", "} ]"),
            // Escapes, quotes and control characters in a hole.
            CHUNK.replace("Hello", r#"a\"b"#),
            CHUNK.replace("Hello", r#"a\u0041"#),
            CHUNK.replace("Hello", "a\nb"),
            CHUNK.replace("Hello", r#"a","usage":{"x":1},"b":""#),
            // Cut short, or longer.
            CHUNK[..CHUNK.len() - 1].to_owned(),
            CHUNK[..content_at(CHUNK) + 2].to_owned(),
            format!("{CHUNK} "),
            String::new(),
        ] {
            assert_eq!(t.fill(other.as_bytes()), None, "{other}");
        }
        assert_eq!(Template::default().fill(CHUNK.as_bytes()), None);
    }

    #[test]
    fn only_plain_value_strings_become_holes() {
        // A string with an escape: its end is not where the next quote is.
        let escaped = CHUNK.replace("Hello", r#"a\"b"#);
        assert!(Template::of(escaped.as_bytes(), None, Holes::Values).is_none());
        assert!(Template::of(br#"{"a":"open"#, None, Holes::Values).is_none());
        assert!(Template::of(b"{\"a\":\"x\ty\"}", None, Holes::Values).is_none());
        // The mark must be where a value string starts.
        assert!(
            Template::of(CHUNK.as_bytes(), Some(content_at(CHUNK) + 1), Holes::Values).is_none()
        );
        assert!(Template::of(CHUNK.as_bytes(), Some(2), Holes::Values).is_none());
        // Unmarked, the fill is empty; keys are compared, values are not.
        let t = Template::of(br#"{"a" : "x", "b":["y", 1]}"#, None, Holes::Values).unwrap();
        assert_eq!(t.fill(br#"{"a" : "", "b":["yy", 1]}"#), Some(&b""[..]));
        assert_eq!(t.fill(br#"{"c" : "", "b":["yy", 1]}"#), None);
        // A template is reset in place, and emptied by a chunk it refuses.
        let mut t = Template::default();
        assert!(t.set(CHUNK.as_bytes(), None, Holes::Values));
        assert_eq!(t.fill(CHUNK.as_bytes()), Some(&b""[..]));
        assert!(!t.set(escaped.as_bytes(), None, Holes::Values));
        assert_eq!(t.fill(CHUNK.as_bytes()), None);
    }

    #[test]
    fn a_marked_template_has_one_hole() {
        let delta =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        let at = delta.find("Hi").unwrap();
        let t = Template::of(delta.as_bytes(), Some(at), Holes::Marked).unwrap();
        let next = delta.replace("Hi", " there");
        assert_eq!(t.fill(next.as_bytes()), Some(&b" there"[..]));
        // The kind of event is not a hole.
        let other = delta.replace("text_delta", "thinking_delt");
        assert_eq!(t.fill(other.as_bytes()), None);
        let other = delta.replace("content_block_delta", "content_block_start");
        assert_eq!(t.fill(other.as_bytes()), None);
        // Marked, the mark must be there.
        assert!(Template::of(delta.as_bytes(), None, Holes::Marked).is_some());
        assert!(Template::of(delta.as_bytes(), Some(at + 1), Holes::Marked).is_none());
    }

    #[test]
    fn a_counted_template_reads_its_number_and_keeps_its_kind() {
        let holes = Holes::Counted {
            fixed: b"type",
            counter: b"sequence_number",
        };
        let ev = r#"{"type":"response.output_text.delta","sequence_number":7,"item_id":"msg_1","output_index":0,"delta":"Hi","obfuscation":"ab"}"#;
        let t = Template::of(ev.as_bytes(), None, holes).unwrap();
        let next = (ev.replace(":7,", ":12,"))
            .replace(r#""Hi""#, r#"" there""#)
            .replace(r#""ab""#, r#""xyz""#);
        assert_eq!(t.fill(next.as_bytes()), Some(&b"12"[..]));
        assert_eq!(t.fill(ev.as_bytes()), Some(&b"7"[..]));
        // The kind is not a hole; the count is 1 to 19 digits.
        for other in [
            ev.replace("output_text.delta", "completed"),
            ev.replace(":7,", ":-7,"),
            ev.replace(":7,", ":7.5,"),
            ev.replace(":7,", r#":"7","#),
            ev.replace(":7,", ":,"),
            ev.replace(":7,", ":12345678901234567890,"),
            ev.replace(r#""output_index":0"#, r#""output_index":1"#),
        ] {
            assert_eq!(t.fill(other.as_bytes()), None, "{other}");
        }
        // Without a count nothing is read; a nested kind is kept too.
        let part =
            r#"{"type":"response.content_part.added","part":{"type":"output_text","text":""}}"#;
        let t = Template::of(part.as_bytes(), None, holes).unwrap();
        let text = part.replace(r#""text":"""#, r#""text":"x""#);
        assert_eq!(t.fill(text.as_bytes()), Some(&b""[..]));
        let kind = part.replace("output_text", "refusal");
        assert_eq!(t.fill(kind.as_bytes()), None);
        // A count that ends the chunk is not a template.
        assert!(Template::of(br#"{"sequence_number":7"#, None, holes).is_none());
    }

    /// The text comes from the template where the chunk fills it and is
    /// UTF-8, else from the walk, whose chunk becomes the template; a
    /// chunk the walk refuses leaves the template as it was.
    #[test]
    fn text_is_read_by_the_template_or_else_by_the_walk() {
        fn walk(data: &[u8]) -> Option<Option<&str>> {
            let s = std::str::from_utf8(data).ok()?;
            let start = s.find(r#""content":""#)? + r#""content":""#.len();
            Some(Some(&s[start..start + s[start..].find('"')?]))
        }
        let mut walked = 0;
        let mut t = Template::default();
        let next = CHUNK.replace("Hello", "there");
        // A hole that is not UTF-8 goes to the walk (which refuses it).
        let mut broken = CHUNK.as_bytes().to_vec();
        broken[content_at(CHUNK)] = 0xff;
        let chunks: [(&[u8], _); 4] = [
            (CHUNK.as_bytes(), Some(Some("Hello"))),
            (next.as_bytes(), Some(Some("there"))),
            (&broken, None),
            (CHUNK.as_bytes(), Some(Some("Hello"))),
        ];
        for (c, text) in chunks {
            let read = t.text_of(c, Holes::Values, |d| {
                walked += 1;
                walk(d)
            });
            assert_eq!(read, text);
        }
        assert_eq!(walked, 2);
    }
}
