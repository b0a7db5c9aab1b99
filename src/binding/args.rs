//! Reading JavaScript arguments: strings, option objects and JSON values, with Node's wording for
//! a value of the wrong type. Whether a value of the right type is acceptable is the core's rule.

use std::path::PathBuf;

use napi::bindgen_prelude::{Function, JsObjectValue, Object};
use napi::{Env, JsValue, Unknown, ValueType};
use serde_json::Value;

use super::{napi_failure, take_pending_exception};
use crate::error::HootError;
use crate::store::{JsonObject, ValueKind};
use crate::text;

/// The JS type of `value`.
pub fn type_of(value: &Unknown) -> Result<ValueType, HootError> {
    value.get_type().map_err(napi_failure)
}

/// Node's way of naming what was received: `type number (42)`, `undefined`, `an instance of Array`.
pub fn describe(value: &Unknown) -> String {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined".into(),
        Ok(ValueType::Null) => "null".into(),
        // SAFETY: the value is a number.
        Ok(ValueType::Number) => match unsafe { value.cast::<f64>() } {
            Ok(n) => format!("type number ({n})"),
            Err(_) => "type number".into(),
        },
        // SAFETY: the value is a boolean.
        Ok(ValueType::Boolean) => match unsafe { value.cast::<bool>() } {
            Ok(b) => format!("type boolean ({b})"),
            Err(_) => "type boolean".into(),
        },
        // SAFETY: the value is a string.
        Ok(ValueType::String) => match unsafe { value.cast::<String>() } {
            Ok(s) if s.chars().count() > 25 => format!("type string ('{}...')", s.chars().take(25).collect::<String>()),
            Ok(s) => format!("type string ('{s}')"),
            Err(_) => "type string".into(),
        },
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an instance of Array".into(),
        Ok(ValueType::Object) => "an instance of Object".into(),
        Ok(ValueType::Function) => "function".into(),
        Ok(ValueType::BigInt) => "type bigint".into(),
        Ok(ValueType::Symbol) => "type symbol".into(),
        _ => "an unknown value".into(),
    }
}

/// A string argument; anything else is a `TypeError` naming `name`, and one that is not
/// well-formed UTF-16 is refused by the core.
pub fn string_value(value: &Unknown, name: &str) -> Result<String, HootError> {
    let text = match type_of(value)? {
        ValueType::String => match short_string(value) {
            Some(short) => short,
            // SAFETY: the value is a string.
            None => unsafe { value.cast::<String>() }.map_err(napi_failure)?,
        },
        _ => return Err(HootError::arg_type(name, "of type string", describe(value))),
    };
    // V8 writes a lone surrogate as U+FFFD: only then is the string read again, as UTF-16.
    if text.contains('\u{FFFD}') {
        return text::from_utf16(name, &utf16(value)?);
    }
    Ok(text)
}

/// A JS string as UTF-16 code units, exactly as JavaScript holds it.
fn utf16(value: &Unknown) -> Result<Vec<u16>, HootError> {
    let (env, raw) = (value.value().env, value.raw());
    let mut length = 0usize;
    // SAFETY: `raw` is a live string handle of `env`; a null buffer asks only for the length.
    let status = unsafe { napi::sys::napi_get_value_string_utf16(env, raw, std::ptr::null_mut(), 0, &mut length) };
    if status != napi::sys::Status::napi_ok {
        return Err(HootError::Internal(format!("N-API could not read a string (status {status})")));
    }
    let mut units = vec![0u16; length + 1];
    let mut copied = 0usize;
    // SAFETY: `units` has room for `length` code units and the terminating NUL N-API writes.
    let status =
        unsafe { napi::sys::napi_get_value_string_utf16(env, raw, units.as_mut_ptr(), units.len(), &mut copied) };
    if status != napi::sys::Status::napi_ok {
        return Err(HootError::Internal(format!("N-API could not read a string (status {status})")));
    }
    units.truncate(copied);
    Ok(units)
}

/// A string argument that may be left out (`undefined` or `null`).
pub fn optional_string(value: Option<Unknown>, name: &str) -> Result<Option<String>, HootError> {
    match value {
        None => Ok(None),
        Some(v) => match type_of(&v)? {
            ValueType::Undefined | ValueType::Null => Ok(None),
            _ => string_value(&v, name).map(Some),
        },
    }
}

/// Copies a JS string into `buffer` as UTF-8 in one N-API call, with no allocation, and returns
/// the bytes copied. V8 stops short of a character that does not fit, so a copy is known to be the
/// whole string only when it ends at least 4 bytes before the buffer's last byte (its NUL).
pub fn copy_utf8<'b>(value: &Unknown, buffer: &'b mut [u8]) -> Result<&'b [u8], HootError> {
    let mut copied = 0usize;
    // SAFETY: `value` is a live string handle of its env; N-API writes at most `buffer.len()`
    // bytes (the NUL included) into `buffer` and the count into `copied`.
    let status = unsafe {
        napi::sys::napi_get_value_string_utf8(
            value.value().env,
            value.raw(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut copied,
        )
    };
    if status != napi::sys::Status::napi_ok {
        return Err(HootError::Internal(format!("N-API could not read a string (status {status})")));
    }
    Ok(&buffer[..copied])
}

/// A JS string of up to 250 UTF-8 bytes (ids, paths) in one N-API call instead of two (length,
/// then copy); `None` when it may be longer.
fn short_string(value: &Unknown) -> Option<String> {
    let mut buffer = [0u8; 256];
    let bytes = copy_utf8(value, &mut buffer).ok()?;
    (bytes.len() + 5 < 256).then(|| String::from_utf8(bytes.to_vec()).ok()).flatten()
}

/// An options argument: `undefined` or `null` means none given; anything but a plain object is a
/// `TypeError`.
fn options_object<'a>(value: Option<Unknown<'a>>, name: &str) -> Result<Option<Object<'a>>, HootError> {
    let Some(value) = value else { return Ok(None) };
    match type_of(&value)? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Object if !value.is_array().map_err(napi_failure)? => {
            // SAFETY: the value is an object.
            unsafe { value.cast::<Object>() }.map(Some).map_err(napi_failure)
        }
        _ => Err(HootError::arg_type(name, "of type object", describe(&value))),
    }
}

/// Reads the properties of one options object; `undefined` properties are absent.
pub struct Props<'a> {
    object: Option<Object<'a>>,
    name: &'static str,
}

impl<'a> Props<'a> {
    /// The options argument `value`, called `name` in messages (`opts`).
    pub fn new(value: Option<Unknown<'a>>, name: &'static str) -> Result<Self, HootError> {
        Ok(Props { object: options_object(value, name)?, name })
    }

    /// The property `key` with its name for messages (`opts.key`), unless absent or `undefined`.
    pub fn get(&self, key: &str) -> Result<Option<(Unknown<'a>, String)>, HootError> {
        let Some(object) = &self.object else { return Ok(None) };
        let value: Option<Unknown> = object.get(key).map_err(napi_failure)?;
        match value {
            Some(v) if type_of(&v)? != ValueType::Undefined => Ok(Some((v, format!("{}.{key}", self.name)))),
            _ => Ok(None),
        }
    }

    /// A string property.
    pub fn string(&self, key: &str) -> Result<Option<String>, HootError> {
        self.get(key)?.map(|(v, name)| string_value(&v, &name)).transpose()
    }

    /// A string property read as a path.
    pub fn path(&self, key: &str) -> Result<Option<PathBuf>, HootError> {
        Ok(self.string(key)?.map(PathBuf::from))
    }

    /// A number property.
    pub fn number(&self, key: &str) -> Result<Option<f64>, HootError> {
        self.get(key)?
            .map(|(v, name)| match type_of(&v)? {
                // SAFETY: the value is a number.
                ValueType::Number => unsafe { v.cast::<f64>() }.map_err(napi_failure),
                _ => Err(HootError::arg_type(name, "of type number", describe(&v))),
            })
            .transpose()
    }

    /// A boolean property.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, HootError> {
        self.get(key)?
            .map(|(v, name)| match type_of(&v)? {
                // SAFETY: the value is a boolean.
                ValueType::Boolean => unsafe { v.cast::<bool>() }.map_err(napi_failure),
                _ => Err(HootError::arg_type(name, "of type boolean", describe(&v))),
            })
            .transpose()
    }

    /// An object or array converted to JSON. napi's conversion writes a lone surrogate in a string
    /// as U+FFFD and leaves out a member whose key holds one, so V8's `JSON.stringify`, which
    /// writes it as an escape, is asked too and the core refuses what it wrote. (Options are read
    /// once per call and are small; this costs about a microsecond.)
    fn json(v: &Unknown, name: &str) -> Result<Value, HootError> {
        // SAFETY: the caller checked that the value is an object or an array.
        let value = unsafe { v.cast::<Value>() }.map_err(|e| HootError::not_json(name, e.reason))?;
        let env = Env::from_raw(v.value().env);
        let text = stringify(&env, *v).map_err(|reason| HootError::not_json(name, reason))?;
        text::from_js_json(name, &text)?;
        Ok(value)
    }

    /// A JSON object, or (when `or_string`) a string of JSON text, which the core parses.
    pub fn json_object(&self, key: &str, or_string: bool) -> Result<Option<Value>, HootError> {
        let Some((v, name)) = self.get(key)? else { return Ok(None) };
        match type_of(&v)? {
            ValueType::String if or_string => Ok(Some(Value::String(string_value(&v, &name)?))),
            ValueType::Object if !v.is_array().map_err(napi_failure)? => Ok(Some(Self::json(&v, &name)?)),
            _ => Err(HootError::arg_type(
                name,
                if or_string { "of type object or string" } else { "of type object" },
                describe(&v),
            )),
        }
    }

    /// An array of strings.
    pub fn string_array(&self, key: &str) -> Result<Option<Vec<String>>, HootError> {
        let Some((v, name)) = self.get(key)? else { return Ok(None) };
        let expected = "an array of strings";
        if type_of(&v)? != ValueType::Object || !v.is_array().map_err(napi_failure)? {
            return Err(HootError::arg_type(name, expected, describe(&v)));
        }
        match Self::json(&v, &name)? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(HootError::arg_type(name.clone(), expected, format!("an array holding {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            _ => Err(HootError::arg_type(name, expected, describe(&v))),
        }
    }
}

fn json_function<'e>(env: &'e Env, name: &str) -> Result<Function<'e, Unknown<'e>, Unknown<'e>>, HootError> {
    let global = env.get_global().map_err(napi_failure)?;
    let json: Object = global.get_named_property("JSON").map_err(napi_failure)?;
    json.get_named_property(name).map_err(napi_failure)
}

/// `JSON.stringify(value)`: its text (empty when it returns `undefined`, as for an object whose
/// `toJSON` does), or why it threw (a cycle, a BigInt, a throwing `toJSON`).
fn stringify(env: &Env, value: Unknown) -> Result<String, String> {
    let text = match json_function(env, "stringify").map_err(|e| e.to_string())?.call(value) {
        Ok(text) => text,
        // napi usually hands the thrown error back in `e`; if it is still pending, take it.
        Err(e) => return Err(take_pending_exception(env).map_or(e.reason, |pending| pending.reason)),
    };
    match type_of(&text).map_err(|e| e.to_string())? {
        // SAFETY: the value is a string.
        ValueType::String => unsafe { text.cast::<String>() }.map_err(|e| e.reason),
        _ => Ok(String::new()),
    }
}

/// A value to store as a JSON object, serialised by V8's own `JSON.stringify` (so the text is byte
/// for byte what Hoot's `JSON.stringify(value)` stored) and checked by the core.
pub fn json_object_arg(env: &Env, value: Unknown, name: &str) -> Result<JsonObject, HootError> {
    let kind = match type_of(&value)? {
        ValueType::Object if !value.is_array().map_err(napi_failure)? => ValueKind::Object,
        ValueType::Undefined | ValueType::Function | ValueType::Symbol | ValueType::BigInt => ValueKind::NotJson,
        _ => ValueKind::OtherJson,
    };
    JsonObject::check_kind(kind, name, &describe(&value))?;
    let text = stringify(env, value).map_err(|reason| JsonObject::unserialisable(name, &reason))?;
    JsonObject::new(text, name)
}
