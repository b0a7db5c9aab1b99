//! The security events' way to JavaScript, and the metrics' snapshot (`lib/events.js` and
//! `lib/metrics.js` are their faces).
//!
//! Events are the process's (`crate::events`): one on a worker thread or a runtime thread reaches
//! every JavaScript thread that listens. Each listening instance of lib/events.js (one per thread,
//! unless a module cache was reset) has a channel: a queue of event JSON texts and a threadsafe
//! function that never holds the event loop open. The event that finds the queue empty wakes the
//! thread, which hands every queued text to its dispatcher in one call.
//! A queue holds at most `MAX_QUEUED`; past that events are counted, not kept, and the thread is
//! told how many it missed (`events_dropped`), so a stalled loop cannot grow memory without bound.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Function;
use napi::{sys, Env, JsValue, Unknown};
use napi_derive::napi;

use super::guarded;

/// The most events one thread's queue holds before it counts instead.
const MAX_QUEUED: usize = 10_000;

struct Tsfn(sys::napi_threadsafe_function);
// SAFETY: napi_call_threadsafe_function and napi_release_threadsafe_function may be called from
// any thread.
unsafe impl Send for Tsfn {}

struct Queue {
    events: Vec<String>,
    dropped: u64,
    /// `None` once the thread stopped listening or Node finalized the function.
    tsfn: Option<Tsfn>,
}

struct Channel {
    /// What the JavaScript side names it by (one per `lib/events.js` instance listening).
    id: u32,
    queue: Mutex<Queue>,
}

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Channel {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, event: &str) {
        let mut queue = self.queue();
        let Some(tsfn) = queue.tsfn.as_ref().map(|t| t.0) else { return };
        let was_empty = queue.events.is_empty() && queue.dropped == 0;
        if queue.events.len() < MAX_QUEUED {
            queue.events.push(event.to_string());
        } else {
            queue.dropped += 1;
        }
        if was_empty {
            // SAFETY: not released nor finalized (both clear `tsfn` under this lock first).
            unsafe { sys::napi_call_threadsafe_function(tsfn, std::ptr::null_mut(), 0) };
        }
    }
}

/// The listening threads' channels.
static CHANNELS: Mutex<Vec<Arc<Channel>>> = Mutex::new(Vec::new());

fn channels() -> std::sync::MutexGuard<'static, Vec<Arc<Channel>>> {
    CHANNELS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the core's sink while any thread listens, and removes it when none does.
fn update_sink(listening: &[Arc<Channel>]) {
    if listening.is_empty() {
        crate::events::set_sink(None);
    } else if !crate::events::listening() {
        crate::events::set_sink(Some(Arc::new(|event: String| {
            for channel in channels().iter() {
                channel.push(&event);
            }
        })));
    }
}

impl Channel {
    /// Everything queued, the count of dropped events last as an `events_dropped` event.
    fn take(&self) -> Vec<String> {
        let (mut events, dropped) = {
            let mut queue = self.queue();
            (std::mem::take(&mut queue.events), std::mem::take(&mut queue.dropped))
        };
        if dropped > 0 {
            events.push(
                serde_json::json!({ "type": "events_dropped", "at": crate::clock::unix_now_ms(), "count": dropped })
                    .to_string(),
            );
        }
        events
    }
}

/// Hands the queued events to the dispatcher, on its thread, as one array of JSON texts.
unsafe extern "C" fn call_js(env: sys::napi_env, dispatch: sys::napi_value, context: *mut c_void, _: *mut c_void) {
    if env.is_null() || dispatch.is_null() {
        return;
    }
    // SAFETY: with a live `env`, `finalize` has not run, so the channel it releases is alive.
    let channel = unsafe { &*(context as *const Channel) };
    if channel.queue().tsfn.is_none() {
        // Stopped since this call was queued: what it would hand over is no longer anyone's.
        return;
    }
    let events = channel.take();
    if events.is_empty() {
        return;
    }
    let env = Env::from_raw(env);
    let Ok(array) = env.create_array(events.len() as u32) else { return };
    let mut array = array;
    for (i, event) in events.iter().enumerate() {
        if array.set(i as u32, event.as_str()).is_err() {
            return;
        }
    }
    let mut undefined = std::ptr::null_mut();
    let mut result = std::ptr::null_mut();
    // SAFETY: a live environment on its thread, inside the scope Node opened for this call;
    // `dispatch` is the function the channel was made with.
    unsafe {
        sys::napi_get_undefined(env.raw(), &mut undefined);
        let args = [array.raw()];
        sys::napi_call_function(env.raw(), undefined, dispatch, 1, args.as_ptr(), &mut result);
    }
}

/// Node is done with the function: the channel goes.
unsafe extern "C" fn finalize(_: sys::napi_env, data: *mut c_void, _: *mut c_void) {
    // SAFETY: `data` is the `Arc<Channel>` leaked in `events_listen`, given back once, here.
    let channel = unsafe { Arc::from_raw(data as *const Channel) };
    channel.queue().tsfn = None;
    let mut all = channels();
    all.retain(|c| !Arc::ptr_eq(c, &channel));
    update_sink(&all);
}

/// Starts handing the process's events to `dispatch`, on this thread, as arrays of event JSON
/// texts. Returns the channel's id, for `eventsStop` and `eventsTake`.
#[napi(js_name = "eventsListen", skip_typescript)]
pub fn events_listen(env: Env, dispatch: Function<'_, Unknown<'_>, Unknown<'_>>) -> napi::Result<u32> {
    guarded(&env, || {
        let mut all = channels();
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let channel = Arc::new(Channel { id, queue: Mutex::new(Queue { events: Vec::new(), dropped: 0, tsfn: None }) });
        // Unreferenced: listening never keeps the process alive.
        let tsfn =
            super::settle::threadsafe_function(&env, dispatch.raw(), "hoot-core events", &channel, finalize, call_js)?;
        channel.queue().tsfn = Some(Tsfn(tsfn));
        all.push(channel);
        update_sink(&all);
        Ok(id)
    })
}

/// Stops the channel `id` (its listeners all went).
#[napi(js_name = "eventsStop", skip_typescript)]
pub fn events_stop(env: Env, id: u32) -> napi::Result<()> {
    guarded(&env, || {
        let mut released = Vec::new();
        {
            let mut all = channels();
            for channel in all.iter().filter(|c| c.id == id) {
                let mut queue = channel.queue();
                queue.events.clear();
                queue.dropped = 0;
                released.extend(queue.tsfn.take());
            }
            // No event reaches the channel from now on; it is freed by its `finalize`.
            all.retain(|c| c.id != id);
            update_sink(&all);
        }
        for tsfn in released {
            // SAFETY: made by this thread and released once (taken out of its queue under the lock).
            unsafe { sys::napi_release_threadsafe_function(tsfn.0, sys::ThreadsafeFunctionReleaseMode::release) };
        }
        Ok(())
    })
}

/// The events queued for channel `id` now (the JSON texts), for a process about to exit: its
/// listeners get them at once rather than on a later turn of the event loop.
#[napi(js_name = "eventsTake", skip_typescript)]
pub fn events_take(id: u32) -> Vec<String> {
    let channel = channels().iter().find(|c| c.id == id).cloned();
    channel.map(|c| c.take()).unwrap_or_default()
}

/// The core's counters and histograms as JSON (see `crate::metrics::snapshot`).
#[napi(js_name = "metricsSnapshot", skip_typescript)]
pub fn metrics_snapshot() -> String {
    crate::metrics::snapshot()
}
