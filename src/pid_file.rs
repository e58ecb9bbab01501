//! `--pid-file PATH`: the process id and a newline, written at start and
//! removed when the process ends (also on `exit()` paths, through atexit).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static WRITTEN: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Writes this process's id to `path` and removes the file at exit.
pub fn create(path: &Path) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))?;
    let mut written = WRITTEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if written.replace(path.to_path_buf()).is_none() {
        extern "C" fn at_exit() {
            let _ = std::panic::catch_unwind(remove);
        }
        // SAFETY: registers a plain function that catches its own panics.
        unsafe {
            libc::atexit(at_exit);
        }
    }
    Ok(())
}

/// Removes the pid file if it still holds this process's id (a newer
/// instance may have written its own since).
pub fn remove() {
    let taken = WRITTEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(path) = taken {
        let ours = format!("{}\n", std::process::id());
        if std::fs::read_to_string(&path).is_ok_and(|text| text == ours) {
            let _ = std::fs::remove_file(&path);
        }
    }
}
