//! The control socket (`/run/slipway/control.sock`) that `slipctl` talks
//! to: one JSON request per connection, one JSON answer (the protocol is
//! in the `slipway-control` crate). Only root can connect (mode 0600).
//!
//! Requests that start or stop something are answered when the job has
//! finished, as `systemctl` waits for its jobs; meanwhile the connection
//! waits in a list and PID 1 goes on with everything else.

use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use slipway_control::{read_message, write_message, Request, Response, SystemStatus};

use crate::power::PowerAction;
use crate::service::{boot_clock, millis, ActiveState, Job, Manager, UnitStatus};

/// How long, in all, the clients one wake of the PID 1 loop serves may
/// take to send their requests. PID 1 reads them on its own thread, so a
/// client sending a byte now and then must not hold it: this is a total
/// over every read, not a time-out per read (which such a client resets
/// with each byte). `slipctl` writes its request at once after
/// connecting, in microseconds; 2 s leaves room for a machine under load
/// and bounds what PID 1's other work (reaping, deadlines) can be held up.
/// Connections not served in time wait for the next wake.
const REQUEST_LIMIT: Duration = Duration::from_secs(2);
/// An answer not written within this, in all, is dropped.
const WRITE_LIMIT: Duration = Duration::from_secs(1);
/// A job not finished by then is answered as still running.
const JOB_ANSWER_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct Waiter {
    stream: UnixStream,
    unit: String,
    job: Job,
    since: Instant,
    /// What to say before the job's outcome (`enable --now`).
    prefix: Option<String>,
}

/// The listening socket and the clients waiting for their jobs.
#[derive(Debug)]
pub struct Control {
    pub listener: UnixListener,
    waiters: Vec<Waiter>,
}

impl Control {
    /// Binds the socket (replacing a stale one), owner-only.
    pub fn bind(path: &Path) -> Result<Control, String> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Control {
            listener,
            waiters: Vec::new(),
        })
    }

    /// Serves the connections that are waiting; returns a power request.
    pub fn accept(&mut self, manager: &mut Manager, shutting_down: bool) -> Option<PowerAction> {
        let mut power = None;
        // Bounded: a flood of connections, or slow ones, cannot keep PID 1
        // here; they all share one deadline for their requests.
        let requests_by = later(REQUEST_LIMIT);
        for _ in 0..16 {
            if Instant::now() >= requests_by {
                break;
            }
            let Ok((stream, _)) = self.listener.accept() else {
                break;
            };
            if let Some(a) = self.serve(stream, manager, shutting_down, requests_by) {
                power = Some(a);
            }
        }
        power
    }

    fn serve(
        &mut self,
        stream: UnixStream,
        manager: &mut Manager,
        shutting_down: bool,
        request_by: Instant,
    ) -> Option<PowerAction> {
        let _ = stream.set_nonblocking(false);
        let request: Request = {
            let mut reader = BufReader::new(Until {
                stream: &stream,
                deadline: request_by,
            });
            match read_message(&mut reader) {
                Ok(r) => r,
                Err(e) => {
                    reply(stream, &Response::err(format!("bad request: {e}")));
                    return None;
                }
            }
        };
        if shutting_down && !matches!(request, Request::Status { .. }) {
            reply(stream, &Response::err("the machine is shutting down"));
            return None;
        }
        let (response, power) = match request {
            Request::Status { unit } => (status_response(manager, unit.as_deref()), None),
            Request::Reboot => (Response::ok("rebooting"), Some(PowerAction::Reboot)),
            Request::Poweroff => (Response::ok("powering off"), Some(PowerAction::PowerOff)),
            Request::Start { unit } => return self.job(stream, manager, &unit, Job::Start, None),
            Request::Stop { unit } => return self.job(stream, manager, &unit, Job::Stop, None),
            Request::Restart { unit } => {
                return self.job(stream, manager, &unit, Job::Restart, None)
            }
            Request::Enable { unit, now } => match manager.enable(&unit) {
                Ok(msg) if now => return self.job(stream, manager, &unit, Job::Start, Some(msg)),
                Ok(msg) => (Response::ok(msg), None),
                Err(e) => (Response::err(e), None),
            },
            Request::Disable { unit, now } => match manager.disable(&unit) {
                Ok(msg) if now => return self.job(stream, manager, &unit, Job::Stop, Some(msg)),
                Ok(msg) => (Response::ok(msg), None),
                Err(e) => (Response::err(e), None),
            },
        };
        reply(stream, &response);
        power
    }

    fn job(
        &mut self,
        stream: UnixStream,
        manager: &mut Manager,
        unit: &str,
        job: Job,
        prefix: Option<String>,
    ) -> Option<PowerAction> {
        match manager.request(unit, job) {
            Ok(()) => self.waiters.push(Waiter {
                stream,
                unit: unit.to_string(),
                job,
                since: Instant::now(),
                prefix,
            }),
            Err(e) => reply(stream, &Response::err(e)),
        }
        self.answer_waiters(manager);
        None
    }

    /// Answers the clients whose job has finished (or waited too long).
    pub fn answer_waiters(&mut self, manager: &Manager) {
        let mut i = 0;
        while i < self.waiters.len() {
            let Some(w) = self.waiters.get(i) else {
                break;
            };
            let done = !manager.busy(&w.unit);
            let late = w.since.elapsed() >= JOB_ANSWER_LIMIT;
            if !(done || late) {
                i += 1;
                continue;
            }
            let w = self.waiters.swap_remove(i);
            let info = manager.unit_infos().into_iter().find(|u| u.name == w.unit);
            let mut response = if late && !done {
                Response::err(format!(
                    "{}: still in progress; see `slipctl status {}`",
                    w.unit, w.unit
                ))
            } else {
                job_outcome(&w.unit, w.job, info.as_ref())
            };
            if let Some(p) = w.prefix {
                response.message = Some(match response.message {
                    Some(m) => format!("{p}; {m}"),
                    None => p,
                });
            }
            reply(w.stream, &response);
        }
    }
}

fn reply(stream: UnixStream, response: &Response) {
    let mut out = Until {
        stream: &stream,
        deadline: later(WRITE_LIMIT),
    };
    let _ = write_message(&mut out, response);
}

/// `d` from now; now itself in the (theoretical) case the clock cannot
/// go that far, which only makes a deadline shorter.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or(now)
}

/// A client's stream whose reads and writes all end by one deadline:
/// each sets the socket's time-out to what is left of it, so a peer that
/// trickles a byte per call cannot stretch the exchange.
struct Until<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl Until<'_> {
    /// What is left before the deadline; an error once none is (a zero
    /// time-out would mean "none" to the socket).
    fn left(&self) -> io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(too_slow)
    }
}

fn too_slow() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the client was too slow")
}

/// A socket time-out shows as `EAGAIN`; said as what it is.
fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => too_slow(),
        _ => e,
    }
}

impl Read for Until<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        let mut s = self.stream;
        s.read(buf).map_err(timed_out)
    }
}

impl Write for Until<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        let mut s = self.stream;
        s.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a finished job tells the client.
fn job_outcome(unit: &str, job: Job, info: Option<&UnitStatus>) -> Response {
    let Some(info) = info else {
        return Response::err(format!("{unit}: unknown unit"));
    };
    match (job, info.active) {
        (Job::Stop, ActiveState::Inactive | ActiveState::Failed) => {
            Response::ok(format!("{unit}: stopped"))
        }
        (Job::Start | Job::Restart, ActiveState::Active) => {
            Response::ok(format!("{unit}: started ({})", info.sub))
        }
        (Job::Start | Job::Restart, ActiveState::Inactive) if info.sub == "condition-failed" => {
            Response::ok(format!("{unit}: not started, its conditions do not hold"))
        }
        (Job::Start | Job::Restart, ActiveState::Inactive) if info.result.is_none() => {
            Response::ok(format!("{unit}: ran and finished"))
        }
        (_, ActiveState::Activating) if info.sub == "auto-restart" => Response::err(format!(
            "{unit}: failed ({}), restarting",
            info.result.as_deref().unwrap_or("unknown")
        )),
        _ => Response::err(format!(
            "{unit}: {} ({}){}; see `slipctl logs {unit}`",
            info.active.as_str(),
            info.sub,
            info.result
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
    }
}

/// The whole status, or one unit's.
pub fn status_response(manager: &Manager, unit: Option<&str>) -> Response {
    let (health, detail) = manager.health();
    let mut units = manager.unit_infos();
    if let Some(name) = unit {
        // `slipctl status etcd2.service` shows etcd.service, its unit.
        let canonical = manager.canonical_name(name);
        units.retain(|u| u.name == canonical);
        if units.is_empty() {
            return Response::err(format!("{name}: unit not loaded"));
        }
    }
    Response::with_status(SystemStatus {
        health,
        health_detail: detail.map(str::to_string),
        uptime_ms: millis(boot_clock()),
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(active: ActiveState, sub: &str, result: Option<&str>) -> UnitStatus {
        UnitStatus {
            name: "web.service".into(),
            description: None,
            load: "loaded".into(),
            enabled: true,
            active,
            sub: sub.into(),
            main_pid: None,
            since_ms: 0,
            restarts: 0,
            result: result.map(str::to_string),
            memory_bytes: None,
            tasks: None,
            log: None,
            status_text: None,
        }
    }

    #[test]
    fn finished_jobs_say_what_happened() {
        let r = job_outcome(
            "web.service",
            Job::Start,
            Some(&info(ActiveState::Active, "running", None)),
        );
        assert_eq!(
            (r.ok, r.message.as_deref()),
            (true, Some("web.service: started (running)"))
        );
        let r = job_outcome(
            "web.service",
            Job::Start,
            Some(&info(ActiveState::Failed, "failed", Some("exit status 1"))),
        );
        assert!(!r.ok);
        assert_eq!(
            r.error.as_deref(),
            Some("web.service: failed (failed): exit status 1; see `slipctl logs web.service`")
        );
        let r = job_outcome(
            "web.service",
            Job::Restart,
            Some(&info(
                ActiveState::Activating,
                "auto-restart",
                Some("exit status 2"),
            )),
        );
        assert_eq!(
            r.error.as_deref(),
            Some("web.service: failed (exit status 2), restarting")
        );
        let r = job_outcome(
            "web.service",
            Job::Stop,
            Some(&info(ActiveState::Inactive, "dead", None)),
        );
        assert!(r.ok);
        let r = job_outcome(
            "web.service",
            Job::Start,
            Some(&info(ActiveState::Inactive, "condition-failed", None)),
        );
        assert_eq!(
            r.message.as_deref(),
            Some("web.service: not started, its conditions do not hold")
        );
        assert!(!job_outcome("x.service", Job::Start, None).ok);
    }

    /// A server on a real socket in a temporary folder, with a manager
    /// that has loaded nothing.
    fn server() -> (tempfile::TempDir, Control, Manager, std::path::PathBuf) {
        let root = crate::service::test_root::unit_root(&[]);
        let path = root.path().join("run/slipway/control.sock");
        let control = Control::bind(&path).unwrap();
        let cfg = crate::service::test_root::test_config(root.path());
        let manager = Manager::new(cfg, crate::units::Context::default());
        (root, control, manager, path)
    }

    /// Connects and sends `request` a byte every 300 ms, less than the
    /// old per-read time-out (500 ms), on another thread; the last byte,
    /// the newline, never comes.
    fn drip(path: &Path, request: &Request) -> UnixStream {
        let stream = UnixStream::connect(path).unwrap();
        let mut line = Vec::new();
        write_message(&mut line, request).unwrap();
        line.pop();
        let mut writer = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in line {
                if writer.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        stream
    }

    fn answer(stream: UnixStream) -> Response {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        read_message(&mut BufReader::new(stream)).unwrap()
    }

    #[test]
    fn a_prompt_client_is_answered() {
        let (_root, mut control, mut manager, path) = server();
        let mut client = UnixStream::connect(&path).unwrap();
        write_message(&mut client, &Request::Status { unit: None }).unwrap();
        assert_eq!(control.accept(&mut manager, false), None);
        let r = answer(client);
        assert!(r.ok, "{r:?}");
    }

    /// A client trickling its request is cut off at the total deadline,
    /// however often it sends a byte, and told why.
    #[test]
    fn a_slow_drip_client_is_cut_off_at_the_total_deadline() {
        let (_root, mut control, mut manager, path) = server();
        let client = drip(&path, &Request::Status { unit: None });
        let start = Instant::now();
        control.accept(&mut manager, false);
        let took = start.elapsed();
        assert!(
            took >= REQUEST_LIMIT - Duration::from_millis(50),
            "{took:?}"
        );
        assert!(
            took < REQUEST_LIMIT + Duration::from_millis(500),
            "{took:?}"
        );
        let r = answer(client);
        assert!(!r.ok);
        assert_eq!(
            r.error.as_deref(),
            Some("bad request: control connection: the client was too slow")
        );
    }

    /// Several slow clients share the deadline: PID 1 is held for one
    /// deadline, not one per client; the rest wait for the next wake.
    #[test]
    fn slow_clients_share_one_deadline() {
        let (_root, mut control, mut manager, path) = server();
        let first = drip(&path, &Request::Status { unit: None });
        let second = drip(&path, &Request::Status { unit: None });
        let start = Instant::now();
        control.accept(&mut manager, false);
        let took = start.elapsed();
        assert!(
            took < REQUEST_LIMIT + Duration::from_millis(500),
            "{took:?}"
        );
        assert!(!answer(first).ok);
        // Served on the next wake, with a deadline of its own.
        let start = Instant::now();
        control.accept(&mut manager, false);
        assert!(start.elapsed() < REQUEST_LIMIT + Duration::from_millis(500));
        assert!(!answer(second).ok);
    }
}
