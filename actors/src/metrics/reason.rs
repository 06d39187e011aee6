//! Why a worker slot was restarted, as a label: [`RestartReason`].

use crate::KillReason;

/// Why the pool restarted a worker slot, for
/// [`Metrics::restarts`](crate::Metrics::restarts) and the
/// `lpm_restarts_total{reason=...}` counter.
///
/// Each displays and serializes as its snake_case name ([`RestartReason::as_str`]).
/// The kinds of [`KillReason`] keep their own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RestartReason {
    /// The worker exited with status 0 without being asked to: `"exited"`.
    Exited,
    /// The worker exited with another status or died of a signal: `"crashed"`.
    Crashed,
    /// The pool killed it: [`KillReason::ProtocolViolation`], `"protocol_violation"`.
    ProtocolViolation,
    /// The pool killed it: [`KillReason::ChannelFailed`], `"channel_failed"`.
    ChannelFailed,
    /// The pool killed it: [`KillReason::CodecMismatch`], `"codec_mismatch"`.
    CodecMismatch,
    /// The pool killed it: [`KillReason::NoHandshake`], `"no_handshake"`.
    NoHandshake,
    /// The pool killed it: [`KillReason::Unresponsive`], `"unresponsive"`.
    Unresponsive,
    /// The pool killed it: [`KillReason::RequestTimedOut`], `"request_timed_out"`.
    RequestTimedOut,
    /// Its process could not be started (the program is missing, say): `"spawn_failed"`.
    SpawnFailed,
}

impl RestartReason {
    /// Every reason, in declaration order (`ALL[reason as usize] == reason`).
    pub const ALL: [RestartReason; 9] = [
        RestartReason::Exited,
        RestartReason::Crashed,
        RestartReason::ProtocolViolation,
        RestartReason::ChannelFailed,
        RestartReason::CodecMismatch,
        RestartReason::NoHandshake,
        RestartReason::Unresponsive,
        RestartReason::RequestTimedOut,
        RestartReason::SpawnFailed,
    ];

    /// The reason's snake_case name, e.g. `"crashed"`: stable across
    /// releases, for metric labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            RestartReason::Exited => "exited",
            RestartReason::Crashed => "crashed",
            RestartReason::ProtocolViolation => "protocol_violation",
            RestartReason::ChannelFailed => "channel_failed",
            RestartReason::CodecMismatch => "codec_mismatch",
            RestartReason::NoHandshake => "no_handshake",
            RestartReason::Unresponsive => "unresponsive",
            RestartReason::RequestTimedOut => "request_timed_out",
            RestartReason::SpawnFailed => "spawn_failed",
        }
    }

    /// Why a worker that exited with `code` (`None`: by a signal) is gone:
    /// the pool's reason if it killed the worker, else how it exited.
    pub(crate) fn after_exit(killed_for: Option<&KillReason>, code: Option<i32>) -> Self {
        match (killed_for, code) {
            (Some(reason), _) => reason.into(),
            (None, Some(0)) => RestartReason::Exited,
            (None, _) => RestartReason::Crashed,
        }
    }
}

impl From<&KillReason> for RestartReason {
    fn from(reason: &KillReason) -> Self {
        match reason {
            KillReason::ProtocolViolation(_) => RestartReason::ProtocolViolation,
            KillReason::ChannelFailed(_) => RestartReason::ChannelFailed,
            KillReason::CodecMismatch { .. } => RestartReason::CodecMismatch,
            KillReason::NoHandshake { .. } => RestartReason::NoHandshake,
            KillReason::Unresponsive { .. } => RestartReason::Unresponsive,
            KillReason::RequestTimedOut { .. } => RestartReason::RequestTimedOut,
        }
    }
}

impl std::fmt::Display for RestartReason {
    /// Writes [`RestartReason::as_str`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_names_are_distinct_snake_case() {
        let mut names = std::collections::HashSet::new();
        for (i, reason) in RestartReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i);
            assert!(names.insert(reason.as_str()));
            assert_eq!(reason.to_string(), reason.as_str());
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(reason.as_str())
            );
        }
    }

    #[test]
    fn a_kill_reason_names_the_restart_and_otherwise_the_exit_does() {
        let killed = KillReason::Unresponsive {
            silent_for: Duration::from_secs(1),
        };
        assert_eq!(
            RestartReason::after_exit(Some(&killed), None),
            RestartReason::Unresponsive
        );
        assert_eq!(
            RestartReason::after_exit(None, Some(0)),
            RestartReason::Exited
        );
        assert_eq!(
            RestartReason::after_exit(None, Some(3)),
            RestartReason::Crashed
        );
        assert_eq!(
            RestartReason::after_exit(None, None),
            RestartReason::Crashed
        );
        // A kill reason's kind keeps its serialized name.
        let kind = serde_json::to_value(&killed).unwrap()["kind"].clone();
        assert_eq!(
            kind,
            serde_json::json!(RestartReason::Unresponsive.as_str())
        );
    }
}
