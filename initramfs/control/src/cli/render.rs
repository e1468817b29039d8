//! The text `status` prints: pure functions of the status, for tests.

use slipway_control::{ActiveState, SystemStatus, UnitStatus};

const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[1;32m";
const RESET: &str = "\x1b[0m";

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("{code}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(len)))
}

/// The unit table (`systemctl list-units`), the health line and the
/// count. Failed units are marked `●`; in colour they are red, without
/// colour their ACTIVE column says `FAILED`.
pub fn status_table(status: &SystemStatus, color: bool) -> Vec<String> {
    let mut units: Vec<&UnitStatus> = status.units.iter().collect();
    units.sort_by(|a, b| a.name.cmp(&b.name));
    let header = [
        "UNIT",
        "LOAD",
        "ACTIVE",
        "SUB",
        "ENABLED",
        "RESTARTS",
        "DESCRIPTION",
    ];
    let rows: Vec<[String; 7]> = units
        .iter()
        .map(|u| {
            let failed = u.active == ActiveState::Failed;
            [
                u.name.clone(),
                u.load.clone(),
                if failed && !color {
                    "FAILED".to_owned()
                } else {
                    u.active.as_str().to_owned()
                },
                u.sub.clone(),
                if u.enabled { "enabled" } else { "disabled" }.to_owned(),
                u.restarts.to_string(),
                u.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 6 {
                text.push_str(cell);
            } else {
                text.push_str(&pad(cell, w));
                text.push(' ');
            }
        }
        text.trim_end().to_owned()
    };
    let mut out = vec![format!("  {}", line(header))];
    let mut failed = 0;
    for (u, row) in units.iter().zip(&rows) {
        let text = line([
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6],
        ]);
        if u.active == ActiveState::Failed {
            failed += 1;
            out.push(paint(&format!("● {text}"), RED, color));
        } else {
            out.push(format!("  {text}"));
        }
    }
    out.push(String::new());
    out.push(health_line(status, color));
    let n = units.len();
    out.push(format!(
        "{n} unit{} listed, {failed} failed.",
        if n == 1 { "" } else { "s" }
    ));
    out
}

fn health_line(status: &SystemStatus, color: bool) -> String {
    let word = status.health.as_str();
    let word = match status.health {
        slipway_control::Health::Healthy => paint(word, GREEN, color),
        slipway_control::Health::Unhealthy => paint(word, RED, color),
        slipway_control::Health::Starting => word.to_owned(),
    };
    match &status.health_detail {
        Some(detail) => format!("health: {word}: {detail}"),
        None => format!("health: {word}"),
    }
}

/// One unit, like `systemctl status UNIT` (without the log lines).
/// `uptime_ms` is the status's boot clock, to say how long ago `since_ms` was.
pub fn unit_block(u: &UnitStatus, uptime_ms: u64, color: bool) -> Vec<String> {
    let dot = match u.active {
        ActiveState::Failed => paint("●", RED, color),
        ActiveState::Active => paint("●", GREEN, color),
        _ => "●".to_owned(),
    };
    let mut out = vec![match &u.description {
        Some(d) => format!("{dot} {} - {d}", u.name),
        None => format!("{dot} {}", u.name),
    }];
    let mut field = |label: &str, value: String| out.push(format!("{label:>12}: {value}"));
    field(
        "Loaded",
        format!(
            "{} ({})",
            u.load,
            if u.enabled { "enabled" } else { "disabled" }
        ),
    );
    let state = format!("{} ({})", u.active, u.sub);
    let state = match u.active {
        ActiveState::Failed => paint(&state, RED, color),
        ActiveState::Active => paint(&state, GREEN, color),
        _ => state,
    };
    let ago = uptime_ms.saturating_sub(u.since_ms);
    field("Active", format!("{state} since {}", duration(ago)));
    if let Some(pid) = u.main_pid {
        field("Main PID", pid.to_string());
    }
    // What a Type=notify service last said (STATUS=), as systemctl shows it.
    if let Some(text) = &u.status_text {
        field("Status", format!("\"{text}\""));
    }
    field("Restarts", u.restarts.to_string());
    if let Some(bytes) = u.memory_bytes {
        field("Memory", size(bytes));
    }
    if let Some(tasks) = u.tasks {
        field("Tasks", tasks.to_string());
    }
    if let Some(result) = &u.result {
        if u.active == ActiveState::Failed {
            field("Result", paint(result, RED, color));
        } else {
            field("Last failure", result.clone());
        }
    }
    if let Some(log) = &u.log {
        field("Log", log.clone());
    }
    out
}

/// `12 s`, `4 min 3 s`, `2 h 5 min`, `3 d 4 h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// Bytes as `systemctl` shows memory: `512B`, `4.4M`, `1.2G`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_control::Health;

    fn unit(name: &str, active: ActiveState, sub: &str) -> UnitStatus {
        UnitStatus {
            name: name.into(),
            description: None,
            load: "loaded".into(),
            enabled: true,
            active,
            sub: sub.into(),
            main_pid: None,
            since_ms: 0,
            restarts: 0,
            result: None,
            memory_bytes: None,
            tasks: None,
            log: None,
            status_text: None,
        }
    }

    pub(crate) fn fixture() -> SystemStatus {
        let mut sshd = unit("sshd.service", ActiveState::Active, "running");
        sshd.description = Some("OpenSSH server".into());
        sshd.main_pid = Some(312);
        sshd.since_ms = 2_100;
        sshd.memory_bytes = Some(4_612_096);
        sshd.tasks = Some(1);
        sshd.log = Some("/var/log/services/sshd.service.log".into());
        let mut web = unit("web.service", ActiveState::Failed, "failed");
        web.description = Some("Web front end".into());
        web.restarts = 5;
        web.since_ms = 70_000;
        web.result = Some("exit status 1".into());
        let mut setup = unit("setup.service", ActiveState::Inactive, "dead");
        setup.enabled = false;
        setup.load = "not-found".into();
        SystemStatus {
            health: Health::Unhealthy,
            health_detail: Some("web.service failed".into()),
            uptime_ms: 81_234,
            units: vec![web, sshd, setup],
        }
    }

    #[test]
    fn table_without_colour() {
        let lines = status_table(&fixture(), false);
        let expected = [
            "  UNIT          LOAD      ACTIVE   SUB     ENABLED  RESTARTS DESCRIPTION",
            "  setup.service not-found inactive dead    disabled 0",
            "  sshd.service  loaded    active   running enabled  0        OpenSSH server",
            "● web.service   loaded    FAILED   failed  enabled  5        Web front end",
            "",
            "health: unhealthy: web.service failed",
            "3 units listed, 1 failed.",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn table_in_colour_and_healthy() {
        let mut status = fixture();
        status.units.truncate(1);
        let lines = status_table(&status, true);
        assert_eq!(
            lines[1],
            "\x1b[1;31m● web.service loaded failed failed enabled 5        Web front end\x1b[0m"
        );
        status.units.clear();
        status.health = Health::Healthy;
        status.health_detail = None;
        let lines = status_table(&status, false);
        assert_eq!(
            lines,
            [
                "  UNIT LOAD ACTIVE SUB ENABLED RESTARTS DESCRIPTION",
                "",
                "health: healthy",
                "0 units listed, 0 failed.",
            ]
        );
    }

    #[test]
    fn unit_blocks() {
        let status = fixture();
        let sshd = &status.units[1];
        assert_eq!(
            unit_block(sshd, status.uptime_ms, false),
            [
                "● sshd.service - OpenSSH server",
                "      Loaded: loaded (enabled)",
                "      Active: active (running) since 1 min 19 s",
                "    Main PID: 312",
                "    Restarts: 0",
                "      Memory: 4.4M",
                "       Tasks: 1",
                "         Log: /var/log/services/sshd.service.log",
            ]
        );
        let web = &status.units[0];
        assert_eq!(
            unit_block(web, status.uptime_ms, false),
            [
                "● web.service - Web front end",
                "      Loaded: loaded (enabled)",
                "      Active: failed (failed) since 11 s",
                "    Restarts: 5",
                "      Result: exit status 1",
            ]
        );
        let mut back = web.clone();
        back.active = ActiveState::Active;
        back.sub = "running".into();
        back.description = None;
        let lines = unit_block(&back, 0, false);
        assert_eq!(lines[0], "● web.service");
        assert!(lines.contains(&"      Active: active (running) since 0 s".to_owned()));
        assert!(lines.contains(&"Last failure: exit status 1".to_owned()));

        let mut docker = unit("docker.service", ActiveState::Active, "running");
        docker.main_pid = Some(700);
        docker.status_text = Some("Processing requests".into());
        assert_eq!(
            unit_block(&docker, 0, false)[3..5],
            [
                "    Main PID: 700".to_owned(),
                "      Status: \"Processing requests\"".to_owned()
            ]
        );
        let socket = unit("docker.socket", ActiveState::Active, "listening");
        assert_eq!(
            unit_block(&socket, 0, false)[2],
            "      Active: active (listening) since 0 s"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration(999), "0 s");
        assert_eq!(duration(59_999), "59 s");
        assert_eq!(duration(60_000), "1 min 0 s");
        assert_eq!(duration(7_500_000), "2 h 5 min");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
        assert_eq!(duration(u64::MAX), "213503982334 d 14 h");
        assert_eq!(size(512), "512B");
        assert_eq!(size(1024), "1.0K");
        assert_eq!(size(4_612_096), "4.4M");
        assert_eq!(size(3 << 30), "3.0G");
        assert_eq!(size(u64::MAX), "16384.0P");
    }
}
