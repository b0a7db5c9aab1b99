//! The JavaScript face of hoot-core. It only converts: JS values in (with Node-style `TypeError`s
//! naming the argument), a core call, JS values or a coded error out. Every rule about which
//! values are acceptable lives in the core. No panic crosses it.
//!
//! This module holds what every export shares: the panic guard, the conversion of a core error
//! into a JS error, and the handling of an exception the caller's own code raised. The exports
//! are in `keys`, `tokens`, `store`, `pg` and `telemetry`; `args` reads their arguments.

use std::panic::{catch_unwind, AssertUnwindSafe};

use napi::{Env, JsError, JsRangeError, JsTypeError, Status, Unknown};

use crate::error::{ErrorKind, HootError};

pub mod args;
pub mod keys;
pub mod pg;
mod settle;
pub mod store;
pub mod telemetry;
pub mod tokens;

/// The JS error for a core error: the class its kind asks for, with `.code` set.
fn to_js(env: &Env, e: &HootError) -> napi::Error {
    let inner = napi::Error::new(e.code().to_string(), e.to_string());
    let value = match e.kind() {
        ErrorKind::TypeError => JsTypeError::from(inner).into_unknown(*env),
        ErrorKind::RangeError => JsRangeError::from(inner).into_unknown(*env),
        ErrorKind::Error => JsError::from(inner).into_unknown(*env),
    };
    napi::Error::from(value)
}

/// A caught panic as the core error JavaScript sees (`ERR_HOOT_INTERNAL`).
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> HootError {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    HootError::Internal(format!("panic: {text}"))
}

/// Runs `f`, catching a panic as a core error.
fn catch_panic<T>(f: impl FnOnce() -> Result<T, HootError>) -> Result<T, HootError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| Err(panic_message(panic)))
}

/// A JS exception raised while reading an argument (a throwing getter, a Proxy trap) is already
/// pending; it is the caller's own error and must reach them unchanged.
fn exception_pending(env: &Env) -> bool {
    let mut pending = false;
    // SAFETY: `env` is the live environment of the current call, and `pending` outlives the call.
    let status = unsafe { napi::sys::napi_is_exception_pending(env.raw(), &mut pending) };
    status == napi::sys::Status::napi_ok && pending
}

/// Runs `f`, turning its error or any panic into a thrown JS error.
fn guarded<T>(env: &Env, f: impl FnOnce() -> Result<T, HootError>) -> napi::Result<T> {
    let error = match catch_panic(f) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    if exception_pending(env) {
        return Err(napi::Error::new(Status::PendingException, error.to_string()));
    }
    Err(to_js(env, &error))
}

/// An N-API call that failed where it cannot (a value of the type just checked), as a core error.
fn napi_failure(e: napi::Error) -> HootError {
    HootError::Internal(format!("N-API call failed: {e}"))
}

/// Clears a pending JS exception and keeps it as an error value, so it can reject a promise
/// instead of being thrown synchronously.
fn take_pending_exception(env: &Env) -> Option<napi::Error> {
    if !exception_pending(env) {
        return None;
    }
    let mut value = std::ptr::null_mut();
    // SAFETY: an exception is pending in this live environment; `value` receives it.
    let status = unsafe { napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut value) };
    if status != napi::sys::Status::napi_ok || value.is_null() {
        return None;
    }
    // SAFETY: N-API just handed back `value`, a valid handle in the current scope of `env`.
    Some(napi::Error::from(unsafe { Unknown::from_raw_unchecked(env.raw(), value) }))
}
