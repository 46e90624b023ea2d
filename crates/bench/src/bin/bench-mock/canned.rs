//! The mock's answers, rendered once at start in the providers' real shapes.

use std::sync::Arc;

use bytes::Bytes;

/// The words the answer is made of; chunk `i` carries word `i % len`.
const WORDS: [&str; 10] = [
    "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".",
];

const OPENAI_ID: &str = "chatcmpl-BenchMock7Xq2Lr9Vd3Kp0Wz";
const OPENAI_MODEL: &str = "gpt-4o-2024-08-06";
const ANTHROPIC_ID: &str = "msg_01BenchMockXk7Qe2Lr9Vd3Kp";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5-20250929";
const CREATED: u64 = 1_741_569_952;
const PROMPT_TOKENS: usize = 25;

/// The `obfuscation` padding of chunk `i`: as from OpenAI, a different
/// string on each chunk (random there, of a length that hides the text's;
/// here a fixed pseudo-random one, so every run sends the same bytes).
fn padding(i: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let len = 1 + (x >> 60) as usize % 12;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            char::from(ALPHABET[(x >> 58) as usize % ALPHABET.len()])
        })
        .collect()
}

fn answer_text(chunks: usize) -> String {
    (0..chunks.max(1)).map(|i| WORDS[i % WORDS.len()]).collect()
}

pub(crate) fn openai_json(chunks: usize) -> Bytes {
    let text = answer_text(chunks);
    let completion = chunks.max(1);
    Bytes::from(format!(
        concat!(
            r#"{{"id":"{id}","object":"chat.completion","created":{created},"model":"{model}","#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t},"#,
            r#""prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"#,
            r#""completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"#,
            r#""service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf"}}"#
        ),
        id = OPENAI_ID,
        created = CREATED,
        model = OPENAI_MODEL,
        text = text,
        p = PROMPT_TOKENS,
        c = completion,
        t = PROMPT_TOKENS + completion,
    ))
}

fn openai_chunk(delta: &str, finish: &str, padding: &str) -> String {
    format!(
        concat!(
            r#"data: {{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":"{model}","#,
            r#""service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","#,
            r#""choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null,"obfuscation":"{padding}"}}"#,
            "\n\n"
        ),
        id = OPENAI_ID,
        created = CREATED,
        model = OPENAI_MODEL,
        delta = delta,
        finish = finish,
        padding = padding,
    )
}

pub(crate) fn openai_stream(chunks: usize) -> Arc<[Bytes]> {
    let mut out = Vec::with_capacity(chunks + 3);
    for i in 0..chunks {
        let word = WORDS[i % WORDS.len()];
        let delta = if i == 0 {
            format!(r#"{{"role":"assistant","content":"{word}","refusal":null}}"#)
        } else {
            format!(r#"{{"content":"{word}"}}"#)
        };
        out.push(Bytes::from(openai_chunk(&delta, "null", &padding(i))));
    }
    out.push(Bytes::from(openai_chunk(
        "{}",
        r#""stop""#,
        &padding(chunks),
    )));
    out.push(Bytes::from(format!(
        concat!(
            r#"data: {{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":"{model}","#,
            r#""service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[],"#,
            r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t},"#,
            r#""prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"#,
            r#""completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"obfuscation":"q9"}}"#,
            "\n\n"
        ),
        id = OPENAI_ID,
        created = CREATED,
        model = OPENAI_MODEL,
        p = PROMPT_TOKENS,
        c = chunks,
        t = PROMPT_TOKENS + chunks,
    )));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out.into()
}

fn anthropic_usage(output: usize) -> String {
    format!(
        concat!(
            r#"{{"input_tokens":{p},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"#,
            r#""cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},"#,
            r#""output_tokens":{o},"service_tier":"standard"}}"#
        ),
        p = PROMPT_TOKENS,
        o = output,
    )
}

pub(crate) fn anthropic_json(chunks: usize) -> Bytes {
    Bytes::from(format!(
        concat!(
            r#"{{"id":"{id}","type":"message","role":"assistant","model":"{model}","#,
            r#""content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{usage}}}"#
        ),
        id = ANTHROPIC_ID,
        model = ANTHROPIC_MODEL,
        text = answer_text(chunks),
        usage = anthropic_usage(chunks.max(1)),
    ))
}

fn anthropic_event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

pub(crate) fn anthropic_stream(chunks: usize) -> Arc<[Bytes]> {
    let mut out = Vec::with_capacity(chunks + 6);
    out.push(anthropic_event(
        "message_start",
        &format!(
            concat!(
                r#"{{"type":"message_start","message":{{"id":"{id}","type":"message","role":"assistant","model":"{model}","#,
                r#""content":[],"stop_reason":null,"stop_sequence":null,"usage":{usage}}}}}"#
            ),
            id = ANTHROPIC_ID,
            model = ANTHROPIC_MODEL,
            usage = anthropic_usage(1),
        ),
    ));
    out.push(anthropic_event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    ));
    out.push(anthropic_event("ping", r#"{"type": "ping"}"#));
    for i in 0..chunks {
        out.push(anthropic_event(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{}"}}}}"#,
                WORDS[i % WORDS.len()]
            ),
        ));
    }
    out.push(anthropic_event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    out.push(anthropic_event(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{chunks}}}}}"#
        ),
    ));
    out.push(anthropic_event(
        "message_stop",
        r#"{"type":"message_stop"}"#,
    ));
    out.into()
}

/// Where a Responses answer carries its own id (`resp_…`, and its message
/// item's `msg_…`): OpenAI gives every response a new one, and the gateway
/// keeps stored responses by it.
const ID_SLOT: &str = "@@bench-mock-id@";

/// A canned answer whose id is stamped in per answer.
pub(crate) struct Stamped {
    bytes: Bytes,
    slots: Box<[usize]>,
}

impl Stamped {
    fn new(text: String) -> Self {
        let slots = text.match_indices(ID_SLOT).map(|(at, _)| at).collect();
        Stamped {
            bytes: Bytes::from(text),
            slots,
        }
    }

    /// The answer with id `n` (16 hex digits) in each slot.
    pub(crate) fn stamp(&self, n: u64) -> Bytes {
        if self.slots.is_empty() {
            return self.bytes.clone();
        }
        let id = format!("{n:016x}");
        let mut out = self.bytes.to_vec();
        for &at in &self.slots {
            out[at..at + ID_SLOT.len()].copy_from_slice(id.as_bytes());
        }
        Bytes::from(out)
    }
}

fn responses_usage(output: usize) -> String {
    format!(
        concat!(
            r#"{{"input_tokens":{p},"input_tokens_details":{{"cached_tokens":0}},"#,
            r#""output_tokens":{o},"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{t}}}"#
        ),
        p = PROMPT_TOKENS,
        o = output,
        t = PROMPT_TOKENS + output,
    )
}

/// The message item, `in_progress` with no content yet or `completed`.
fn responses_item(text: Option<&str>) -> String {
    let (status, content) = match text {
        None => ("in_progress", String::new()),
        Some(t) => (
            "completed",
            format!(r#"{{"type":"output_text","annotations":[],"logprobs":[],"text":"{t}"}}"#),
        ),
    };
    format!(
        r#"{{"id":"msg_{ID_SLOT}","type":"message","status":"{status}","content":[{content}],"role":"assistant"}}"#
    )
}

/// A Response object: in progress (no output, no usage yet) or completed.
fn responses_object(chunks: usize, done: bool) -> String {
    let (status, completed_at, output, usage) = if done {
        let item = responses_item(Some(&answer_text(chunks)));
        let usage = responses_usage(chunks.max(1));
        ("completed", (CREATED + 1).to_string(), item, usage)
    } else {
        ("in_progress", "null".into(), String::new(), "null".into())
    };
    format!(
        concat!(
            r#"{{"id":"resp_{slot}","object":"response","created_at":{created},"status":"{status}","#,
            r#""background":false,"completed_at":{completed_at},"error":null,"incomplete_details":null,"#,
            r#""instructions":null,"max_output_tokens":256,"max_tool_calls":null,"model":"{model}","#,
            r#""output":[{output}],"parallel_tool_calls":true,"previous_response_id":null,"#,
            r#""prompt_cache_key":null,"reasoning":{{"effort":null,"summary":null}},"safety_identifier":null,"#,
            r#""service_tier":"default","store":true,"temperature":0.2,"#,
            r#""text":{{"format":{{"type":"text"}},"verbosity":"medium"}},"tool_choice":"auto","tools":[],"#,
            r#""top_logprobs":0,"top_p":1.0,"truncation":"disabled","usage":{usage},"user":null,"metadata":{{}}}}"#
        ),
        slot = ID_SLOT,
        created = CREATED,
        status = status,
        completed_at = completed_at,
        model = OPENAI_MODEL,
        output = output,
        usage = usage,
    )
}

/// `POST /v1/responses`: a completed Response object.
pub(crate) fn responses_json(chunks: usize) -> Stamped {
    Stamped::new(responses_object(chunks, true))
}

/// A Responses stream in OpenAI's order: `response.created`,
/// `response.in_progress`, the message item and its text part added, N
/// `response.output_text.delta`, the text, part and item done,
/// `response.completed`; every event numbered.
pub(crate) fn responses_stream(chunks: usize) -> Box<[Stamped]> {
    let text = answer_text(chunks);
    let mut out = Vec::with_capacity(chunks + 8);
    let mut seq = 0;
    let mut event = |kind: &str, rest: String| {
        out.push(Stamped::new(format!(
            "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq},{rest}}}\n\n"
        )));
        seq += 1;
    };
    let started = responses_object(chunks, false);
    event("response.created", format!(r#""response":{started}"#));
    event("response.in_progress", format!(r#""response":{started}"#));
    let at = format!(r#""item_id":"msg_{ID_SLOT}","output_index":0,"content_index":0"#);
    event(
        "response.output_item.added",
        format!(r#""output_index":0,"item":{}"#, responses_item(None)),
    );
    event(
        "response.content_part.added",
        format!(r#"{at},"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#),
    );
    for i in 0..chunks {
        let word = WORDS[i % WORDS.len()];
        event(
            "response.output_text.delta",
            format!(
                r#"{at},"delta":"{word}","logprobs":[],"obfuscation":"{}""#,
                padding(i)
            ),
        );
    }
    event(
        "response.output_text.done",
        format!(r#"{at},"text":"{text}","logprobs":[]"#),
    );
    event(
        "response.content_part.done",
        format!(
            r#"{at},"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":"{text}"}}"#
        ),
    );
    event(
        "response.output_item.done",
        format!(r#""output_index":0,"item":{}"#, responses_item(Some(&text))),
    );
    let done = responses_object(chunks, true);
    event("response.completed", format!(r#""response":{done}"#));
    out.into()
}

/// `GET /repos/{owner}/{repo}`, as a tool behind the gateway's HTTP tool
/// proxy sees it: a GitHub repository, abridged.
pub(crate) fn tool_json() -> Bytes {
    Bytes::from_static(
        concat!(
            r#"{"id":1296269,"node_id":"MDEwOlJlcG9zaXRvcnkxMjk2MjY5","name":"switchyard","full_name":"bench/switchyard","#,
            r#""private":false,"owner":{"login":"bench","id":583231,"type":"Organization","site_admin":false},"#,
            r#""description":"A repository the benchmark reads through the tool proxy","fork":false,"#,
            r#""created_at":"2025-01-26T19:01:12Z","updated_at":"2026-11-30T10:12:45Z","pushed_at":"2026-12-01T08:03:11Z","#,
            r#""default_branch":"main","stargazers_count":80,"forks_count":9,"open_issues_count":3,"visibility":"public"}"#
        )
        .as_bytes(),
    )
}
