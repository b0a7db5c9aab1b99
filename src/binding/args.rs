//! Reading JavaScript arguments: strings, option objects and JSON values, with Node's wording for
//! a value of the wrong type. Whether a value of the right type is acceptable is the core's rule.

use std::path::PathBuf;

use napi::bindgen_prelude::{Function, JsObjectValue, Object};
use napi::{Env, JsValue, Unknown, ValueType};
use serde_json::Value;

use super::{napi_failure, take_pending_exception};
use crate::error::HootError;
use crate::store::{JsonObject, ValueKind};

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

/// A string argument; anything else is a `TypeError` naming `name`.
pub fn string_value(value: &Unknown, name: &str) -> Result<String, HootError> {
    match type_of(value)? {
        ValueType::String => match short_string(value) {
            Some(short) => Ok(short),
            // SAFETY: the value is a string.
            None => unsafe { value.cast::<String>() }.map_err(napi_failure),
        },
        _ => Err(HootError::arg_type(name, "of type string", describe(value))),
    }
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

    /// An object or array converted to JSON.
    fn json(v: &Unknown, name: &str) -> Result<Value, HootError> {
        // SAFETY: the caller checked that the value is an object or an array.
        unsafe { v.cast::<Value>() }.map_err(|e| HootError::not_json(name, e.reason))
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

/// A value to store as a JSON object, serialised by V8's own `JSON.stringify` (so the text is byte
/// for byte what Hoot's `JSON.stringify(value)` stored) and checked by the core.
pub fn json_object_arg(env: &Env, value: Unknown, name: &str) -> Result<JsonObject, HootError> {
    let kind = match type_of(&value)? {
        ValueType::Object if !value.is_array().map_err(napi_failure)? => ValueKind::Object,
        ValueType::Undefined | ValueType::Function | ValueType::Symbol | ValueType::BigInt => ValueKind::NotJson,
        _ => ValueKind::OtherJson,
    };
    JsonObject::check_kind(kind, name, &describe(&value))?;
    let text = match json_function(env, "stringify")?.call(value) {
        Ok(text) => text,
        Err(e) => {
            // napi usually hands the thrown error back in `e`; if it is still pending, take it.
            let reason = take_pending_exception(env).map_or(e.reason, |pending| pending.reason);
            return Err(JsonObject::unserialisable(name, &reason));
        }
    };
    // `JSON.stringify` returns `undefined` for an object whose `toJSON` does: not storable.
    let text = match type_of(&text)? {
        // SAFETY: the value is a string.
        ValueType::String => unsafe { text.cast::<String>() }.map_err(napi_failure)?,
        _ => String::new(),
    };
    JsonObject::new(text, name)
}
