//! Processes kept running the way a kubelet keeps a container (`restartPolicy: Always`): the lab's
//! services run under a [`Supervisor`] each, started again at once when they die.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How a supervised process is started again: the same program, config, port and environment.
#[derive(Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

impl Launch {
    fn spawn(&self) -> Child {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the log file opens");
        Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.program.display()))
    }
}

struct Watched {
    child: Child,
    stopping: bool,
    restarts: u32,
}

/// A process kept running the way a kubelet keeps a container with `restartPolicy: Always`: when it exits
/// for any reason other than [`Supervisor::stop`], it is started again at once (the kubelet's first
/// restart has no back-off). The exit is noticed within 2 ms (the watcher polls).
pub struct Supervisor {
    state: std::sync::Arc<std::sync::Mutex<Watched>>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(launch: Launch) -> Self {
        let state = std::sync::Arc::new(std::sync::Mutex::new(Watched {
            child: launch.spawn(),
            stopping: false,
            restarts: 0,
        }));
        let watched = state.clone();
        let watcher = std::thread::spawn(move || {
            loop {
                {
                    let mut w = watched.lock().expect("supervisor lock");
                    if let Ok(Some(_)) = w.child.try_wait() {
                        if w.stopping {
                            return;
                        }
                        w.child = launch.spawn();
                        w.restarts += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            state,
            watcher: Some(watcher),
        }
    }

    /// The running process's id (a new one after each restart).
    pub fn pid(&self) -> u32 {
        self.state.lock().expect("supervisor lock").child.id()
    }

    /// How many times the process was started again.
    pub fn restarts(&self) -> u32 {
        self.state.lock().expect("supervisor lock").restarts
    }

    /// SIGKILL: the process dies with nothing flushed or drained; the supervisor starts it again.
    pub fn kill(&self) {
        let mut w = self.state.lock().expect("supervisor lock");
        let _ = w.child.kill();
        let _ = w.child.wait();
    }

    /// SIGTERM, as Kubernetes stops a pod, and no restart: the exit status once it has drained and exited.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = {
            let mut w = self.state.lock().expect("supervisor lock");
            w.stopping = true;
            w.child.id().to_string()
        };
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if let Some(watcher) = self.watcher.take() {
            watcher.join().expect("the watcher ends");
        }
        self.state
            .lock()
            .expect("supervisor lock")
            .child
            .wait()
            .expect("the exit status")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.watcher.is_some() {
            let mut w = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            w.stopping = true;
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}
