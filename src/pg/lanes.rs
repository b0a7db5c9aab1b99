//! Shared connections for single statements, pipelined: a request's reads, and a write sent alone.
//!
//! A pooled connection carries one call at a time, and its driver is a task of its own, so each
//! call costs a hand-off to that task to send the query. A lane is a connection that any number
//! of single-statement calls use at once (tokio-postgres pipelines them: sent back to back, the
//! answers read in order), whose driver can also be polled by the thread that queued a query:
//! the binding polls a call once on the JavaScript thread, and the query goes out on the socket
//! from there, with no task woken to send it (`Suppressed`). The answer is read by the driver's
//! task. Writes in flight together and transactions keep the pool's connections, one call each.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio_postgres::{Client, Statement};

use super::config::{LazyTls, Target, Tls};

/// A connection's driver: what reads answers and writes queries.
type Connection = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// A lane's connection driver, polled by its task or, right after it queued a query, by the
/// thread that queued it. Every poll uses the driver's own waker, which wakes the task.
struct Driver {
    connection: Mutex<Option<Connection>>,
    task: Mutex<Option<Waker>>,
    /// Queued for a poll by the thread that woke it inside `Suppressed`.
    marked: AtomicBool,
    /// Calls using the lane now.
    in_flight: AtomicUsize,
    /// A write is on the lane: reads are not queued behind it (a write can wait on a lock, and
    /// answers come back in order).
    writing: AtomicBool,
}

thread_local! {
    /// Set while the JavaScript thread polls a call: a driver woken then is polled by this thread
    /// afterwards instead of waking its task.
    static SUPPRESSING: Cell<bool> = const { Cell::new(false) };
    static MARKED: RefCell<Vec<Arc<Driver>>> = const { RefCell::new(Vec::new()) };
}

impl Wake for Driver {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only a query sent alone goes out from the JavaScript thread: with others in flight, the
        // task sends them together, and the event loop is not the one paying for each send.
        if SUPPRESSING.with(Cell::get) && self.in_flight.load(Ordering::Acquire) <= 1 {
            if !self.marked.swap(true, Ordering::AcqRel) {
                MARKED.with(|m| m.borrow_mut().push(Arc::clone(self)));
            }
            return;
        }
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            task.wake_by_ref();
        }
    }
}

impl Driver {
    /// Polls the connection once if no other thread is (`Some(finished)`), `None` if one is.
    fn poll_once(self: &Arc<Self>) -> Option<bool> {
        let mut slot = self.connection.try_lock().ok()?;
        let Some(connection) = slot.as_mut() else { return Some(true) };
        let waker = Waker::from(Arc::clone(self));
        let finished = connection.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
        if finished {
            *slot = None;
        }
        Some(finished)
    }

    fn wake_task(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            task.wake_by_ref();
        }
    }
}

/// While alive, drivers woken on this thread are not woken on their tasks; when dropped, this
/// thread polls each of them (or, if its task is polling it at that moment, wakes the task, which
/// polls again after it, so the query queued here is never left unsent).
pub struct Suppressed(());

impl Suppressed {
    /// Starts suppressing on this thread.
    pub fn new() -> Self {
        SUPPRESSING.with(|s| s.set(true));
        Suppressed(())
    }
}

impl Default for Suppressed {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Suppressed {
    fn drop(&mut self) {
        SUPPRESSING.with(|s| s.set(false));
        let marked = MARKED.with(|m| std::mem::take(&mut *m.borrow_mut()));
        for driver in marked {
            driver.marked.store(false, Ordering::Release);
            match driver.poll_once() {
                Some(false) => {}
                // Finished: its task learns it on its next poll.
                Some(true) | None => driver.wake_task(),
            }
        }
    }
}

/// One open lane.
pub(crate) struct Open {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
    driver: Arc<Driver>,
}

impl Open {
    /// `sql` prepared on this connection (once; a statement is reused by every call after).
    pub(crate) async fn prepared(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(stmt) = self.statements.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(sql).await?;
        self.statements.lock().unwrap_or_else(|p| p.into_inner()).insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    /// The client, to run statements on.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn usable(&self) -> bool {
        !self.client.is_closed()
    }
}

/// A lane in use by one call: counted so the next call picks the least busy lane.
pub(crate) struct InUse {
    open: Arc<Open>,
    write: bool,
}

impl std::ops::Deref for InUse {
    type Target = Open;
    fn deref(&self) -> &Open {
        &self.open
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        if self.write {
            self.open.driver.writing.store(false, Ordering::SeqCst);
        }
        self.open.driver.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Lane {
    open: Mutex<Option<Arc<Open>>>,
    connecting: tokio::sync::Mutex<()>,
}

/// A database's lanes.
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
    target: Target,
    tls: Option<LazyTls>,
    closed: AtomicBool,
}

impl Lanes {
    /// `count` lanes to `target` (`config` as the pool's connections are configured), none open yet.
    pub(crate) fn new(count: usize, target: &Target, config: tokio_postgres::Config) -> Self {
        let tls = (target.tls != Tls::Disable).then(|| LazyTls::new(target));
        let target = Target { config, tls: target.tls, root_cert: target.root_cert.clone() };
        let lanes =
            (0..count).map(|_| Lane { open: Mutex::new(None), connecting: tokio::sync::Mutex::new(()) }).collect();
        Lanes { lanes, target, tls, closed: AtomicBool::new(false) }
    }

    /// How many lanes are open, and the calls they carry now (for the pool gauges).
    pub(crate) fn load(&self) -> (usize, usize) {
        self.lanes.iter().fold((0, 0), |(open, calls), lane| {
            match lane.open.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|o| o.usable()) {
                Some(lane) => (open + 1, calls + lane.driver.in_flight.load(Ordering::Acquire)),
                None => (open, calls),
            }
        })
    }

    /// A lane for a read: the least busy one carrying no write, opened if it is not (or its
    /// connection was lost; a lane not open yet counts as idle, after an open idle one).
    /// `Ok(None)` when there is none: no lanes, all carrying writes, or closed.
    pub(crate) async fn get(&self) -> Result<Option<InUse>, tokio_postgres::Error> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut best: Option<(usize, (usize, bool))> = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            let rank = match lane.open.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|o| o.usable()) {
                Some(open) if open.driver.writing.load(Ordering::SeqCst) => continue,
                Some(open) => (open.driver.in_flight.load(Ordering::Acquire), false),
                None => (0, true),
            };
            if best.is_none_or(|(_, b)| rank < b) {
                best = Some((i, rank));
            }
        }
        let Some((at, _)) = best else { return Ok(None) };
        let lane = &self.lanes[at];
        if let Some(taken) = Self::take(lane) {
            return Ok(taken);
        }
        let _one = lane.connecting.lock().await;
        if let Some(taken) = Self::take(lane) {
            return Ok(taken);
        }
        let open = Arc::new(self.connect().await?);
        open.driver.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut slot = lane.open.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock `close` takes to empty the slot, so a lane closed meanwhile is
        // never stored.
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        *slot = Some(Arc::clone(&open));
        Ok(Some(InUse { open, write: false }))
    }

    /// `lane` counted in for a read if it is open: `Some(Some(lane))`, or `Some(None)` if a write
    /// took it meanwhile; `None` if it is not open.
    fn take(lane: &Lane) -> Option<Option<InUse>> {
        let open = lane.open.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|o| o.usable()).cloned()?;
        // Counted in, then checked: `idle` marks the write, then counts itself in, so one of the
        // two always sees the other.
        open.driver.in_flight.fetch_add(1, Ordering::SeqCst);
        let read = InUse { open, write: false };
        Some((!read.open.driver.writing.load(Ordering::SeqCst)).then_some(read))
    }

    /// An open lane with nothing in flight, if there is one, for a write: sent alone there, it
    /// goes out from the JavaScript thread and waits for no other call's commit. Reads are kept
    /// off the lane until it returns.
    pub(crate) fn idle(&self) -> Option<InUse> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.lanes.iter().find_map(|lane| {
            let open = lane.open.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|o| o.usable()).cloned()?;
            if open.driver.writing.swap(true, Ordering::SeqCst) {
                return None;
            }
            if open.driver.in_flight.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                open.driver.writing.store(false, Ordering::SeqCst);
                return None;
            }
            Some(InUse { open, write: true })
        })
    }

    async fn connect(&self) -> Result<Open, tokio_postgres::Error> {
        let (client, connection): (Client, Connection) = match &self.tls {
            None => {
                let (client, connection) = self.target.config.connect(tokio_postgres::NoTls).await?;
                (client, Box::pin(connection))
            }
            Some(tls) => {
                let (client, connection) = self.target.config.connect(tls.clone()).await?;
                (client, Box::pin(connection))
            }
        };
        let driver = Arc::new(Driver {
            connection: Mutex::new(Some(connection)),
            task: Mutex::new(None),
            marked: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            writing: AtomicBool::new(false),
        });
        let task = DriverTask(Arc::clone(&driver));
        tokio::spawn(std::future::poll_fn(move |cx| {
            let task = &task.0;
            *task.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            // Locked, not tried: the JavaScript thread holds it only for one non-blocking poll.
            let mut slot = task.connection.lock().unwrap_or_else(|p| p.into_inner());
            let Some(connection) = slot.as_mut() else { return Poll::Ready(()) };
            let waker = Waker::from(Arc::clone(task));
            match connection.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(_) => {
                    *slot = None;
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            }
        }));
        Ok(Open { client, statements: Mutex::new(HashMap::new()), driver })
    }

    /// Lets every lane go: the next call opens new ones (after a call that got no answer, whose
    /// lane may be waiting for one that never comes).
    pub(crate) fn forget(&self) {
        for lane in &self.lanes {
            lane.open.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }

    /// Closes every lane; calls after this fail as a closed pool's do.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.forget();
    }
}

/// The driver's task: when it ends, or is dropped with its runtime, the connection goes with it,
/// so the client sees it closed (and the wakers the connection holds, which point back at the
/// driver, are freed).
struct DriverTask(Arc<Driver>);

impl Drop for DriverTask {
    fn drop(&mut self) {
        self.0.connection.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
