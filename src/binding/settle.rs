//! Promises settled from the runtime's threads through one wake-up channel per JavaScript thread.
//!
//! napi-rs's `spawn_future_with_callback` makes a threadsafe function per call (with an `Error`
//! for its trace, a reference and a cleanup hook), and each call's end wakes the event loop on its
//! own. Here each JavaScript thread has one threadsafe function: a call's outcome goes into a
//! queue, and only the outcome that finds the queue empty wakes the thread, which then settles
//! every outcome queued by then. Under load, one wake-up settles many promises; alone, a call
//! costs one promise and one queue entry. The threadsafe function holds the event loop open only
//! while a call is in flight.

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{sys, Env};

use crate::error::HootError;

/// What settles one promise, run on its JavaScript thread: `Ok` resolves with the value, `Err`
/// rejects with it.
type Settle = Box<dyn FnOnce(sys::napi_env) -> Result<sys::napi_value, sys::napi_value> + Send>;

/// A promise's deferred handle: made and used on its JavaScript thread only, carried through a
/// runtime thread as an opaque pointer.
struct Deferred(sys::napi_deferred);
// SAFETY: the pointer is never dereferenced off the JavaScript thread that made it (`call_js`
// runs there); runtime threads only carry it.
unsafe impl Send for Deferred {}

/// The threadsafe function, while Node has not finalized it.
struct Tsfn(sys::napi_threadsafe_function);
// SAFETY: napi_call_threadsafe_function is meant to be called from any thread.
unsafe impl Send for Tsfn {}

/// The outcomes waiting for their JavaScript thread, and the way to wake it.
struct Channel {
    queue: Vec<(Deferred, Settle)>,
    /// `None` once Node finalized it (the environment is going away): outcomes are then dropped.
    tsfn: Option<Tsfn>,
}

struct Shared(Mutex<Channel>);

impl Shared {
    fn channel(&self) -> std::sync::MutexGuard<'_, Channel> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an outcome, waking the JavaScript thread if nothing was queued before it.
    fn push(&self, deferred: Deferred, settle: Settle) {
        let mut channel = self.channel();
        let Some(tsfn) = channel.tsfn.as_ref().map(|t| t.0) else { return };
        channel.queue.push((deferred, settle));
        if channel.queue.len() == 1 {
            // SAFETY: the function is not finalized (checked under the lock finalize takes).
            unsafe { sys::napi_call_threadsafe_function(tsfn, std::ptr::null_mut(), 0) };
        }
    }
}

/// This JavaScript thread's channel and the calls it has in flight.
struct Local {
    env: sys::napi_env,
    shared: Arc<Shared>,
    tsfn: sys::napi_threadsafe_function,
    in_flight: usize,
}

thread_local! {
    /// One per environment on this thread (a module loaded again in one thread makes another).
    static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

/// Settles the queued outcomes, on the JavaScript thread. `env` is null while Node tears the
/// function down, after `finalize` (which dropped what was queued) may have freed `context`: then
/// nothing is touched.
unsafe extern "C" fn call_js(env: sys::napi_env, _: sys::napi_value, context: *mut c_void, _: *mut c_void) {
    if env.is_null() {
        return;
    }
    // SAFETY: with a live `env`, `finalize` has not run, so `context` (the `Shared` it releases)
    // is alive.
    let shared = unsafe { &*(context as *const Shared) };
    let ready = std::mem::take(&mut shared.channel().queue);
    let settled = ready.len();
    for (deferred, settle) in ready {
        let mut scope = std::ptr::null_mut();
        // SAFETY: a live environment on its own thread; each outcome's handles live in a scope.
        unsafe { sys::napi_open_handle_scope(env, &mut scope) };
        // SAFETY: each deferred is settled exactly once, here, on the thread that made it.
        unsafe { settle_now(env, deferred.0, settle) };
        // SAFETY: the scope opened above.
        unsafe { sys::napi_close_handle_scope(env, scope) };
    }
    with_local(env, |local| {
        local.in_flight = local.in_flight.saturating_sub(settled);
        if local.in_flight == 0 {
            // SAFETY: on the thread that made the function, which is not finalized.
            unsafe { sys::napi_unref_threadsafe_function(env, local.tsfn) };
        }
    });
}

/// Resolves or rejects `deferred` with `settle`'s outcome; a panic in it rejects with
/// `ERR_HOOT_INTERNAL`.
///
/// # Safety
/// On the JavaScript thread of `env`, inside a handle scope, once per deferred.
unsafe fn settle_now(env: sys::napi_env, deferred: sys::napi_deferred, settle: Settle) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| settle(env)))
        .unwrap_or_else(|panic| Err(error_value(env, &super::panic_message(panic))));
    // SAFETY: as the caller promises.
    unsafe {
        match outcome {
            Ok(value) => sys::napi_resolve_deferred(env, deferred, value),
            Err(value) => sys::napi_reject_deferred(env, deferred, value),
        };
    }
}

/// Runs `f` on this thread's channel for `env`, if it has one.
fn with_local<T>(env: sys::napi_env, f: impl FnOnce(&mut Local) -> T) -> Option<T> {
    LOCAL.with(|locals| locals.borrow_mut().iter_mut().find(|l| l.env == env).map(f))
}

/// Node is done with the function: nothing may call it any more.
unsafe extern "C" fn finalize(env: sys::napi_env, data: *mut c_void, _: *mut c_void) {
    // SAFETY: `data` is the `Arc<Shared>` leaked in `local`, given back once, here.
    let shared = unsafe { Arc::from_raw(data as *const Shared) };
    let dropped = {
        let mut channel = shared.channel();
        channel.tsfn = None;
        std::mem::take(&mut channel.queue)
    };
    drop(dropped);
    let _ = LOCAL.try_with(|locals| {
        if let Ok(mut locals) = locals.try_borrow_mut() {
            locals.retain(|l| l.env != env);
        }
    });
}

/// This thread's channel for `env` (made on first use), with one more call counted in flight.
fn enter(env: &Env) -> Result<Arc<Shared>, HootError> {
    LOCAL.with(|locals| {
        let mut locals = locals.borrow_mut();
        let at = match locals.iter().position(|l| l.env == env.raw()) {
            Some(at) => at,
            None => {
                locals.push(make(env)?);
                locals.len() - 1
            }
        };
        let local = &mut locals[at];
        if local.in_flight == 0 {
            // SAFETY: on the thread that made the function, which is not finalized.
            unsafe { sys::napi_ref_threadsafe_function(env.raw(), local.tsfn) };
        }
        local.in_flight += 1;
        Ok(Arc::clone(&local.shared))
    })
}

fn make(env: &Env) -> Result<Local, HootError> {
    let shared = Arc::new(Shared(Mutex::new(Channel { queue: Vec::new(), tsfn: None })));
    let tsfn = threadsafe_function(env, std::ptr::null_mut(), "hoot-core", &shared, finalize, call_js)?;
    shared.channel().tsfn = Some(Tsfn(tsfn));
    Ok(Local { env: env.raw(), shared, tsfn, in_flight: 0 })
}

/// A threadsafe function on `env`'s thread that holds the event loop open only when referenced,
/// which it is not yet. Node keeps one reference to `shared` for it, handed to `finalize` as its
/// data when the function goes; `call_js` gets `shared` as its context and `func` (null: none).
pub(super) fn threadsafe_function<T: Send + Sync>(
    env: &Env,
    func: sys::napi_value,
    name: &str,
    shared: &Arc<T>,
    finalize: unsafe extern "C" fn(sys::napi_env, *mut c_void, *mut c_void),
    call_js: unsafe extern "C" fn(sys::napi_env, sys::napi_value, *mut c_void, *mut c_void),
) -> Result<sys::napi_threadsafe_function, HootError> {
    let name = env.create_string(name).map_err(super::napi_failure)?;
    let data = Arc::into_raw(Arc::clone(shared)) as *mut c_void;
    let mut tsfn = std::ptr::null_mut();
    // SAFETY: a live environment on its thread; `data` stays valid until `finalize` takes it.
    let status = unsafe {
        sys::napi_create_threadsafe_function(
            env.raw(),
            func,
            std::ptr::null_mut(),
            napi::JsValue::raw(&name),
            0,
            1,
            data,
            Some(finalize),
            Arc::as_ptr(shared) as *mut c_void,
            Some(call_js),
            &mut tsfn,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed to Node, so given back here.
        drop(unsafe { Arc::from_raw(data as *const T) });
        return Err(HootError::Internal(format!("N-API could not make a threadsafe function (status {status})")));
    }
    // SAFETY: just made on this thread, and not finalized.
    unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
    Ok(tsfn)
}

/// The JS error value of a core error (its class and `.code`).
pub(super) fn error_value(env: sys::napi_env, e: &HootError) -> sys::napi_value {
    // Called on the JavaScript thread of `env`, inside a handle scope.
    let env = Env::from_raw(env);
    let error = super::to_js(&env, e);
    // SAFETY: as above; the value lives in the current scope.
    unsafe { napi::JsError::from(error).into_value(env.raw()) }
}

/// Settles its promise with `ERR_HOOT_INTERNAL` if dropped before the call's outcome was queued
/// (the runtime shutting down, or a panic outside the call's own guard), so no promise is left
/// pending and no loop held open.
struct Outcome {
    slot: Option<(Deferred, Arc<Shared>)>,
}

impl Outcome {
    fn send(mut self, settle: Settle) {
        if let Some((deferred, shared)) = self.slot.take() {
            shared.push(deferred, settle);
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some((deferred, shared)) = self.slot.take() {
            let e = HootError::Internal("the call stopped before it finished".into());
            shared.push(deferred, Box::new(move |env| Err(error_value(env, &e))));
        }
    }
}

/// A call's future between its first poll (on the JavaScript thread) and its task.
enum Parked {
    /// Being polled on the JavaScript thread.
    Polling,
    /// Woken while polled there: spawn it at once.
    Woken,
    /// Waiting for its first wake-up, which spawns it.
    Waiting(Pin<Box<dyn Future<Output = ()> + Send>>),
    Spawned,
}

/// The waker of a call's first poll: its first wake-up spawns the rest of the call as a task (on
/// the thread that woke it, usually the runtime thread that read the answer).
struct FirstPoll(Mutex<Parked>);

impl Wake for FirstPoll {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut parked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *parked, Parked::Spawned) {
            Parked::Polling => *parked = Parked::Woken,
            Parked::Waiting(call) => {
                drop(parked);
                napi::bindgen_prelude::spawn(call);
            }
            other => *parked = other,
        }
    }
}

/// The promise of `call`'s outcome, `convert`ed on the JavaScript thread, or rejected with the
/// core error's JS error.
///
/// The call is polled once here, on the JavaScript thread, inside the runtime's context: a query
/// it queues on a lane goes out on the socket from here (`lanes::Suppressed`), and only the
/// answer wakes a runtime thread, which runs the rest of the call as a task. A call that finishes
/// on that first poll settles its promise at once.
pub(super) fn spawn<'e, T: ToNapiValue + 'static, R: Send + 'static>(
    env: &'e Env,
    call: impl Future<Output = Result<R, HootError>> + Send + 'static,
    convert: impl FnOnce(R) -> T + Send + 'static,
) -> napi::Result<PromiseRaw<'e, T>> {
    let mut deferred = std::ptr::null_mut();
    let mut promise = std::ptr::null_mut();
    // SAFETY: a live environment on its thread.
    let status = unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) };
    if status != sys::Status::napi_ok {
        let e = HootError::Internal(format!("N-API could not make a promise (status {status})"));
        return Err(super::to_js(env, &e));
    }
    let settle = move |result: Result<R, HootError>| -> Settle {
        Box::new(move |env| match result {
            // SAFETY: on the JavaScript thread, inside a handle scope.
            Ok(value) => unsafe { T::to_napi_value(env, convert(value)) }
                .map_err(|e| error_value(env, &HootError::Internal(format!("cannot convert the result: {e}")))),
            Err(e) => Err(error_value(env, &e)),
        })
    };
    let outcome = Arc::new(Mutex::new(None::<Result<R, HootError>>));
    let kept = Arc::clone(&outcome);
    let mut call: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        let result = call.await;
        *kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    });
    let first = Arc::new(FirstPoll(Mutex::new(Parked::Polling)));
    let waker = Waker::from(Arc::clone(&first));
    let polled = {
        let _sent_from_here = crate::pg::lanes::Suppressed::new();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            napi::bindgen_prelude::within_runtime_if_available(|| call.as_mut().poll(&mut Context::from_waker(&waker)))
        }))
    };
    let result = match polled {
        Ok(Poll::Ready(())) => outcome.lock().unwrap_or_else(|p| p.into_inner()).take(),
        Ok(Poll::Pending) => None,
        Err(panic) => Some(Err(super::panic_message(panic))),
    };
    if let Some(result) = result {
        // SAFETY: on the thread that made it, inside the call's scope, settled once, here.
        unsafe { settle_now(env.raw(), deferred, settle(result)) };
        return Ok(PromiseRaw::new(env.raw(), promise));
    }
    let shared = enter(env).map_err(|e| super::to_js(env, &e))?;
    let sender = Outcome { slot: Some((Deferred(deferred), shared)) };
    let rest: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        call.await;
        let result = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(result) = result {
            sender.send(settle(result));
        }
    });
    let mut parked = first.0.lock().unwrap_or_else(|p| p.into_inner());
    match std::mem::replace(&mut *parked, Parked::Spawned) {
        Parked::Woken => {
            drop(parked);
            napi::bindgen_prelude::spawn(rest);
        }
        _ => *parked = Parked::Waiting(rest),
    }
    Ok(PromiseRaw::new(env.raw(), promise))
}
