//! Where a unit is in its life ([`Phase`]) and what can be asked of it
//! ([`Job`]): the words the state machine, its events and the socket and
//! notify rules share. A leaf, so none of them imports another in a
//! circle.

use slipway_control::ActiveState;

/// Where a unit is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Dead,
    /// Its conditions did not hold: skipped, not a failure.
    Condition,
    StartPre,
    Start,
    StartPost,
    Running,
    /// The main process exited and `RemainAfterExit=yes` (or a oneshot).
    Exited,
    Stop,
    StopSigterm,
    StopSigkill,
    StopPost,
    AutoRestart,
    Failed,
}

impl Phase {
    pub fn sub(self) -> &'static str {
        match self {
            Phase::Dead => "dead",
            Phase::Condition => "condition-failed",
            Phase::StartPre => "start-pre",
            Phase::Start => "start",
            Phase::StartPost => "start-post",
            Phase::Running => "running",
            Phase::Exited => "exited",
            Phase::Stop => "stop",
            Phase::StopSigterm => "stop-sigterm",
            Phase::StopSigkill => "stop-sigkill",
            Phase::StopPost => "stop-post",
            Phase::AutoRestart => "auto-restart",
            Phase::Failed => "failed",
        }
    }

    pub fn active(self) -> ActiveState {
        match self {
            Phase::Dead | Phase::Condition => ActiveState::Inactive,
            Phase::StartPre | Phase::Start | Phase::StartPost | Phase::AutoRestart => {
                ActiveState::Activating
            }
            Phase::Running | Phase::Exited => ActiveState::Active,
            Phase::Stop | Phase::StopSigterm | Phase::StopSigkill | Phase::StopPost => {
                ActiveState::Deactivating
            }
            Phase::Failed => ActiveState::Failed,
        }
    }

    pub fn starting(self) -> bool {
        matches!(self, Phase::StartPre | Phase::Start | Phase::StartPost)
    }

    pub fn stopping(self) -> bool {
        matches!(
            self,
            Phase::Stop | Phase::StopSigterm | Phase::StopSigkill | Phase::StopPost
        )
    }
}

/// A queued request for a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Start,
    Stop,
    Restart,
}
