//! Delivering a prepared answer the same way in every dialect: faults before it, token
//! pacing, mid-stream faults, malformed answers, dripped bytes, and counting streams whose
//! client went away.

use super::peer::Peer;

use super::config::RequestKnobs;
use super::dialect::Dialect;
use super::fault::{storm_rages, Fault};
use super::malformed;
use super::respond::{
    push_chunk, reset, response_head, sleep_if_any, wait_for_client_to_leave, write, write_json,
    Next, LAST_CHUNK,
};
use super::stats::MockStats;

/// An answer as SSE events (each already framed, `event:`/`data:` lines and blank line).
#[derive(Debug, Default)]
pub struct EventStream {
    /// Sent together after `ttft` (message start, role delta…).
    pub lead: Vec<Vec<u8>>,
    /// One per token or piece, `itl` apart; mid-stream faults strike after half of them.
    pub paced: Vec<Vec<u8>>,
    /// Sent together at the end (finish, usage, `[DONE]`, `message_stop`…).
    pub tail: Vec<Vec<u8>>,
    /// The events that end the stream on `error-mid-stream`, when they depend on the answer
    /// (the Responses API numbers its events and ends with `response.failed`); `None`: the
    /// dialect's [`Dialect::error_event`].
    pub mid_stream_error: Option<MidStreamError>,
}

/// Renders the end of a stream cut by `error-mid-stream`: given the HTTP status the error
/// stands for, its message, and how many `paced` events were sent.
pub struct MidStreamError(pub Box<RenderError>);

/// See [`MidStreamError`].
pub type RenderError = dyn Fn(u16, &str, usize) -> Vec<u8>;

impl std::fmt::Debug for MidStreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MidStreamError")
    }
}

/// Injects the faults that happen before any answer; returns `Some` when it did.
/// `error-mid-stream` counts as a status fault for answers that are not streamed, and a
/// storm as one while it lasts.
pub async fn fault_before_answer(
    stream: &mut Peer<'_>,
    knobs: &RequestKnobs,
    streaming: bool,
    dialect: Dialect,
    keep_alive: bool,
    stats: &MockStats,
) -> Option<std::io::Result<Next>> {
    let fault = knobs.fault?;
    let status = match fault {
        Fault::Status(status) => status,
        Fault::ErrorMidStream(status) if !streaming => status,
        Fault::Storm { ms, status } if storm_rages(ms) => status,
        Fault::Reset => {
            stats.count_fault(fault);
            reset(stream);
            return Some(Ok(Next::Close));
        }
        Fault::ResetAfterHead => {
            stats.count_fault(fault);
            // The head of the answer that was asked for, then nothing.
            let head = if streaming {
                response_head(200, dialect.stream_content_type(), None, true, "")
            } else {
                response_head(200, "application/json", Some(1024), true, "")
            };
            if let Err(e) = write(stream, head.into_bytes()).await {
                return Some(Err(e));
            }
            reset(stream);
            return Some(Ok(Next::Close));
        }
        Fault::NotJson => {
            stats.count_fault(fault);
            let head = response_head(
                200,
                "text/html",
                Some(malformed::NOT_JSON_PAGE.len()),
                keep_alive,
                "",
            );
            let mut out = head.into_bytes();
            out.extend_from_slice(malformed::NOT_JSON_PAGE);
            return Some(write(stream, out).await.map(|()| Next::after(keep_alive)));
        }
        Fault::Stall => {
            stats.count_fault(fault);
            wait_for_client_to_leave(stream).await;
            return Some(Ok(Next::Close));
        }
        _ => return None,
    };
    stats.count_fault(fault);
    let message = format!("mockllm injected fault: status {status}");
    let mut extra = dialect.error_headers(status);
    if status == 429 {
        extra.push_str("retry-after: 1\r\n");
    }
    let body = dialect.error_body(status, &message);
    Some(write_json(stream, status, &body, keep_alive, &extra).await)
}

/// Sends a complete JSON answer, or half of it then the mid-stream fault, or its malformed
/// or dripped form.
pub async fn send_json(
    stream: &mut Peer<'_>,
    body: &[u8],
    knobs: &RequestKnobs,
    keep_alive: bool,
    stats: &MockStats,
) -> std::io::Result<Next> {
    match knobs.fault {
        Some(fault @ (Fault::ResetMidStream | Fault::StallMidStream)) => {
            stats.count_fault(fault);
            let mut out =
                response_head(200, "application/json", Some(body.len()), true, "").into_bytes();
            out.extend_from_slice(&body[..body.len() / 2]);
            write(stream, out).await?;
            mid_stream_fault(stream, fault).await
        }
        Some(fault @ Fault::TruncatedJson) => {
            stats.count_fault(fault);
            let extra = knobs.ratelimit_headers();
            write_json(stream, 200, malformed::truncated(body), keep_alive, &extra).await
        }
        Some(fault @ Fault::Drip(ms)) => {
            stats.count_fault(fault);
            let extra = knobs.ratelimit_headers();
            let head = response_head(
                200,
                "application/json",
                Some(body.len()),
                keep_alive,
                &extra,
            );
            write(stream, head.into_bytes()).await?;
            drip(stream, body, ms).await?;
            Ok(Next::after(keep_alive))
        }
        fault => {
            count_answer_shape(fault, stats);
            write_json(stream, 200, body, keep_alive, &knobs.ratelimit_headers()).await
        }
    }
}

/// Counts the faults that only change the shape of a normal answer (a stream or a whole
/// one), when they came with it.
fn count_answer_shape(fault: Option<Fault>, stats: &MockStats) {
    if let Some(f @ (Fault::StreamAnswer | Fault::WholeAnswer)) = fault {
        stats.count_fault(f);
    }
}

/// Writes `bytes` one at a time, `ms` milliseconds apart.
async fn drip(stream: &mut Peer<'_>, bytes: &[u8], ms: u32) -> std::io::Result<()> {
    let pause = std::time::Duration::from_millis(u64::from(ms));
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            monoio::time::sleep(pause).await;
        }
        write(stream, vec![b]).await?;
    }
    Ok(())
}

/// Streams `events` as `text/event-stream`, paced by the knobs, with any mid-stream fault.
/// A write that fails means the client went away: counted in `streams_cancelled`.
pub async fn send_events(
    stream: &mut Peer<'_>,
    events: EventStream,
    knobs: &RequestKnobs,
    dialect: Dialect,
    keep_alive: bool,
    stats: &MockStats,
) -> std::io::Result<Next> {
    let result = send_events_inner(stream, events, knobs, dialect, keep_alive, stats).await;
    if result.is_err() {
        stats.count_stream_cancelled();
    }
    result
}

async fn send_events_inner(
    stream: &mut Peer<'_>,
    events: EventStream,
    knobs: &RequestKnobs,
    dialect: Dialect,
    keep_alive: bool,
    stats: &MockStats,
) -> std::io::Result<Next> {
    if let Some(fault @ Fault::Drip(ms)) = knobs.fault {
        stats.count_fault(fault);
        return drip_events(stream, &events, knobs, dialect, keep_alive, ms).await;
    }
    count_answer_shape(knobs.fault, stats);
    let fault = knobs.fault.filter(|f| f.is_mid_stream());
    if let Some(f) = fault {
        stats.count_fault(f);
    }
    let fault_after = fault.map(|_| events.paced.len() / 2);
    sleep_if_any(knobs.ttft).await;
    let extra = format!("cache-control: no-cache\r\n{}", knobs.ratelimit_headers());
    let mut out =
        response_head(200, dialect.stream_content_type(), None, keep_alive, &extra).into_bytes();
    for event in &events.lead {
        push_chunk(&mut out, event);
    }
    write(stream, out).await?;
    // Whether the fault cut the stream short (the others spoil events and go on).
    let mut cut = false;
    for (i, event) in events.paced.iter().enumerate() {
        let struck = fault_after.is_some_and(|at| i >= at);
        if fault_after == Some(i) && fault.is_some_and(cuts_the_stream) {
            cut = true;
            break;
        }
        if i > 0 {
            sleep_if_any(knobs.itl).await;
        }
        let mut out = Vec::with_capacity(event.len() + 16);
        match fault {
            Some(Fault::BadSseFraming) if struck => {
                push_chunk(&mut out, &malformed::broken_framing(event, dialect));
            }
            Some(Fault::InvalidUtf8Event) if fault_after == Some(i) => {
                push_chunk(&mut out, &malformed::invalid_utf8(event, dialect));
            }
            Some(Fault::OversizedEvent(bytes)) if fault_after == Some(i) => {
                let huge = malformed::oversized_event(bytes as usize, dialect);
                for piece in huge.chunks(64 * 1024) {
                    push_chunk(&mut out, piece);
                    write(stream, std::mem::take(&mut out)).await?;
                }
                push_chunk(&mut out, event);
            }
            _ => push_chunk(&mut out, event),
        }
        write(stream, out).await?;
    }
    if let (true, Some(fault)) = (cut, fault) {
        if let Fault::ErrorMidStream(status) = fault {
            let message = format!("mockllm injected fault: error mid-stream {status}");
            let event = match &events.mid_stream_error {
                Some(render) => (render.0)(status, &message, fault_after.unwrap_or(0)),
                None => dialect.error_event(status, &message),
            };
            let mut out = Vec::with_capacity(256);
            push_chunk(&mut out, &event);
            out.extend_from_slice(LAST_CHUNK);
            write(stream, out).await?;
            return Ok(Next::after(keep_alive));
        }
        if fault == Fault::StallMidStream {
            // The client leaving a stalled stream is a stream cancelled before its end.
            wait_for_client_to_leave(stream).await;
            stats.count_stream_cancelled();
            return Ok(Next::Close);
        }
        return mid_stream_fault(stream, fault).await;
    }
    let mut out = Vec::with_capacity(1024);
    for event in &events.tail {
        push_chunk(&mut out, event);
    }
    out.extend_from_slice(LAST_CHUNK);
    write(stream, out).await?;
    Ok(Next::after(keep_alive))
}

/// Whether a mid-stream fault ends the stream where it strikes (reset, stall, error
/// event) rather than spoiling events and going on.
fn cuts_the_stream(fault: Fault) -> bool {
    matches!(
        fault,
        Fault::ResetMidStream | Fault::StallMidStream | Fault::ErrorMidStream(_)
    )
}

/// A whole stream, dripped: the head at once, then every byte of the chunked body (events
/// and chunk framing) `ms` milliseconds apart.
async fn drip_events(
    stream: &mut Peer<'_>,
    events: &EventStream,
    knobs: &RequestKnobs,
    dialect: Dialect,
    keep_alive: bool,
    ms: u32,
) -> std::io::Result<Next> {
    let extra = format!("cache-control: no-cache\r\n{}", knobs.ratelimit_headers());
    let head = response_head(200, dialect.stream_content_type(), None, keep_alive, &extra);
    write(stream, head.into_bytes()).await?;
    let mut body = Vec::with_capacity(4096);
    for event in events.lead.iter().chain(&events.paced).chain(&events.tail) {
        push_chunk(&mut body, event);
    }
    body.extend_from_slice(LAST_CHUNK);
    drip(stream, &body, ms).await?;
    Ok(Next::after(keep_alive))
}

async fn mid_stream_fault(stream: &mut Peer<'_>, fault: Fault) -> std::io::Result<Next> {
    match fault {
        Fault::StallMidStream => wait_for_client_to_leave(stream).await,
        _ => reset(stream),
    }
    Ok(Next::Close)
}
