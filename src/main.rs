use clap::Parser;

fn main() {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`netlens info M | head -1`)
    // would panic; restore the default, under which the process ends quietly.
    #[cfg(unix)]
    // SAFETY: the first thing main does, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    quiet_wsi();
    let cli = netlens::cli::Cli::parse();
    if let Err(e) = netlens::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Mesa's window-system code prints "error: XDG_RUNTIME_DIR is invalid or not set" on a
/// headless machine although netlens opens no window; give it a private directory so a
/// first run prints nothing alarming. A valid setting is left alone.
fn quiet_wsi() {
    #[cfg(target_os = "linux")]
    {
        let ok =
            std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
        if ok {
            return;
        }
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let dir = std::env::temp_dir().join(format!("netlens-xdg-{uid}"));
        let made = std::fs::create_dir_all(&dir).and_then(|_| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        });
        if made.is_ok() {
            // Edition 2021: set_var is safe to call; this runs before any other thread.
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}
