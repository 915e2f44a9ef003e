//! get, put and delete of one key, for poking at a node.
//!
//! Owns their requests and reports, and reading a put's value. Invariants:
//! values travel byte for byte (a value file or stdin is read raw; output
//! is shown by [`super::value`]); a get shows every stored version with
//! its vector clock (in the form `--clock` takes); a write with `--clock`
//! carries that clock unchanged (the node applies it by dominance, as a
//! coordinator's write), a write without it is blind (the node stamps a
//! clock descending every stored version).

use super::call::{self, NodeCalls};
use super::clock::{clock_json, show_clock};
use super::error::AdminError;
use super::output::Report;
use super::value::{show_value, value_json};
use crate::proto;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::Path;

/// The value of a put: the argument's UTF-8 bytes, or a file's (or
/// stdin's, for "-") bytes.
pub fn read_value(value: Option<&str>, file: Option<&Path>) -> Result<Bytes, AdminError> {
    if let Some(v) = value {
        return Ok(Bytes::copy_from_slice(v.as_bytes()));
    }
    let Some(path) = file else {
        return Err(AdminError::Usage {
            cause: "put needs a VALUE or --value-file".into(),
        });
    };
    let mut buf = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf))
    };
    read.map_err(|e| AdminError::Usage {
        cause: format!("cannot read the value from {}: {e}", path.display()),
    })?;
    Ok(Bytes::from(buf))
}

fn version_json(v: &proto::KeyValueEntry) -> Value {
    let mut obj = Map::new();
    value_json(&v.value, &mut obj);
    obj.insert("clock".into(), clock_json(v.vector_clock.as_ref()));
    obj.insert("timestamp_ms".into(), v.timestamp.into());
    obj.insert("tombstone".into(), v.is_tombstone.into());
    Value::Object(obj)
}

pub async fn get(calls: &NodeCalls, tenant: &str, key: &str) -> Result<Report, AdminError> {
    let req = proto::ReadRequest {
        tenant_id: tenant.to_string(),
        key: key.to_string(),
    };
    let r: proto::ReadResponse = calls.unary(call::READ, &req).await?;
    let mut text = String::new();
    if r.success {
        text.push_str(&format!("value: {}\n", show_value(&r.value)));
        text.push_str(&format!("timestamp_ms: {}\n", r.timestamp));
    }
    text.push_str(&format!("clock: {}\n", show_clock(r.vector_clock.as_ref())));
    if !r.versions.is_empty() {
        text.push_str(&format!("versions: {}\n", r.versions.len()));
        for (i, v) in r.versions.iter().enumerate() {
            let shown = if v.is_tombstone {
                "(tombstone)".to_string()
            } else {
                show_value(&v.value)
            };
            text.push_str(&format!(
                "  [{}] clock {}  timestamp_ms {}  {shown}\n",
                i + 1,
                show_clock(v.vector_clock.as_ref()),
                v.timestamp
            ));
        }
    }
    let mut obj = Map::new();
    obj.insert("ok".into(), r.success.into());
    obj.insert("node".into(), calls.node().into());
    obj.insert("tenant".into(), tenant.into());
    obj.insert("key".into(), key.into());
    if r.success {
        value_json(&r.value, &mut obj);
        obj.insert("timestamp_ms".into(), r.timestamp.into());
    }
    obj.insert("clock".into(), clock_json(r.vector_clock.as_ref()));
    obj.insert(
        "clock_arg".into(),
        show_clock(r.vector_clock.as_ref()).into(),
    );
    obj.insert(
        "versions".into(),
        r.versions
            .iter()
            .map(version_json)
            .collect::<Vec<_>>()
            .into(),
    );
    let json = Value::Object(obj);
    Ok(if r.success {
        Report::ok(text, json)
    } else {
        Report::failed(text, json, calls.body_error(r.error_code, &r.error_message))
    })
}

fn written(
    calls: &NodeCalls,
    what: &str,
    success: bool,
    clock: Option<&proto::VectorClock>,
    code: i32,
    message: &str,
) -> Report {
    let shown = show_clock(clock);
    let text = if success {
        format!("{}: {what}, clock {shown}\n", calls.node())
    } else {
        String::new()
    };
    let json = json!({
        "ok": success,
        "node": calls.node(),
        "clock": clock_json(clock),
        "clock_arg": shown,
    });
    if success {
        Report::ok(text, json)
    } else {
        Report::failed(text, json, calls.body_error(code, message))
    }
}

pub async fn put(
    calls: &NodeCalls,
    tenant: &str,
    key: &str,
    value: Bytes,
    clock: Option<proto::VectorClock>,
) -> Result<Report, AdminError> {
    let req = proto::WriteRequest {
        tenant_id: tenant.to_string(),
        key: key.to_string(),
        value,
        vector_clock: clock,
        idempotency_key: String::new(),
    };
    let r: proto::WriteResponse = calls.unary(call::WRITE, &req).await?;
    Ok(written(
        calls,
        "written",
        r.success,
        r.updated_vector_clock.as_ref(),
        r.error_code,
        &r.error_message,
    ))
}

pub async fn delete(
    calls: &NodeCalls,
    tenant: &str,
    key: &str,
    clock: Option<proto::VectorClock>,
) -> Result<Report, AdminError> {
    let req = proto::DeleteRequest {
        tenant_id: tenant.to_string(),
        key: key.to_string(),
        vector_clock: clock,
        idempotency_key: String::new(),
    };
    let r: proto::DeleteResponse = calls.unary(call::DELETE, &req).await?;
    Ok(written(
        calls,
        "deleted",
        r.success,
        r.updated_vector_clock.as_ref(),
        r.error_code,
        &r.error_message,
    ))
}
