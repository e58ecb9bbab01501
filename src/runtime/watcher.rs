//! Watches imported files through their parent directories.
//!
//! Watching the directory (not the file) keeps working after an editor saves
//! by writing a new file and renaming it over the old one. The notify thread
//! sends paths over a channel and wakes the poller; changes are debounced so
//! a save made of several writes reloads once, after the last write.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::runtime::poller::Poller;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};

/// Quiet time after the last event of a file before it is reloaded.
const SETTLE: Duration = Duration::from_millis(20);
/// Longest a file that keeps changing waits before it is reloaded anyway.
const MAX_WAIT: Duration = Duration::from_millis(200);

struct Pending {
    first: Instant,
    last: Instant,
}

impl Pending {
    fn due(&self) -> Instant {
        (self.last + SETTLE).min(self.first + MAX_WAIT)
    }
}

/// File-change notifications for a set of files.
pub struct Watcher {
    inner: notify::RecommendedWatcher,
    changes: Receiver<PathBuf>,
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
    pending: HashMap<PathBuf, Pending>,
}

fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

impl Watcher {
    /// A watcher whose notifications wake `poller`.
    pub fn new(poller: Arc<Poller>) -> notify::Result<Self> {
        let (sender, changes) = channel();
        let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !is_content_change(&event.kind) {
                return;
            }
            for path in event.paths {
                let _ = sender.send(path);
            }
            let _ = poller.notify();
        })?;
        Ok(Watcher {
            inner,
            changes,
            dirs: HashSet::new(),
            files: HashSet::new(),
            pending: HashMap::new(),
        })
    }

    /// Starts watching `file` (an absolute, canonical path).
    pub fn watch(&mut self, file: &Path) -> notify::Result<()> {
        let Some(dir) = file.parent() else {
            return Err(notify::Error::path_not_found().add_path(file.to_path_buf()));
        };
        if !self.dirs.contains(dir) {
            self.inner.watch(dir, RecursiveMode::NonRecursive)?;
            self.dirs.insert(dir.to_path_buf());
        }
        self.files.insert(file.to_path_buf());
        Ok(())
    }

    /// Drains notifications into the pending set.
    pub fn collect(&mut self, now: Instant) {
        while let Ok(path) = self.changes.try_recv() {
            if !self.files.contains(&path) {
                continue;
            }
            self.pending
                .entry(path)
                .and_modify(|p| p.last = now)
                .or_insert(Pending { first: now, last: now });
        }
    }

    /// When the next pending file settles.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(Pending::due).min()
    }

    /// Files that changed and have settled.
    pub fn take_due(&mut self, now: Instant) -> Vec<PathBuf> {
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due() <= now)
            .map(|(path, _)| path.clone())
            .collect();
        for path in &due {
            self.pending.remove(path);
        }
        due
    }
}
