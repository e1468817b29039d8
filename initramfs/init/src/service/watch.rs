//! The fds the PID 1 loop watches for the manager besides output pipes:
//! the notification socket (`Type=notify`) and the listening socket
//! units, and what their events do.

use std::os::fd::{AsRawFd, BorrowedFd};

use super::{load_failure, notify, socket, Job, Manager, Phase, Watch};

impl Manager {
    /// The notification socket and the socket units' fds to watch now.
    pub fn watch_fds(&self) -> Vec<(Watch, BorrowedFd<'_>)> {
        let mut out = Vec::new();
        if let Some(n) = &self.notify {
            out.push((Watch::Notify, n.fd()));
        }
        for (name, rt) in &self.rt {
            let Some(l) = &rt.listening else {
                continue;
            };
            if !self.socket_watched(name) {
                continue;
            }
            out.extend(l.borrowed().map(|fd| (Watch::Socket(name.clone()), fd)));
        }
        out
    }

    /// A watched fd is readable.
    pub fn on_watch(&mut self, w: &Watch) {
        match w {
            Watch::Notify => self.on_notify(),
            Watch::Socket(name) => self.on_socket(name),
        }
        self.step();
    }

    /// Whether a started socket unit waits for traffic (its service is
    /// down).
    pub(super) fn socket_watched(&self, socket_unit: &str) -> bool {
        let Some(sock) = self.units.get(socket_unit).and_then(|u| u.socket.as_ref()) else {
            return false;
        };
        let service = sock.service_name(socket_unit);
        let rt = self.rt.get(&service);
        socket::watch(
            rt.map_or(Phase::Dead, |r| r.phase),
            rt.is_some_and(|r| r.job.is_some()),
            rt.and_then(|r| r.result.as_deref()),
        )
    }

    /// Traffic on a socket unit: start its service (and what it pulls in).
    fn on_socket(&mut self, socket_unit: &str) {
        if !self.socket_watched(socket_unit) {
            return;
        }
        let Some(service) = self
            .units
            .get(socket_unit)
            .and_then(|u| u.socket.as_ref())
            .map(|s| s.service_name(socket_unit))
        else {
            return;
        };
        self.load(std::slice::from_ref(&service));
        if let Some(reason) = self.units.get(&service).and_then(load_failure) {
            // Stop watching: the socket cannot be served.
            self.outbox.push(format!(
                "slipway: {socket_unit}: cannot start {service} ({reason}); closing the socket"
            ));
            self.failed_final(socket_unit, format!("service {service}: {reason}"));
            return;
        }
        self.note(socket_unit, &format!("traffic: starting {service}"));
        if let Some(rt) = self.rt.get_mut(&service) {
            if rt.phase == Phase::Failed {
                rt.phase = Phase::Dead;
            }
        }
        self.queue_deps(&service);
        self.queue_job(&service, Job::Start);
    }

    /// Reads the notifications waiting and applies them to their units.
    fn on_notify(&mut self) {
        let Some(n) = &self.notify else {
            return;
        };
        for (pid, msg) in n.receive() {
            let Some(pid) = pid else {
                continue;
            };
            let by_pid = self
                .rt
                .iter()
                .find(|(_, r)| r.main_pid == Some(pid) || r.control_pid == Some(pid))
                .map(|(n, _)| n.clone());
            let Some(name) = by_pid.or_else(|| self.cgroups.as_ref().and_then(|c| c.unit_of(pid)))
            else {
                continue;
            };
            let kind = self.service_kind(&name);
            let Some(rt) = self.rt.get_mut(&name) else {
                continue;
            };
            if let Some(text) = &msg.status {
                rt.status_text = (!text.is_empty()).then(|| text.clone());
            }
            if let Some(main) = msg.main_pid {
                rt.main_pid = Some(main);
            }
            if notify::ends_start(kind, rt.phase, &msg) {
                self.note(&name, "ready");
                if let Some(service) = self.units.get(&name).and_then(|u| u.service.clone()) {
                    self.enter_start_post(&name, &service);
                }
            }
        }
    }

    /// The listening fds (and their names) of the socket units that
    /// name `service` (`Service=`, the same name, or its `Sockets=`).
    pub(super) fn socket_fds_for(&self, service: &str) -> (Vec<std::os::fd::RawFd>, Vec<String>) {
        let extra: Vec<String> = self
            .units
            .get(service)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.sockets.clone())
            .unwrap_or_default();
        let mut fds = Vec::new();
        let mut names = Vec::new();
        for u in self.units.iter() {
            let Some(sock) = &u.socket else {
                continue;
            };
            if sock.service_name(&u.name) != service && !extra.contains(&u.name) {
                continue;
            }
            if let Some(l) = self.rt.get(&u.name).and_then(|r| r.listening.as_ref()) {
                for fd in &l.fds {
                    fds.push(fd.as_raw_fd());
                    names.push(sock.fd_name(&u.name));
                }
            }
        }
        (fds, names)
    }
}
