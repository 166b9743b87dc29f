//! A worker thread: its own monoio runtime running the open-loop schedule or the
//! closed-loop connections for its share of the load.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::{FusionDriver, RuntimeBuilder};

use super::config::{Mode, WorkerShare};
use super::exchange::ClientConnection;
use super::recorder::{ErrorKind, Recorder};

/// Runs one worker's share to completion on a fresh runtime in the calling thread.
pub fn run_worker(share: WorkerShare, request: Bytes, start: Instant) -> Result<Recorder, String> {
    let mut runtime = RuntimeBuilder::<FusionDriver>::new()
        .with_entries(1024)
        .enable_timer()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let recorder = Rc::new(RefCell::new(
        Recorder::new().map_err(|e| format!("histogram: {e}"))?,
    ));
    let share = Rc::new(share);
    runtime.block_on({
        let recorder = recorder.clone();
        async move {
            match share.mode {
                Mode::OpenLoop { rate } => open_loop(share, rate, request, start, recorder).await,
                Mode::ClosedLoop { connections } => {
                    closed_loop(share, connections, request, start, recorder).await
                }
            }
        }
    });
    let merged = recorder.borrow().clone();
    Ok(merged)
}

/// Most scheduled instants waiting between the ticker thread and the worker's runtime;
/// when full (the runtime is starved) the ticker drops instants, counted as `not_sent`.
const TICK_QUEUE_CAP: usize = 65_536;

/// Most requests waiting for a connection when every connection is busy and the pool is
/// at its cap; beyond that a request is counted as `not_sent` instead of queued.
const BACKLOG_CAP: usize = 65_536;

/// How long the dispatcher waits for the ticker before looking at the clock again, so the
/// run ends on time even if a cross-thread wake-up arrives late.
const TICK_POLL: Duration = Duration::from_millis(5);

/// Slack past the drain deadline before the worker stops waiting for its connections.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

async fn sleep_until(t: Instant) {
    if t > Instant::now() {
        monoio::time::sleep_until(monoio::time::Instant::from_std(t)).await;
    }
}

/// Where an idle connection waits for its next scheduled instant.
#[derive(Default)]
struct Slot {
    item: Cell<Option<Instant>>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// Hands scheduled instants to connection tasks on one runtime (single-threaded, no
/// channel): to an idle connection, else to a new one up to the cap, else to a bounded
/// backlog that busy connections drain when they finish.
#[derive(Default)]
struct Dispatch {
    idle: RefCell<Vec<Rc<Slot>>>,
    backlog: RefCell<VecDeque<Instant>>,
    open: Cell<usize>,
    in_flight: Cell<usize>,
    closed: Cell<bool>,
}

impl Dispatch {
    /// Waits until this connection is handed an instant (`None`: the run is over).
    async fn next(&self, slot: &Rc<Slot>) -> Option<Instant> {
        if let Some(t) = self.backlog.borrow_mut().pop_front() {
            return Some(t);
        }
        if self.closed.get() {
            return None;
        }
        self.idle.borrow_mut().push(slot.clone());
        std::future::poll_fn(|cx| {
            if let Some(t) = slot.item.take() {
                return Poll::Ready(Some(t));
            }
            if self.closed.get() {
                return Poll::Ready(None);
            }
            *slot.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Ends the run: idle connections stop; busy ones stop once the backlog is empty.
    fn close(&self) {
        self.closed.set(true);
        for slot in self.idle.borrow_mut().drain(..) {
            slot.wake();
        }
    }
}

/// Sends one request per scheduled instant, whatever the responses do. Each instant goes
/// to an idle connection, or a new one up to the cap; beyond the cap it waits in a
/// bounded queue and its latency still counts from the scheduled instant.
///
/// The instants come from a ticker thread: monoio's timer wheel has millisecond
/// granularity (sends would be 1-2 ms late, hiding a proxy's tens of microseconds), while
/// a blocking sleep with minimal timer slack wakes within a few microseconds.
///
/// The run always ends: every request gets at most until `end + timeout` (the drain
/// deadline), requests not sent by then are `not_sent`, and whatever is still unaccounted
/// shortly after it is counted (in flight as timeouts, the rest as `not_sent`).
async fn open_loop(
    share: Rc<WorkerShare>,
    rate: f64,
    request: Bytes,
    start: Instant,
    recorder: Rc<RefCell<Recorder>>,
) {
    let end = start + share.duration;
    let drain_deadline = end + share.timeout;
    let ticker = spawn_ticker(start + share.phase, end, rate);
    let dispatch = Rc::new(Dispatch::default());
    let mut tasks = Vec::new();
    let mut received: u64 = 0;
    loop {
        if Instant::now() >= drain_deadline {
            break;
        }
        // A bounded wait, so a late cross-thread wake-up cannot stall the run.
        let scheduled = match monoio::time::timeout(TICK_POLL, ticker.rx.recv_async()).await {
            Ok(Ok(scheduled)) => scheduled,
            Ok(Err(_)) => break,
            Err(_) => continue,
        };
        received += 1;
        if let Some(slot) = dispatch.idle.borrow_mut().pop() {
            slot.item.set(Some(scheduled));
            slot.wake();
        } else if dispatch.open.get() < share.max_connections {
            dispatch.open.set(dispatch.open.get() + 1);
            tasks.push(monoio::spawn(connection_task(
                share.clone(),
                scheduled,
                dispatch.clone(),
                recorder.clone(),
                request.clone(),
                drain_deadline,
            )));
        } else if dispatch.backlog.borrow().len() < BACKLOG_CAP {
            recorder.borrow_mut().backlogged += 1;
            dispatch.backlog.borrow_mut().push_back(scheduled);
        } else {
            recorder.borrow_mut().not_sent += 1;
        }
    }
    dispatch.close();
    let generated = ticker.stop();
    let all_done = async {
        for task in tasks {
            task.await;
        }
    };
    let hard_stop = (drain_deadline + DRAIN_GRACE).saturating_duration_since(Instant::now());
    let finished = monoio::time::timeout(hard_stop, all_done).await.is_ok();

    // Every generated instant ends as ok, an error or not_sent.
    let mut r = recorder.borrow_mut();
    r.scheduled += generated;
    r.not_sent += generated.saturating_sub(received);
    if !finished {
        let in_flight = dispatch.in_flight.get() as u64;
        r.errors.timeout += in_flight;
        let accounted = r.ok + r.errors.total() + r.not_sent;
        r.not_sent += generated.saturating_sub(accounted);
    }
}

/// The ticker thread and the receiving end of its bounded queue.
struct Ticker {
    rx: flume::Receiver<Instant>,
    generated: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Stops the thread (if still running) and returns how many instants it scheduled.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        self.generated.load(Ordering::Acquire)
    }
}

/// A thread that sends each scheduled instant (`first + i / rate`, before `end`) when it
/// comes; the channel closes after the last one. An instant that finds the queue full is
/// dropped (it is still counted as generated, so it ends up as `not_sent`).
fn spawn_ticker(first: Instant, end: Instant, rate: f64) -> Ticker {
    let (tx, rx) = flume::bounded(TICK_QUEUE_CAP);
    let generated = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let handle = std::thread::Builder::new()
        .name("loadgen-ticker".to_string())
        .spawn({
            let generated = generated.clone();
            let stop = stop.clone();
            move || {
                // SAFETY: prctl with PR_SET_TIMERSLACK takes a plain integer.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
                let mut i: u64 = 0;
                loop {
                    let scheduled = first + Duration::from_secs_f64(i as f64 / rate);
                    if scheduled >= end || stop.load(Ordering::Acquire) {
                        break;
                    }
                    let now = Instant::now();
                    if scheduled > now {
                        std::thread::sleep(scheduled - now);
                    }
                    generated.fetch_add(1, Ordering::AcqRel);
                    if let Err(flume::TrySendError::Disconnected(_)) = tx.try_send(scheduled) {
                        break;
                    }
                    i += 1;
                }
            }
        })
        // Without a ticker thread the receiver reports a closed channel: nothing is sent.
        .ok();
    Ticker {
        rx,
        generated,
        stop,
        handle,
    }
}

async fn connection_task(
    share: Rc<WorkerShare>,
    first: Instant,
    dispatch: Rc<Dispatch>,
    recorder: Rc<RefCell<Recorder>>,
    request: Bytes,
    drain_deadline: Instant,
) {
    let mut conn = ClientConnection::new(share.target.addr);
    let slot = Rc::new(Slot::default());
    let mut next = Some(first);
    loop {
        let scheduled = match next.take() {
            Some(t) => t,
            None => match dispatch.next(&slot).await {
                Some(t) => t,
                None => break,
            },
        };
        let sent = Instant::now();
        if sent >= drain_deadline {
            recorder.borrow_mut().not_sent += 1;
            continue;
        }
        recorder.borrow_mut().record_send(scheduled, sent);
        // No request outlives the drain deadline.
        let limit = share
            .timeout
            .min(drain_deadline.saturating_duration_since(sent));
        dispatch.in_flight.set(dispatch.in_flight.get() + 1);
        let result = send(&mut conn, &request, limit).await;
        dispatch.in_flight.set(dispatch.in_flight.get() - 1);
        recorder
            .borrow_mut()
            .record(scheduled, sent, result, share.stream);
    }
    recorder.borrow_mut().connections_opened += conn.opened;
    dispatch.open.set(dispatch.open.get() - 1);
}

/// One exchange bounded by `timeout` (the connection is dropped when it fires).
async fn send(
    conn: &mut ClientConnection,
    request: &Bytes,
    timeout: Duration,
) -> Result<super::exchange::Exchange, ErrorKind> {
    match monoio::time::timeout(timeout, conn.exchange(request)).await {
        Ok(result) => result,
        Err(_) => {
            conn.discard();
            Err(ErrorKind::Timeout)
        }
    }
}

/// `connections` connections, each sending its next request as soon as the last is done.
async fn closed_loop(
    share: Rc<WorkerShare>,
    connections: usize,
    request: Bytes,
    start: Instant,
    recorder: Rc<RefCell<Recorder>>,
) {
    let end = start + share.duration;
    sleep_until(start).await;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let share = share.clone();
            let request = request.clone();
            let recorder = recorder.clone();
            monoio::spawn(async move {
                let mut conn = ClientConnection::new(share.target.addr);
                while Instant::now() < end {
                    let sent = Instant::now();
                    recorder.borrow_mut().scheduled += 1;
                    let result = send(&mut conn, &request, share.timeout).await;
                    let failed_connect = matches!(result, Err(ErrorKind::Connect));
                    recorder
                        .borrow_mut()
                        .record(sent, sent, result, share.stream);
                    if failed_connect {
                        // Don't spin on a refused port.
                        monoio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                recorder.borrow_mut().connections_opened += conn.opened;
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::future::Future;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, RawWaker, RawWakerVTable};

    // A waker that, like monoio's task waker in release builds, is not `will_wake` with
    // its own clone (the clone has another vtable). It counts wake-ups.
    static VTABLE_A: RawWakerVTable = RawWakerVTable::new(clone_b, wake, wake_by_ref, drop_raw);
    static VTABLE_B: RawWakerVTable = RawWakerVTable::new(clone_a, wake, wake_by_ref, drop_raw);
    unsafe fn clone_a(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE_A)
    }
    unsafe fn clone_b(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE_B)
    }
    unsafe fn wake(p: *const ()) {
        // SAFETY: `p` is the leaked counter of `counting_waker`.
        unsafe { (*p.cast::<AtomicUsize>()).fetch_add(1, Ordering::SeqCst) };
    }
    unsafe fn wake_by_ref(p: *const ()) {
        // SAFETY: as in `wake`.
        unsafe { wake(p) }
    }
    unsafe fn drop_raw(_: *const ()) {}

    fn counting_waker() -> (Waker, &'static AtomicUsize) {
        let count: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let raw = RawWaker::new((count as *const AtomicUsize).cast(), &VTABLE_A);
        // SAFETY: the vtable functions only touch the leaked counter.
        let waker = unsafe { Waker::from_raw(raw) };
        assert!(!waker.will_wake(&waker.clone()));
        (waker, count)
    }

    /// Regression: idle connections used to wait on a shared flume queue; with such a
    /// waker a connection woken for an instant another one took woke itself on every
    /// poll and re-queued its hook each time, so the runtime spun forever (never parking,
    /// so neither the ticker's wake-ups nor timers ran) and memory grew without bound.
    #[test]
    fn idle_connections_do_not_wake_themselves_or_grow() {
        let dispatch = Rc::new(Dispatch::default());
        let (waker, wakes) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let slots: Vec<Rc<Slot>> = (0..3).map(|_| Rc::new(Slot::default())).collect();
        let mut waits: Vec<_> = slots
            .iter()
            .map(|slot| Box::pin(dispatch.next(slot)))
            .collect();
        for _ in 0..1000 {
            for wait in &mut waits {
                assert!(wait.as_mut().poll(&mut cx).is_pending());
            }
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 0, "spurious self-wake");
        assert_eq!(dispatch.idle.borrow().len(), 3, "idle list grew");

        // One instant for one idle connection: exactly one wake, the others stay quiet.
        let t = Instant::now();
        let slot = dispatch.idle.borrow_mut().pop().unwrap();
        slot.item.set(Some(t));
        slot.wake();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        let mut ready = 0;
        for _ in 0..1000 {
            waits.retain_mut(|wait| match wait.as_mut().poll(&mut cx) {
                Poll::Ready(got) => {
                    assert_eq!(got, Some(t));
                    ready += 1;
                    false
                }
                Poll::Pending => true,
            });
        }
        assert_eq!(ready, 1);
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "spurious self-wake");
        assert_eq!(dispatch.idle.borrow().len(), 2);

        // Closing wakes the idle ones, which then end.
        dispatch.close();
        assert_eq!(wakes.load(Ordering::SeqCst), 3);
        assert!(dispatch.idle.borrow().is_empty());
        for wait in &mut waits {
            assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(None));
        }
    }
}
