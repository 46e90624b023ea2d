//! Reading a Chat Completions chunk by walking its bytes (`wire::scan`)
//! instead of decoding it: what the same-dialect relay needs of every
//! chunk, and the text of a plain chunk for the decoder. Each declines,
//! for serde to decide, whatever the walk cannot vouch for.

/// The `content` of a chunk in the middle of an answer, found by walking
/// its bytes: one choice, whose delta has at most `content` (plain text or
/// null) and a `role`; no finish reason, usage, tool calls, refusal,
/// reasoning, error or `x_groq`. Only the members OpenAI and the
/// compatible servers send are taken, each checked for its kind (the walk
/// does not validate a value it skips, and serde would refuse a malformed
/// one). `None` for any other chunk, and for anything the walk does not
/// vouch for (a member [`ChunkIn`](super::ChunkIn) reads given twice, a string with
/// escapes or control characters, a member it does not know), which serde
/// then decodes.
pub(super) fn plain_content_chunk(data: &[u8]) -> Option<Option<&str>> {
    use crate::wire::scan::{Walker, is_plain_str, plain_uint};
    fn once(seen: &mut bool) -> Option<()> {
        (!std::mem::replace(seen, true)).then_some(())
    }
    fn null(raw: &[u8]) -> Option<()> {
        (raw == b"null").then_some(())
    }
    // A member only checked: the chunk is UTF-8 (below), so its bytes are.
    fn checked_text_or_null(raw: &[u8]) -> Option<()> {
        (raw == b"null" || is_plain_str(raw)).then_some(())
    }
    // UTF-8 checked once for the whole chunk, rather than string by string;
    // a string read is then cut out of it where its bytes are.
    let text = std::str::from_utf8(data).ok()?;
    // `raw`, a string or null within `data`, cut out of `text`.
    fn text_or_null<'a>(data: &[u8], text: &'a str, raw: &[u8]) -> Option<Option<&'a str>> {
        if raw == b"null" {
            return Some(None);
        }
        if !is_plain_str(raw) {
            return None;
        }
        let at = (raw.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
        text.get(at + 1..at + raw.len() - 1).map(Some)
    }
    let number_or_null = |raw: &[u8]| (raw == b"null" || plain_uint(raw, 19)).then_some(());
    let mut seen = [false; 9];
    let mut content = None;
    let mut w = Walker::new(data);
    w.object(|k, w| match k {
        b"id" | b"model" => {
            once(&mut seen[usize::from(k == b"model")])?;
            checked_text_or_null(w.raw()?)
        }
        b"created" => {
            once(&mut seen[2])?;
            number_or_null(w.raw()?)
        }
        b"usage" => {
            once(&mut seen[3])?;
            null(w.raw()?)
        }
        b"object" | b"system_fingerprint" | b"service_tier" | b"obfuscation" => {
            checked_text_or_null(w.raw()?)
        }
        b"choices" => {
            once(&mut seen[4])?;
            let n = w.array(|i, w| {
                (i == 0).then_some(())?;
                w.object(|k, w| match k {
                    b"finish_reason" => {
                        once(&mut seen[5])?;
                        null(w.raw()?)
                    }
                    b"delta" => {
                        once(&mut seen[6])?;
                        let raw = w.raw()?;
                        if raw == b"null" {
                            return Some(());
                        }
                        let mut d = Walker::new(raw);
                        d.object(|k, w| match k {
                            b"content" => {
                                once(&mut seen[7])?;
                                content = text_or_null(data, text, w.raw()?)?;
                                Some(())
                            }
                            b"refusal" | b"reasoning_content" | b"tool_calls" => {
                                once(&mut seen[8])?;
                                null(w.raw()?)
                            }
                            b"role" => checked_text_or_null(w.raw()?),
                            _ => None,
                        })?;
                        d.at_end().then_some(())
                    }
                    b"index" => plain_uint(w.raw()?, 10).then_some(()),
                    // vLLM's stop_reason; Azure's filter results when empty.
                    b"logprobs" | b"stop_reason" => null(w.raw()?),
                    b"content_filter_results" => (w.raw()? == b"{}").then_some(()),
                    _ => None,
                })
            })?;
            (n == 1).then_some(())
        }
        _ => None,
    })?;
    (w.at_end() && seen[4]).then_some(content)
}

/// What [`Relay`](super::Relay) reads of a chunk, found by walking its bytes
/// (`wire::scan`) rather than decoding it. `None` from [`FastPeek::of`]
/// for anything the walk cannot vouch for (an error chunk, an escaped
/// string where a value is read, JSON it does not accept): [`Peek`](super::Peek)
/// decodes those.
pub(super) struct FastPeek<'a> {
    pub(super) id: Option<&'a str>,
    pub(super) model: Option<&'a str>,
    pub(super) choices: usize,
    pub(super) finish: Option<&'a str>,
    pub(super) usage: Option<&'a [u8]>,
    pub(super) groq: Option<&'a [u8]>,
}

impl<'a> FastPeek<'a> {
    /// `ids`: whether the chunk's id and model are wanted (the first
    /// chunk's only).
    pub(super) fn of(data: &'a [u8], ids: bool) -> Option<FastPeek<'a>> {
        use crate::wire::scan::{Walker, plain_str};
        let present = |raw: &'a [u8]| (raw != b"null").then_some(raw);
        let text = |raw: &'a [u8]| -> Option<Option<&'a str>> {
            match present(raw) {
                None => Some(None),
                Some(r) => plain_str(r).map(Some),
            }
        };
        let mut p = FastPeek {
            id: None,
            model: None,
            choices: 0,
            finish: None,
            usage: None,
            groq: None,
        };
        let mut w = Walker::new(data);
        w.object(|key, w| {
            match key {
                b"id" if ids => p.id = text(w.raw()?)?,
                b"model" if ids => p.model = text(w.raw()?)?,
                b"choices" => {
                    p.choices = w.array(|i, w| {
                        if i > 0 {
                            return w.skip();
                        }
                        w.object(|k, w| {
                            if k == b"finish_reason" {
                                p.finish = text(w.raw()?)?;
                                Some(())
                            } else {
                                w.skip()
                            }
                        })
                    })?;
                }
                b"usage" => p.usage = present(w.raw()?),
                b"x_groq" => p.groq = present(w.raw()?),
                // An error chunk is decoded, to report it properly.
                b"error" => present(w.raw()?).is_none().then_some(())?,
                _ => w.skip()?,
            }
            Some(())
        })?;
        w.at_end().then_some(p)
    }
}

/// Whether a chunk can be relayed without being read: none of the members
/// [`FastPeek`] reads in every chunk (`finish_reason`, `usage`, `x_groq`,
/// `error`) has a value other than null in it. Found from the colons
/// alone (every key is followed by one) rather than by walking the chunk.
///
/// Sound for any bytes. Before each colon, past whitespace, a key ends
/// with a quote and begins with the quote before its name, unless the key
/// has an escape in it: a chunk with a `\u` escape anywhere is read, and
/// a name after an escaped quote is taken for a key. A colon inside a
/// string only adds a candidate. A candidate with one of the names and a
/// value other than `null` (even a key of that name in a nested object)
/// sends the chunk to be read.
///
/// The chunk's JSON is not checked here: the caller of a same-dialect
/// stream gets the upstream's bytes as they are, as from any proxy.
pub(super) fn reads_nothing(data: &[u8]) -> bool {
    // Each colon and backslash, eight bytes at a time (a flagged byte is
    // checked, since the test may also flag one above a true one).
    use crate::wire::scan::bytes_equal;
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    for (w, word) in words.enumerate() {
        let v = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let mut hits = bytes_equal(v, b':') | bytes_equal(v, b'\\');
        while hits != 0 {
            let i = w * 8 + (hits.trailing_zeros() / 8) as usize;
            hits &= hits - 1;
            if !nothing_read_near(data, i) {
                return false;
            }
        }
    }
    let start = data.len() - tail.len();
    (start..data.len()).all(|i| nothing_read_near(data, i))
}

/// Whether the byte at `i` is neither a `\u` escape nor a colon after a
/// key read with a value other than null.
fn nothing_read_near(data: &[u8], i: usize) -> bool {
    match data[i] {
        b':' => nothing_read_at(data, i),
        b'\\' => data.get(i + 1) != Some(&b'u'),
        _ => true,
    }
}

/// Whether the colon at `colon` ends a key other than the members read,
/// or one whose value is null.
fn nothing_read_at(data: &[u8], colon: usize) -> bool {
    let before = data[..colon].trim_ascii_end();
    let Some(key) = before.strip_suffix(b"\"") else {
        return true;
    };
    // The name read that the key ends with, by its last letter, if a quote
    // comes before it (so `"xusage"` is not `usage`, and `"a\"usage"`,
    // whose quote is escaped, is taken for it: a candidate too many).
    let name: &[u8] = match key.last() {
        Some(b'n') => b"finish_reason",
        Some(b'e') => b"usage",
        Some(b'q') => b"x_groq",
        Some(b'r') => b"error",
        _ => return true,
    };
    let named =
        key.ends_with(name) && key.len() > name.len() && key[key.len() - name.len() - 1] == b'"';
    !named || data[colon + 1..].trim_ascii_start().starts_with(b"null")
}
