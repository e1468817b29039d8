//! `runcmd` and `bootcmd` are never run by [`super::apply`]: they become
//! argv lists for the caller, which runs them (runcmd once per instance,
//! after applying; bootcmd at every boot, early). A string runs through
//! `/bin/sh -c`, a list is an argv as is; empty lists are dropped.

use crate::schema::{CloudConfig, Command, Run};

use super::ApplyOptions;

/// One command for the caller to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCommand {
    /// For logs: e.g. `runcmd[0] (line 12)`.
    pub step: String,
    pub argv: Vec<String>,
}

fn plan(key: &str, commands: &[Command]) -> Vec<PlannedCommand> {
    commands
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let argv = match &c.run {
                Run::Shell(s) => vec!["/bin/sh".to_string(), "-c".to_string(), s.clone()],
                Run::Argv(v) if v.is_empty() => return None,
                Run::Argv(v) => v.clone(),
            };
            let step = if c.line > 0 {
                format!("{key}[{i}] (line {})", c.line)
            } else {
                format!("{key}[{i}]")
            };
            Some(PlannedCommand { step, argv })
        })
        .collect()
}

/// The `runcmd` entries, in order.
pub fn commands_to_run(config: &CloudConfig, _opts: &ApplyOptions) -> Vec<PlannedCommand> {
    plan("runcmd", &config.runcmd)
}

/// The `bootcmd` entries, in order.
pub fn bootcmds(config: &CloudConfig) -> Vec<PlannedCommand> {
    plan("bootcmd", &config.bootcmd)
}
