//! A worker thread: its own monoio runtime running the open-loop schedule or the
//! closed-loop connections for its share of the load.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
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

/// Connection tasks of an open-loop worker: how many exist and how many wait for work.
#[derive(Default)]
struct Pool {
    open: Cell<usize>,
    idle: Cell<usize>,
}

async fn sleep_until(t: Instant) {
    if t > Instant::now() {
        monoio::time::sleep_until(monoio::time::Instant::from_std(t)).await;
    }
}

/// Sends one request per scheduled instant, whatever the responses do. Each instant goes
/// to an idle connection, or a new one up to the cap; beyond the cap it waits in a queue
/// and its latency still counts from the scheduled instant.
///
/// The instants come from a ticker thread: monoio's timer wheel has millisecond
/// granularity (sends would be 1-2 ms late, hiding a proxy's tens of microseconds), while
/// a blocking sleep with minimal timer slack wakes within a few microseconds.
async fn open_loop(
    share: Rc<WorkerShare>,
    rate: f64,
    request: Bytes,
    start: Instant,
    recorder: Rc<RefCell<Recorder>>,
) {
    let end = start + share.duration;
    let drain_deadline = end + share.timeout;
    let ticks = spawn_ticker(start + share.phase, end, rate);
    let (tx, rx) = flume::unbounded::<Instant>();
    let pool = Rc::new(Pool::default());
    let mut tasks = Vec::new();
    while let Ok(scheduled) = ticks.recv_async().await {
        recorder.borrow_mut().scheduled += 1;
        if tx.len() >= pool.idle.get() {
            if pool.open.get() < share.max_connections {
                pool.open.set(pool.open.get() + 1);
                tasks.push(monoio::spawn(connection_task(
                    share.clone(),
                    rx.clone(),
                    pool.clone(),
                    recorder.clone(),
                    request.clone(),
                    drain_deadline,
                )));
            } else {
                recorder.borrow_mut().backlogged += 1;
            }
        }
        let _ = tx.send(scheduled);
    }
    drop(tx);
    for task in tasks {
        task.await;
    }
}

/// A thread that sends each scheduled instant (`first + i / rate`, before `end`) when it
/// comes; the channel closes after the last one.
fn spawn_ticker(first: Instant, end: Instant, rate: f64) -> flume::Receiver<Instant> {
    let (tx, rx) = flume::unbounded();
    let spawned = std::thread::Builder::new()
        .name("loadgen-ticker".to_string())
        .spawn(move || {
            // SAFETY: prctl with PR_SET_TIMERSLACK takes a plain integer.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
            let mut i: u64 = 0;
            loop {
                let scheduled = first + Duration::from_secs_f64(i as f64 / rate);
                if scheduled >= end {
                    break;
                }
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                if tx.send(scheduled).is_err() {
                    break;
                }
                i += 1;
            }
        });
    // Without a ticker thread the receiver reports a closed channel: nothing is sent.
    drop(spawned);
    rx
}

async fn connection_task(
    share: Rc<WorkerShare>,
    rx: flume::Receiver<Instant>,
    pool: Rc<Pool>,
    recorder: Rc<RefCell<Recorder>>,
    request: Bytes,
    drain_deadline: Instant,
) {
    let mut conn = ClientConnection::new(share.target.addr);
    loop {
        pool.idle.set(pool.idle.get() + 1);
        let next = rx.recv_async().await;
        pool.idle.set(pool.idle.get() - 1);
        let Ok(scheduled) = next else { break };
        let sent = Instant::now();
        if sent >= drain_deadline {
            recorder.borrow_mut().not_sent += 1;
            continue;
        }
        recorder.borrow_mut().record_send(scheduled, sent);
        let result = send(&mut conn, &request, share.timeout).await;
        recorder
            .borrow_mut()
            .record(scheduled, sent, result, share.stream);
    }
    recorder.borrow_mut().connections_opened += conn.opened;
    pool.open.set(pool.open.get() - 1);
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
