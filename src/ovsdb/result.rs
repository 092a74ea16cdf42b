//! Checking the result of a `transact`: where OVSDB reports that a transaction failed.
//!
//! The JSON-RPC `error` of a transact reply is null even when the transaction failed. The
//! failure is one element of `result`, an object `{"error": .., "details": ..}`:
//!
//! * at the index of the operation that failed (a `wait` that "timed out", an `abort`, a
//!   "syntax error", an update of an immutable column...); the elements after it are `null`;
//! * or, when every operation succeeded but the commit did not, as one extra element after the
//!   last operation: duplicate values in an index ("constraint violation", e.g. a second Bridge
//!   named like an existing one) and dangling references ("referential integrity violation").
//!
//! Missing this check makes a failed transaction look successful, so every element is checked
//! and the failure becomes a typed [`TransactError`] that callers can `downcast_ref` to.

use std::fmt;

use anyhow::{bail, Result};
use serde_json::Value;

use super::ops::op_name;

/// Error string for a violated index or column constraint (e.g. a duplicate Bridge name). Often
/// means another writer got there first: re-read and retry.
pub const CONSTRAINT_VIOLATION: &str = "constraint violation";
/// Error string for a reference to a missing row, or a delete of a still-referenced row.
pub const REFERENTIAL_INTEGRITY_VIOLATION: &str = "referential integrity violation";
/// Error string of a `wait` operation whose timeout expired.
pub const TIMED_OUT: &str = "timed out";
/// Error string of an `abort` operation.
pub const ABORTED: &str = "aborted";

/// A transaction that ovsdb-server refused, as reported in one element of the `result` array.
///
/// Kept typed (and an [`std::error::Error`]) so callers can tell retryable failures apart:
/// `err.downcast_ref::<TransactError>()` and then [`TransactError::is`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactError {
    /// Index of the failed element in `result`: the operation's index, or the number of
    /// operations for a commit-time failure.
    pub index: usize,
    /// Name of the failed operation (`"insert"`, `"wait"`...), or `"commit"` for a commit-time
    /// failure.
    pub op: String,
    /// Whether the failure came at commit (the extra element after the last operation) rather
    /// than from one operation.
    pub at_commit: bool,
    /// The error string from the server, e.g. `"constraint violation"` or `"timed out"`; see
    /// the constants of this module.
    pub error: String,
    /// The server's human-readable explanation, when it gave one.
    pub details: Option<String>,
}

impl TransactError {
    /// Whether the server's error string is `error` (e.g. [`CONSTRAINT_VIOLATION`]).
    pub fn is(&self, error: &str) -> bool {
        self.error == error
    }
}

impl fmt::Display for TransactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at_commit {
            write!(f, "OVSDB transaction failed at commit: {}", self.error)?;
        } else {
            write!(
                f,
                "OVSDB operation {} ({}) failed: {}",
                self.index, self.op, self.error
            )?;
        }
        if let Some(details) = &self.details {
            write!(f, ": {details}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TransactError {}

/// Checks the `result` member of a transact reply against the operations sent, and returns one
/// result per operation. A failure reported by the server becomes a [`TransactError`] (inside
/// the `anyhow::Error`); a result that does not fit the protocol becomes a plain error.
pub fn check_transact_result(ops: &[Value], result: Value) -> Result<Vec<Value>> {
    let Value::Array(results) = result else {
        bail!("malformed transact reply from ovsdb-server: result is not an array: {result}");
    };
    for (index, element) in results.iter().enumerate() {
        if let Some(error) = element_error(index, ops, element) {
            return Err(error.into());
        }
    }
    if results.len() != ops.len() {
        bail!(
            "malformed transact reply from ovsdb-server: {} results for {} operations and no error",
            results.len(),
            ops.len()
        );
    }
    if let Some(index) = results.iter().position(|r| !r.is_object()) {
        bail!(
            "malformed transact reply from ovsdb-server: result {index} ({}) is {} and no error",
            op_name(&ops[index]),
            results[index]
        );
    }
    Ok(results)
}

/// The failure reported by one element of `result`, if it reports one.
fn element_error(index: usize, ops: &[Value], element: &Value) -> Option<TransactError> {
    let error = element.get("error")?;
    if error.is_null() {
        return None;
    }
    let error = match error {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let details = match element.get("details") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let (op, at_commit) = match ops.get(index) {
        Some(op) => (op_name(op).to_string(), false),
        None => ("commit".to_string(), true),
    };
    Some(TransactError {
        index,
        op,
        at_commit,
        error,
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"op": n, "table": "T"}))
            .collect()
    }

    fn transact_error(result: Result<Vec<Value>>) -> TransactError {
        let err = result.expect_err("expected an error");
        err.downcast_ref::<TransactError>()
            .unwrap_or_else(|| panic!("not a TransactError: {err:#}"))
            .clone()
    }

    #[test]
    fn accepts_a_successful_result() {
        let results = check_transact_result(
            &ops(&["insert", "mutate", "comment"]),
            json!([{"uuid": ["uuid", "u"]}, {"count": 1}, {}]),
        )
        .unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[1], json!({"count": 1}));
        // `"error": null` in an element is not a failure.
        assert!(
            check_transact_result(&ops(&["select"]), json!([{"rows": [], "error": null}])).is_ok()
        );
        assert!(check_transact_result(&[], json!([])).unwrap().is_empty());
    }

    #[test]
    fn reports_a_failed_operation() {
        // As ovsdb-server 3.1 answers a wait that expired.
        let err = transact_error(check_transact_result(
            &ops(&["wait"]),
            json!([{"details": "\"wait\" timed out after 200 ms", "error": "timed out"}]),
        ));
        assert_eq!(
            err,
            TransactError {
                index: 0,
                op: "wait".into(),
                at_commit: false,
                error: TIMED_OUT.into(),
                details: Some("\"wait\" timed out after 200 ms".into()),
            }
        );
        assert!(err.is(TIMED_OUT));
        assert_eq!(
            err.to_string(),
            "OVSDB operation 0 (wait) failed: timed out: \"wait\" timed out after 200 ms"
        );

        // A failure in the middle: the later elements are null.
        let err = transact_error(check_transact_result(
            &ops(&["select", "update", "comment"]),
            json!([{"rows": []}, {"error": "constraint violation",
                   "details": "Cannot update immutable column name in table Bridge."}, null]),
        ));
        assert_eq!(
            (err.index, err.op.as_str(), err.at_commit),
            (1, "update", false)
        );
        assert!(err.is(CONSTRAINT_VIOLATION));
    }

    #[test]
    fn reports_a_commit_time_failure() {
        // As ovsdb-server 3.1 answers a duplicate Bridge name: every op succeeded, then one
        // extra element.
        let err = transact_error(check_transact_result(
            &ops(&["insert", "insert", "mutate"]),
            json!([{"uuid": ["uuid", "a"]}, {"uuid": ["uuid", "b"]}, {"count": 1},
                   {"details": "Transaction causes multiple rows in \"Bridge\" table to have identical values (br0) for index on column \"name\".",
                    "error": "constraint violation"}]),
        ));
        assert_eq!(
            (err.index, err.op.as_str(), err.at_commit),
            (3, "commit", true)
        );
        assert!(err.is(CONSTRAINT_VIOLATION));
        assert!(err.to_string().starts_with(
            "OVSDB transaction failed at commit: constraint violation: Transaction causes"
        ));
    }

    #[test]
    fn tolerates_odd_error_members() {
        let err = transact_error(check_transact_result(
            &ops(&["insert"]),
            json!([{"error": {"code": 1}, "details": 7}]),
        ));
        assert_eq!(err.error, "{\"code\":1}");
        assert_eq!(err.details.as_deref(), Some("7"));
        let err = transact_error(check_transact_result(
            &ops(&["insert"]),
            json!([{"error": "x"}]),
        ));
        assert_eq!(err.details, None);
        assert_eq!(err.to_string(), "OVSDB operation 0 (insert) failed: x");
    }

    #[test]
    fn rejects_malformed_results() {
        for (names, result) in [
            // Fewer results than operations, and no error to explain it.
            (vec!["insert", "insert"], json!([{"uuid": ["uuid", "a"]}])),
            // More results without an error.
            (vec!["insert"], json!([{}, {}])),
            // A null without a preceding error.
            (vec!["insert", "comment"], json!([{}, null])),
            (vec!["insert"], json!(["x"])),
            (vec!["insert"], json!({"uuid": 1})),
            (vec!["insert"], json!(null)),
        ] {
            let err = check_transact_result(&ops(&names), result.clone()).expect_err("error");
            assert!(err.downcast_ref::<TransactError>().is_none(), "{result}");
            assert!(err.to_string().contains("malformed"), "{err}");
        }
    }

    #[test]
    fn downcasts_through_context() {
        use anyhow::Context;
        let err = check_transact_result(&ops(&["wait"]), json!([{"error": "timed out"}]))
            .context("waiting for ovs-vswitchd")
            .expect_err("error");
        assert!(err
            .downcast_ref::<TransactError>()
            .is_some_and(|e| e.is(TIMED_OUT)));
    }
}
