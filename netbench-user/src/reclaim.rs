//! Removing what the [ledger](crate::ledger) lists: this process's leftovers at every
//! exit ([`sweep_own`]) and what killed netbench processes left ([`clean_stale`], for
//! `netbench cleanup`). Each resource kind is removed by the module that made it; one
//! already gone counts as removed.
use crate::ledger::{self, Resource, is_zombie, process_start, stale, write_atomic};

/// What removing listed resources did.
#[derive(Clone, Debug, Default)]
pub struct Swept {
    pub removed: Vec<Resource>,
    /// What could not be removed, and why.
    pub failed: Vec<(String, String)>,
}

impl Swept {
    /// One line per removed object.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.removed
            .iter()
            .map(|r| format!("removed {r}"))
            .collect()
    }
}

/// Removes listed resources one at a time, newest first, and keeps the account. Docker is
/// connected to once, and only when a Docker resource comes up (an absent daemon then
/// costs one timeout, not one per container).
#[derive(Default)]
struct Remover {
    engine: Option<Result<crate::docker::Engine, String>>,
    swept: Swept,
}

impl Remover {
    async fn engine(&mut self) -> Result<&mut crate::docker::Engine, String> {
        if self.engine.is_none() {
            let connected = crate::docker::Engine::connect_local()
                .await
                .map_err(|e| crate::error::one_line(&e));
            self.engine = Some(connected);
        }
        match self.engine.as_mut() {
            Some(Ok(engine)) => Ok(engine),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no Docker engine".to_owned()),
        }
    }

    /// Remove each of `list`, newest first; returns what could not be removed, in
    /// `list`'s order.
    async fn remove_all(&mut self, list: &[Resource]) -> Vec<Resource> {
        let mut left = Vec::new();
        for r in list.iter().rev() {
            match remove(self, r).await {
                Ok(()) => self.swept.removed.push(r.clone()),
                Err(e) => {
                    self.swept.failed.push((r.to_string(), e));
                    left.push(r.clone());
                }
            }
        }
        left.reverse();
        left
    }
}

/// Remove what this process still has listed (the last step of every exit path), newest
/// first: processes before their namespaces, containers before their networks.
pub async fn sweep_own() -> Swept {
    let mut remover = Remover::default();
    remover.remove_all(&ledger::listed()).await;
    for r in &remover.swept.removed {
        ledger::release(r);
    }
    remover.swept
}

/// Remove everything the stale state files name, newest first; a file whose every entry
/// is gone is deleted. Files of running netbench processes are left alone.
pub async fn clean_stale() -> Swept {
    let mut remover = Remover::default();
    for (path, mut file) in stale() {
        file.resources = remover.remove_all(&file.resources).await;
        let res = if file.resources.is_empty() {
            std::fs::remove_file(&path)
        } else {
            write_atomic(&path, &file)
        };
        if let Err(e) = res {
            remover
                .swept
                .failed
                .push((format!("state file {}", path.display()), e.to_string()));
        }
    }
    remover.swept
}

/// Remove one resource; one already gone counts as removed.
async fn remove(remover: &mut Remover, r: &Resource) -> Result<(), String> {
    use crate::error::one_line;
    match r {
        Resource::Netns { name } => crate::netns::remove_owned(name).map_err(|e| one_line(&e)),
        Resource::Link { name } => {
            let h = crate::netlink::handle_in(&crate::netns::NetnsRef::Current)
                .map_err(|e| one_line(&e))?;
            match crate::netlink::link_by_name(&h, name).await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => crate::netlink::delete_link(&h, name)
                    .await
                    .map_err(|e| one_line(&e)),
                Err(e) => Err(one_line(&e)),
            }
        }
        Resource::Container { name, id } => {
            let engine = remover.engine().await?;
            crate::docker::container::remove(engine, id.as_deref().unwrap_or(name))
                .await
                .map_err(|e| one_line(&e))
        }
        Resource::Network { name } => {
            let engine = remover.engine().await?;
            crate::docker::network::remove(engine, name)
                .await
                .map_err(|e| one_line(&e))
        }
        Resource::Swarm => {
            let engine = remover.engine().await?;
            crate::docker::network::leave_swarm_if_ours(engine, None)
                .await
                .map(|_| ())
                .map_err(|e| one_line(&e))
        }
        Resource::Process {
            pid, start, group, ..
        } => {
            stop_process(*pid, *start, *group).await;
            Ok(())
        }
        Resource::Clsact {
            netns,
            netns_ino,
            ifname,
        } => {
            let ns = netns.clone().map_or(
                crate::netns::NetnsRef::Current,
                crate::netns::NetnsRef::Path,
            );
            if ns.inode() != Some(*netns_ino) {
                return Ok(()); // the namespace, and the device with it, is gone
            }
            let ifname = ifname.clone();
            match crate::netns::in_netns(&ns, move || crate::netlink::delete_clsact_here(&ifname)) {
                Ok(Ok(())) | Err(_) => Ok(()),
                Ok(Err(e)) => Err(one_line(&e)),
            }
        }
    }
}

/// SIGTERM, then SIGKILL after 2 s, to `pid` (or its group) while it is the process
/// that was listed (same start time): a reused pid is never signalled.
async fn stop_process(pid: u32, start: u64, group: bool) {
    use nix::{sys::signal, unistd::Pid};
    let Ok(raw) = i32::try_from(pid) else { return };
    for (sig, wait_ms) in [
        (signal::Signal::SIGTERM, 2000u64),
        (signal::Signal::SIGKILL, 1000),
    ] {
        if process_start(pid) != Some(start) {
            return;
        }
        let _ = if group {
            signal::killpg(Pid::from_raw(raw), sig)
        } else {
            signal::kill(Pid::from_raw(raw), sig)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
        while std::time::Instant::now() < deadline {
            // A dead child of ours stays a zombie (same start time) until reaped: that
            // counts as stopped.
            if process_start(pid) != Some(start) || is_zombie(pid) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
