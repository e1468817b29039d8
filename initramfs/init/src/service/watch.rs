//! Socket units and `Type=notify` as events: traffic on a listening
//! socket unit starts its service, a notification moves a starting
//! service on; and which socket units the PID 1 loop watches.

use super::machine::{load_failure, Machine};
use super::phase::{Job, Phase};
use super::{notify, socket};

impl Machine {
    /// Whether a started socket unit waits for traffic (its service is
    /// down).
    pub fn socket_watched(&self, socket_unit: &str) -> bool {
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

    /// The socket units whose fds the PID 1 loop watches now.
    pub fn watched_sockets(&self) -> Vec<String> {
        self.rt
            .iter()
            .filter(|(name, r)| r.listening && self.socket_watched(name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Traffic on a socket unit: start its service (and what it pulls in).
    pub(super) fn on_socket(&mut self, socket_unit: &str) {
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
            self.console(format!(
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

    /// A notification: applied to the unit whose main or control
    /// process sent it, else to the unit whose cgroup the sender is in.
    pub(super) fn on_notify(
        &mut self,
        pid: i32,
        cgroup_unit: Option<String>,
        msg: &notify::Message,
    ) {
        let by_pid = self
            .rt
            .iter()
            .find(|(_, r)| r.main_pid == Some(pid) || r.control_pid == Some(pid))
            .map(|(n, _)| n.clone());
        let Some(name) = by_pid.or(cgroup_unit) else {
            return;
        };
        let kind = self.service_kind(&name);
        let Some(rt) = self.rt.get_mut(&name) else {
            return;
        };
        if let Some(text) = &msg.status {
            rt.status_text = (!text.is_empty()).then(|| text.clone());
        }
        if let Some(main) = msg.main_pid {
            rt.main_pid = Some(main);
        }
        if notify::ends_start(kind, rt.phase, msg) {
            self.note(&name, "ready");
            if let Some(service) = self.units.get(&name).and_then(|u| u.service.clone()) {
                self.enter_start_post(&name, &service);
            }
        }
    }

    /// The socket units whose fds a main process of `service` gets (those
    /// that name it: `Service=`, the same name, or its `Sockets=`), and
    /// one `LISTEN_FDNAMES` name per fd.
    pub(super) fn sockets_for(&self, service: &str) -> (Vec<String>, Vec<String>) {
        let extra: Vec<String> = self
            .units
            .get(service)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.sockets.clone())
            .unwrap_or_default();
        let mut units = Vec::new();
        let mut names = Vec::new();
        for u in self.units.iter() {
            let Some(sock) = &u.socket else {
                continue;
            };
            if sock.service_name(&u.name) != service && !extra.contains(&u.name) {
                continue;
            }
            if self.rt.get(&u.name).is_some_and(|r| r.listening) {
                units.push(u.name.clone());
                // Binding makes one fd per `Listen…=` line, or fails.
                names.extend(sock.listen.iter().map(|_| sock.fd_name(&u.name)));
            }
        }
        (units, names)
    }
}
